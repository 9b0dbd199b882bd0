"""Anomaly detection as PyTorch's: NaN checks of every op's outputs and gradients, naming the op and the
line of user code that ran its forward."""

import os
import traceback
import warnings

from nbprop.backend import DEVICES

enabled = False
check_nan = True

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def is_anomaly_enabled():
    return enabled


def is_anomaly_check_nan_enabled():
    return check_nan


def _set(mode, nan):
    global enabled, check_nan
    enabled, check_nan = bool(mode), bool(nan)


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """Turn anomaly detection on or off: as a function call, or as a context manager that restores the
    previous setting on exit."""

    def __init__(self, mode, check_nan=True):
        self._previous = (enabled, globals()["check_nan"])
        _set(mode, check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _set(*self._previous)


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """A context manager (and decorator) in which every op records where its forward was called, an op
    whose forward returns NaN or whose backward returns a NaN or infinite gradient raises a RuntimeError
    naming it and that place, and an error inside a backward carries the forward's traceback as a note.

    Infinite forward outputs are allowed: -inf is how masks are written (softmax over masked scores).
    Slow (a stack capture per op): for debugging only, as PyTorch warns.
    """

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and should only "
                      "be enabled for debugging.", stacklevel=2)
        self._previous = (enabled, check_nan)
        _set(True, self.check_nan)
        return self

    def __exit__(self, *exc_info):
        _set(*self._previous)

    def __call__(self, function):
        def decorated(*args, **kwargs):
            with self.__class__(self.check_nan):
                return function(*args, **kwargs)

        decorated.__name__, decorated.__doc__ = function.__name__, function.__doc__
        return decorated


def _caller():
    """The innermost frame outside nbprop: where the user's code called the op."""
    frames = traceback.extract_stack()
    for frame in reversed(frames):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE):
            return frame
    return frames[-1]


def _where(ctx):
    frame = getattr(ctx, "forward_frame", None)
    return "" if frame is None else f" (its forward was called at {frame.filename}:{frame.lineno}, in {frame.name})"


def check_forward(ctx, outputs):
    """Record where the forward ran; raise if an output has NaN values."""
    ctx.forward_frame = _caller()
    ctx.forward_stack = "".join(traceback.format_stack()[:-2])
    if not check_nan:
        return
    for index, output in enumerate(outputs if isinstance(outputs, tuple) else (outputs,)):
        if output.dtype.kind == "f" and DEVICES[output.device].count_nonfinite(output._data, False):
            raise RuntimeError(f"Function '{ctx.function.__name__}' returned nan values in its {index}th output"
                               f"{_where(ctx)}")


def check_backward(ctx, gradients):
    """Raise if a gradient that a backward returned has NaN or infinite values."""
    if not check_nan:
        return
    for index, gradient in enumerate(gradients):
        if gradient is not None and gradient.dtype.kind == "f" and \
                DEVICES[gradient.device].count_nonfinite(gradient._data, True):
            raise RuntimeError(f"Function '{ctx.function.__name__}Backward' returned nan or infinite values in its "
                               f"{index}th output (the gradient of its input {index}){_where(ctx)}")


def annotate(error, ctx):
    """Add the forward's traceback to an error raised inside the backward of `ctx`."""
    stack = getattr(ctx, "forward_stack", None)
    if stack is not None:
        error.add_note(f"Traceback of the forward call of {ctx.function.__name__} that caused the error:\n{stack}")
