"""The recording device: while a step is captured, the CPU device writes down every call that touches array data.

The CPU device object itself becomes a `RecordingCpuDevice` for the capture (its class is swapped), so that
every holder of it (ops, optimizers, cached module-level references) is recorded alike. Each call that writes
array memory becomes a (function, arguments) pair: kernel launches, copies, fills, region writes, random draws;
views are not calls (a plan rebuilds them from their base array). Arrays the step allocates are noted as
`produced`: their memory belongs to the plan, which may reuse it between arrays whose lives do not overlap.
"""

import contextlib
import functools
import operator
import sys

import numpy as np

from nbprop.backend import DEVICES, HOST, PARALLEL_THRESHOLD, CpuDevice
from nbprop.capture import state
from nbprop.kernels._jit import ParallelKernel


class CaptureError(RuntimeError):
    """A step that nbprop.compile cannot capture or replay, with the reasons."""


def root_of(array):
    """The array that owns the memory under `array` (itself if it owns it): views, broadcast views and strided
    views all lead back to it through their `base` chain."""
    root, base = array, array.base
    while base is not None:
        if isinstance(base, np.ndarray):
            root = base
        base = getattr(base, "base", None)
    return root


# ----------------------------------------------------------------------------- calls a plan replays


def fill(array, value):
    array.fill(value)


def copy(destination, source):
    np.copyto(destination, source, casting="unsafe")


def take_into(out, array, key):
    """out[...] = array[key], where a boolean mask must select as many elements as it did at capture."""
    values = array[key]
    if values.shape != out.shape:
        raise CaptureError(f"nbprop.compile: an indexing in the step selected shape {values.shape} where the "
                           f"captured step selected {out.shape} (a boolean mask with another count of True)")
    np.copyto(out, values)


def draw_uniform(source, out):
    """Uniform [0, 1) draws into `out` from the NumPy Generator `source()`: the same numbers, in the same order,
    as CpuDevice.uniform draws."""
    source().random(out=out, dtype=out.dtype)


def assign_grad(tensor, expected, grad):
    """Give leaf `tensor` the .grad the captured backward gave it, from the state the capture saw."""
    if tensor.grad is not expected:
        raise CaptureError(f"nbprop.compile: the .grad of a leaf of shape {tuple(tensor.shape)} was "
                           f"{'None' if expected is None else 'a tensor'} before the captured backward, and is "
                           f"{'None' if tensor.grad is None else 'another tensor'} now: a replay needs the same "
                           "gradient state every step (clear gradients the same way each time, or not at all)")
    tensor.grad = grad


class Checked:
    """A call whose result the step's Python used at capture (a count, a flag): replay runs it again and
    raises if the result differs, because the Python that read it does not run again."""

    __slots__ = ("function", "expected", "name")

    def __init__(self, function, expected, name):
        self.function, self.expected, self.name = function, expected, name

    def __call__(self, *arguments):
        result = self.function(*arguments)
        if result != self.expected:
            raise CaptureError(f"nbprop.compile: {self.name} returned {result!r} where the captured step saw "
                               f"{self.expected!r}; the step's Python depends on it (a shape or check that "
                               "depends on data), so the plan cannot replay it: run this step eagerly")
        return result


# -------------------------------------------------------------------------------------- the record


