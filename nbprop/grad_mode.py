"""Whether ops are recorded on the tape: no_grad, enable_grad, set_grad_enabled, inference_mode (per thread)."""

import functools
import threading


class _Recording(threading.local):
    enabled = True  # what ops read: grad mode on and inference mode off
    inference = False


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
        recording.enabled = self._mode and not recording.inference
        return self

    def __exit__(self, *exc_info):
        recording.enabled = self._previous

    def __call__(self, function):
        mode = self._mode

        @functools.wraps(function)
        def decorated(*args, **kwargs):
            previous = recording.enabled
            recording.enabled = mode and not recording.inference
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
        recording.enabled = self._mode and not recording.inference

    def __enter__(self):
        return self

    def __call__(self, function):
        recording.enabled = self._previous  # decorating must not change the mode of the caller
        return super().__call__(function)


def is_inference_mode_enabled():
    """Whether inference_mode is on in this thread."""
    return recording.inference


class inference_mode:
    """PyTorch's inference_mode(mode=True): a context manager and decorator (`@inference_mode`,
    `@inference_mode()`, `@inference_mode(False)`) under which nothing is recorded, even inside enable_grad.
    `inference_mode(False)` turns it off again and turns recording on, as in PyTorch.

    The difference from PyTorch: nbprop has no inference tensors. PyTorch marks tensors made in inference mode
    (no version counter, no views' bookkeeping) and refuses to save them for backward or change them in place
    outside it, which makes its inference mode faster than no_grad; here they are ordinary tensors, usable in
    recorded ops afterwards, and inference_mode costs and saves what no_grad does. Inside it, is_grad_enabled()
    is False even within enable_grad (PyTorch reports True there, and records nothing either).
    """

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # `@inference_mode` without parentheses decorates directly

    def __init__(self, mode=True):
        self.mode = mode

    def __enter__(self):
        self._previous = (recording.enabled, recording.inference)
        recording.inference = self.mode
        recording.enabled = not self.mode

    def __exit__(self, *exc_info):
        recording.enabled, recording.inference = self._previous

    def __call__(self, function):
        mode = self.mode

        @functools.wraps(function)
        def decorated(*args, **kwargs):
            previous = (recording.enabled, recording.inference)
            recording.inference = mode
            recording.enabled = not mode
            try:
                return function(*args, **kwargs)
            finally:
                recording.enabled, recording.inference = previous

        return decorated

    def clone(self):
        return self.__class__(self.mode)
