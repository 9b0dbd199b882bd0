"""Whether ops are recorded on the tape: no_grad, enable_grad, set_grad_enabled (per thread)."""

import functools
import threading


class _Recording(threading.local):
    enabled = True


recording = _Recording()


def is_grad_enabled():
    """Whether operations are being recorded on the tape in this thread."""
    return recording.enabled


class _ModeGuard:
    """A context manager and decorator that records (or not) inside it and restores the mode after."""

    _mode = True

    def __new__(cls, function=None):
        guard = super().__new__(cls)
        # `@no_grad` without parentheses decorates directly, as in PyTorch.
        return guard if function is None else guard(function)

    def __enter__(self):
        self._previous = recording.enabled
        recording.enabled = self._mode
        return self

    def __exit__(self, *exc_info):
        recording.enabled = self._previous

    def __call__(self, function):
        mode = self._mode

        @functools.wraps(function)
        def decorated(*args, **kwargs):
            previous = recording.enabled
            recording.enabled = mode
            try:
                return function(*args, **kwargs)
            finally:
                recording.enabled = previous

        return decorated


class no_grad(_ModeGuard):
    """Do not record operations: for evaluation and for optimizer updates."""

    _mode = False


class enable_grad(_ModeGuard):
    """Record operations, even inside `no_grad`."""

    _mode = True


class set_grad_enabled(_ModeGuard):
    """Turn recording on or off now (PyTorch: a function as well as a context manager and decorator).

    Used with `with` or as a decorator, the previous mode comes back on exit.
    """

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        self._mode = bool(mode)
        self._previous = recording.enabled
        recording.enabled = self._mode

    def __enter__(self):
        return self

    def __call__(self, function):
        recording.enabled = self._previous  # decorating must not change the mode of the caller
        return super().__call__(function)
