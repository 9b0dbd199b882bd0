"""nbprop.compile: run a training step eagerly once, capture it the next time, then replay its plan.

A step is a function of tensors (and hashable Python values) that runs forward, backward and the optimizer.
Its calls with one signature (the tensors' shapes, dtypes, devices and requires_grad, the other arguments'
values, the grad mode) go: first eagerly, so that lazily built state (optimizer buffers, caches, compiled
kernels) exists; second under capture, eagerly as well, with every call that touches array data recorded;
then as replays of the plan, with the inputs copied into the captured input buffers and no Python per op.
Optimizer steps, zero_grad, schedulers and gradient clipping are host steps (nbprop/capture/state.py): each
replay calls them again in Python, so learning-rate schedules and step counts move as they do eagerly.
"""

import collections
import functools
import threading
import warnings

from nbprop import grad_mode
from nbprop.backend import DEVICES, HOST
from nbprop.capture import state
from nbprop.capture.plan import Plan
from nbprop.capture.recording import CaptureError, Recorder, recording, root_of
from nbprop.tensor import Tensor

# Plans kept per compiled function (least recently used first out), as torch.compile's cache_size_limit.
CACHE_SIZE = 8
# Captures of one signature before it runs eagerly for good when its parameters' arrays keep changing.
_CAPTURE_ATTEMPTS = 3

_capture_lock = threading.Lock()


def _signature(arguments, keywords, name):
    """The plan's key: tensors by shape, dtype, device and requires_grad, other arguments by value."""
    key = [grad_mode.is_grad_enabled()]
    for position, value in [*enumerate(arguments), *sorted(keywords.items())]:
        if isinstance(value, Tensor):
            key.append((position, value.shape, value.dtype.str, value.device, value.requires_grad))
            continue
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"nbprop.compile({name}): argument {position!r} is a {type(value).__name__}, neither "
                            "a tensor nor hashable; a plan is chosen by its arguments' values, so pass tensors "
                            "directly and other arguments as hashable values") from None
        key.append((position, type(value), value))
    return tuple(key)