class Recorder:
    """What a captured step did: `operations` ((function, arguments) in order), `produced` (the arrays it
    allocated, by id), `leaves` (tensors whose gradient the backward delivered, with their data array then),
    `failures` (why the step cannot be replayed). `suspended` counts the host steps running."""

    def __init__(self):
        self.operations = []
        self.produced = {}
        self.leaves = {}
        self.failures = []
        self.suspended = 0

    def fail(self, what):
        """Note why the step cannot be replayed, with the line of the step's own code that led there."""
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("nbprop."):
            frame = frame.f_back
        if frame is not None:
            what += f" (at {frame.f_code.co_filename}:{frame.f_lineno})"
        if what not in self.failures:
            self.failures.append(what)

    def record(self, function, arguments):
        if not self.suspended:
            self.operations.append((function, arguments))

    def produce(self, array, function=None, arguments=()):
        """Note `array` as allocated by the step, and the call that writes it (None for uninitialised memory)."""
        if not self.suspended:
            root = root_of(array)
            self.produced[id(root)] = root
            if function is not None:
                self.operations.append((function, arguments))
        return array

    def run(self, function, arguments, name):
        """Call function(*arguments) and record the call; a result Python reads is checked again on replay."""
        result = function(*arguments)
        if not self.suspended:
            if isinstance(result, np.ndarray):
                self.fail(f"kernel {name} returns a new array")
            elif result is not None:
                function = Checked(function, result, name)
            self.operations.append((function, arguments))
        return result

    def host_step(self, function, arguments, keywords):
        """Run a host step (state.host_step) eagerly, recording the call rather than what it launches."""
        self.suspended += 1
        try:
            result = function(*arguments, **keywords)
        finally:
            self.suspended -= 1
        self.operations.append((functools.partial(function, **keywords) if keywords else function, arguments))
        return result

    def delivered_gradient(self, tensor, existing):
        """The backward pass set leaf `tensor`'s gradient, which was `existing` before: replay does the same."""
        if self.suspended:
            return
        if tensor.device != CpuDevice.name:
            self.fail(f"a leaf on device {tensor.device!r} received a gradient (capture records CPU steps only)")
        self.leaves[id(tensor)] = (tensor, tensor._data)
        self.operations.append((assign_grad, (tensor, existing, tensor.grad)))


# ------------------------------------------------------------------------------- the recording device


class Recorded:
    """A kernel (or one variant of it) that records each call while running it."""

    __slots__ = ("function", "name", "serial", "parallel")

    def __init__(self, function, name):
        self.function, self.name = function, name
        self.serial = self.parallel = None
        if function.__class__ is ParallelKernel:
            self.serial, self.parallel = Recorded(function.serial, name), Recorded(function.parallel, name)

    def __call__(self, *arguments):
        return state.recorder.run(self.function, arguments, self.name)