def _map_tensors(value, function):
    """`value` with `function` applied to each tensor in it, through tuples (named ones too), lists and dicts."""
    if isinstance(value, Tensor):
        return function(value)
    if isinstance(value, (tuple, list)):
        items = [_map_tensors(item, function) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {key: _map_tensors(item, function) for key, item in value.items()}
    return value


def _copied(tensor):
    """A replay's output: a copy, since the plan rewrites its buffers on the next replay."""
    return Tensor._make(DEVICES[tensor.device].copy(tensor._data), None, tensor.device)


def _detached(tensor):
    return Tensor._make(tensor._data, None, tensor.device)


class _Entry:
    """One signature's state: eager calls so far, the plan once captured, and whether it runs eagerly for good."""

    __slots__ = ("calls", "plan", "inputs", "outputs", "leaves", "eager")

    def __init__(self):
        self.calls, self.plan, self.inputs, self.outputs, self.leaves, self.eager = 0, None, (), None, (), False

    def is_current(self):
        """Whether every leaf that received a gradient still holds the array the plan was captured with (an
        optimizer rebuilding its buffers, or `.to()`, replaces them)."""
        for tensor, array in self.leaves:
            if tensor._data is not array:
                return False
        return True


class CompiledStep:
    """A step function with its plans (see the module docstring); call it as the function itself."""

    def __init__(self, function, fullgraph=False):
        functools.update_wrapper(self, function)
        self.function, self.fullgraph = function, fullgraph
        self._entries = collections.OrderedDict()

    def __repr__(self):
        return f"nbprop.compile({getattr(self.function, '__qualname__', self.function)!r})"

    def reset(self):
        """Forget every plan (after replacing a model's parameters or buffers by new tensors, say)."""
        self._entries.clear()

    def __call__(self, *arguments, **keywords):
        if state.recorder is not None:  # called inside another step's capture: that capture records it
            return self.function(*arguments, **keywords)
        key = _signature(arguments, keywords, self.__name__)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            if len(self._entries) > CACHE_SIZE:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        if entry.plan is not None and entry.is_current():
            return self._replay(entry, arguments, keywords)
        entry.plan = None
        if entry.eager or entry.calls == 0:
            entry.calls += 1
            return self.function(*arguments, **keywords)
        return self._capture(entry, arguments, keywords)

    def _replay(self, entry, arguments, keywords):
        for slot, value in zip(entry.inputs, [*arguments, *(keywords[name] for name in sorted(keywords))]):
            if slot is not None:
                DEVICES[value.device].copy_into(slot, value._data)
        entry.plan.replay()
        return _map_tensors(entry.outputs, _copied)

    def _capture(self, entry, arguments, keywords):
        ordered = [*arguments, *(keywords[name] for name in sorted(keywords))]
        for value in ordered:
            if isinstance(value, Tensor) and value.device != HOST:
                raise CaptureError(f"nbprop.compile({self.__name__}): a tensor argument is on device "
                                   f"{value.device!r}; capture records CPU steps only")
            if isinstance(value, Tensor) and value.requires_grad:
                raise CaptureError(f"nbprop.compile({self.__name__}): a tensor argument of shape "
                                   f"{tuple(value.shape)} requires grad; in a captured step gradients reach the "
                                   "parameters only (pass inputs that do not require grad)")
        # The step sees copies of its tensor arguments, in buffers the plan owns: replays copy new inputs there.
        copies = {id(value): Tensor._make(DEVICES[HOST].copy(value._data), None, HOST)
                  for value in ordered if isinstance(value, Tensor)}
        recorder = Recorder()
        with _capture_lock, recording(recorder):
            result = self.function(*[copies.get(id(value), value) for value in arguments],
                                   **{name: copies.get(id(value), value) for name, value in keywords.items()})
        entry.calls += 1
        failures = recorder.failures
        stable = True
        for tensor, array in recorder.leaves.values():
            if id(root_of(array)) in recorder.produced:
                failures.append("a tensor made inside the step received a gradient as a leaf (a new parameter?)")
            stable = stable and tensor._data is array
        if not stable and entry.calls > _CAPTURE_ATTEMPTS:
            failures.append(f"the parameters' arrays changed during each of {_CAPTURE_ATTEMPTS} captures")
        if failures:
            entry.eager = True
            message = (f"nbprop.compile({self.__name__}): the step cannot be replayed, because of "
                       + "; ".join(failures))
            if self.fullgraph:
                raise CaptureError(message + " (this call ran eagerly and completed)")
            warnings.warn(message + "; it runs eagerly for these arguments", stacklevel=3)
            return result
        if stable:  # else an optimizer built its buffers during the step: capture again on the next call
            entry.leaves = tuple(recorder.leaves.values())
            entry.inputs = tuple(copies[id(value)]._data if isinstance(value, Tensor) else None for value in ordered)
            entry.outputs = _map_tensors(result, _detached)
            entry.plan = Plan(recorder)
        return result


def compile(function=None, *, fullgraph=False, disable=False):  # noqa: A001 - torch.compile's name
    """torch.compile's face over nbprop's capture: `nbprop.compile(step)` or `@nbprop.compile(fullgraph=True)`.

    The compiled step runs eagerly on its first call with a new signature, is captured on the second and
    replays its plan from the third (see nbprop/capture/compiled.py). A step the plan cannot hold (reading
    tensor values in Python with .item()/.numpy()/bool(), drawing random numbers on the host outside dropout,
    a data-dependent shape, tensors on another device) keeps running eagerly with a warning, or, with
    `fullgraph=True`, raises CaptureError naming what it saw. `disable=True` returns `function` itself.
    """
    if function is None:
        return functools.partial(compile, fullgraph=fullgraph, disable=disable)
    if disable:
        return function
    if not callable(function):
        raise TypeError(f"nbprop.compile: expects a function, got {type(function).__name__}")
    return CompiledStep(function, fullgraph)