class RecordingCpuDevice(CpuDevice):
    """CpuDevice's behaviour, plus the record (`state.recorder`). Only the methods that allocate, write memory
    or read values into Python differ; views and metadata are CpuDevice's own."""

    def kernel(self, name):
        recorded = Recorded(self._plain_kernels.get(name) or self.find_kernel(name), name)
        self._kernels[name] = recorded
        return recorded

    def call(self, name, *arguments, work=None):
        kernel = self._kernels.get(name) or self.kernel(name)
        if kernel.parallel is not None:
            size = arguments[-1].size if work is None else work
            kernel = kernel.parallel if size >= PARALLEL_THRESHOLD else kernel.serial
        return kernel(*arguments)

    def rows(self, array):
        rows = CpuDevice.rows(array)
        if root_of(rows) is not root_of(array):
            state.recorder.produce(rows, copy, (rows.reshape(array.shape), array))
        return rows

    # allocation: memory the plan owns, with the call that initialises it
    def empty(self, shape, dtype):
        return state.recorder.produce(np.empty(shape, dtype))

    def zeros(self, shape, dtype):
        array = np.zeros(shape, dtype)
        return state.recorder.produce(array, fill, (array, 0))

    def full(self, shape, value, dtype):
        array = CpuDevice.full(shape, value, dtype)
        return state.recorder.produce(array, fill, (array, value))

    def _constant(self, array):
        """An array whose values come from Python: replay writes the captured values back, in case a later
        call of the step overwrites them."""
        root = root_of(array)
        return state.recorder.produce(array, copy, (root, root.copy()))

    def arange(self, start, stop, step, dtype):
        return self._constant(CpuDevice.arange(start, stop, step, dtype))

    def linspace(self, start, stop, steps, dtype):
        return self._constant(CpuDevice.linspace(start, stop, steps, dtype))

    def eye(self, rows, columns, dtype):
        return self._constant(CpuDevice.eye(rows, columns, dtype))

    def scalar_view(self, value, dtype, shape):
        return self._constant(CpuDevice.scalar_view(value, dtype, shape))

    def asarray(self, data, dtype=None):
        # A copy even where NumPy would share the host data: the plan must not write into the caller's array.
        return self._constant(np.array(data, dtype=dtype, order="C"))

    def uniform(self, source, shape, dtype):
        array = CpuDevice.uniform(source, shape, dtype)
        return state.recorder.produce(array, draw_uniform, (source, array))

    # values read into Python: the plan would keep the captured ones
    def to_numpy(self, array):
        state.note_host_read("copying a tensor to host memory (.numpy(), .tolist(), printing)")
        return array

    def item(self, array):
        state.note_host_read("reading a tensor's value in Python (.item(), bool(), float(), int())")
        return CpuDevice.item(array)

    def read_status(self, status, position=0):
        return state.recorder.run(CpuDevice.read_status, (status, position), "a check of the data (bounds, ranges)")

    def count_nonzero(self, array):
        return state.recorder.run(CpuDevice.count_nonzero, (array,), "count_nonzero (a nonzero or mask count)")

    def count_nonfinite(self, array, include_infinity):
        return state.recorder.run(CpuDevice.count_nonfinite, (array, include_infinity), "count_nonfinite")

    def qr(self, matrix):
        state.recorder.fail("a QR decomposition (qr) in the step")
        return CpuDevice.qr(matrix)

    # copies and writes
    def reshape(self, array, shape):
        result = array.reshape(shape)
        if root_of(result) is not root_of(array):
            state.recorder.produce(result, copy, (result.reshape(array.shape), array))
        return result

    def write_region(self, array, key, source):
        CpuDevice.write_region(array, key, source)
        state.recorder.record(operator.setitem, (array, key, source))

    def take(self, array, key):
        result = CpuDevice.take(array, key)
        return state.recorder.produce(result, take_into, (result, array, key))

    def put(self, array, key, values):
        CpuDevice.put(array, key, values)
        state.recorder.record(operator.setitem, (array, key, values))

    def copy(self, array):
        result = CpuDevice.copy(array)
        return state.recorder.produce(result, copy, (result, array))

    def contiguous(self, array):
        result = CpuDevice.contiguous(array)
        return array if result is array else state.recorder.produce(result, copy, (result, array))

    def astype(self, array, dtype):
        result = CpuDevice.astype(array, dtype)
        return state.recorder.produce(result, copy, (result, array))

    def copy_into(self, destination, source):
        np.copyto(destination, source)
        state.recorder.record(np.copyto, (destination, source))

    def fill(self, array, value):
        array.fill(value)
        state.recorder.record(fill, (array, value))

    def concatenate_into(self, arrays, out):
        CpuDevice.concatenate_into(arrays, out)
        state.recorder.record(CpuDevice.concatenate_into, (tuple(arrays), out))


@contextlib.contextmanager
def recording(recorder):
    """Make the CPU device object record into `recorder` (its class and kernel table swapped), then restore it."""
    device = DEVICES[HOST]
    device._plain_kernels, device._kernels = device._kernels, {}
    device.__class__ = RecordingCpuDevice
    state.recorder = recorder
    try:
        yield
    finally:
        state.recorder = None
        device.__class__ = CpuDevice
        device._kernels = device._plain_kernels
        del device._plain_kernels


# CpuDevice's methods the recording device inherits: views and metadata, and `map`, which launches through the
# recorded kernel table and `rows`.
INHERITED_METHODS = frozenset({
    "map", "find_kernel", "is_contiguous", "is_writeable", "strides", "view", "permute", "transpose_matrices",
    "expand", "region",
})
