"""The device table: per device, its kernels, allocation and transfer. The frontend reaches kernels only here.

A device object offers `kernel(name)` (a kernel of any family, looked up by its unique name), `map(name,
*arguments)` (run an elementwise kernel over N-d arrays of one shape), and allocation (`empty`, `zeros`,
`full`, `asarray`) and transfer (`to_numpy`). A new device is one more entry in `DEVICES` plus its kernels.
"""

import importlib

import numpy as np

from nbprop.kernels._jit import PARALLEL_THRESHOLD, ParallelKernel

# Kernel families, in `kernels/`; a kernel's name is unique across all of them.
FAMILIES = (
    "elementwise", "elementwise_backward", "reduce", "extrema", "padding", "indexing", "matmul", "softmax", "value",
    "linear", "activation", "norm", "loss", "optim", "optim_transforms", "clip", "optim_adaptive",
    "optim_sign", "optim_layerwise", "optim_factored",
)

# Large contiguous inputs are cut into rows of this many elements, so that threads share the work evenly.
_ROW_LENGTH = 4096


def _as_rows(array):
    """The 2-D (rows, columns) form elementwise kernels take: a view, or a copy of a broadcast view."""
    if array.ndim == 2:
        return array
    if array.ndim == 1:
        return array[None]
    if array.ndim == 0:
        return array.reshape(1, 1)
    return array.reshape(-1, array.shape[-1])


class CpuDevice:
    """NumPy arrays in host memory, `@njit` kernels."""

    name = "cpu"

    def __init__(self):
        self._kernels = {}

    def kernel(self, name):
        """The CPU kernel called `name`, from whichever family defines it."""
        kernel = self._kernels.get(name)
        if kernel is None:
            for family in FAMILIES:
                module = importlib.import_module(f"nbprop.kernels.{family}")
                kernel = getattr(module, name, None)
                if kernel is not None:
                    break
            else:
                raise KeyError(f"no CPU kernel called {name!r} in the families {FAMILIES}")
            self._kernels[name] = kernel
        return kernel

    def map(self, name, *arguments):
        """Run elementwise kernel `name` over arrays of one shape; the last argument is the contiguous output.

        Non-array arguments (bounds, flags) pass through unchanged.
        """
        kernel = self._kernels.get(name) or self.kernel(name)
        out = arguments[-1]
        size = out.size
        if size < PARALLEL_THRESHOLD:
            # Small work is all Python overhead: the common 2-D and 1-D cases first.
            if out.ndim == 2:
                kernel.serial(*arguments)
            elif not size:
                pass
            elif out.ndim == 1:
                kernel.serial(*[a[None] if a.__class__ is np.ndarray else a for a in arguments])
            else:
                kernel.serial(*[_as_rows(a) if a.__class__ is np.ndarray else a for a in arguments])
            return out
        if all(a.flags.c_contiguous for a in arguments if a.__class__ is np.ndarray):
            # Cut the flat arrays into equal rows for the threads, and do the short remainder serially.
            whole = size - size % _ROW_LENGTH
            flats = [a.reshape(-1) if a.__class__ is np.ndarray else a for a in arguments]
            kernel.parallel(*[
                a[:whole].reshape(-1, _ROW_LENGTH) if a.__class__ is np.ndarray else a for a in flats
            ])
            if whole < size:
                kernel.serial(*[a[None, whole:] if a.__class__ is np.ndarray else a for a in flats])
            return out
        kernel.parallel(*[_as_rows(a) if a.__class__ is np.ndarray else a for a in arguments])
        return out

    def call(self, name, *arguments, work=None):
        """Run any other kernel. A parallel kernel picks its serial or threaded variant by `work`, the number
        of elements it touches (default: the size of its last argument, the output); pass 0 to force serial.
        """
        kernel = self._kernels.get(name) or self.kernel(name)
        if kernel.__class__ is ParallelKernel:
            kernel = kernel.for_size(arguments[-1].size if work is None else work)
        return kernel(*arguments)

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype)

    @staticmethod
    def full(shape, value, dtype):
        array = np.empty(shape, dtype)  # np.full's Python wrapper costs more than the fill of a small array
        array.fill(value)
        return array

    @staticmethod
    def asarray(data, dtype=None):
        """A C-contiguous array of `data` on this device, of the same shape (copied only if needed)."""
        return np.asarray(data, dtype=dtype, order="C")

    @staticmethod
    def copy(array):
        """A C-contiguous copy."""
        return np.array(array, order="C")

    @staticmethod
    def copy_into(destination, source):
        """Copy `source` into the C-contiguous array `destination` of the same shape."""
        np.copyto(destination, source)

    @staticmethod
    def astype(array, dtype):
        """A C-contiguous copy converted to `dtype`."""
        return np.array(array, dtype=dtype, order="C")

    @staticmethod
    def to_numpy(array):
        return array

    @staticmethod
    def count_nonfinite(array, include_infinity):
        """How many elements are NaN (or also +-inf); for anomaly mode, where speed does not matter."""
        return int(np.count_nonzero(~np.isfinite(array) if include_infinity else np.isnan(array)))


DEVICES = {"cpu": CpuDevice()}


def get(name):
    """The device called `name` ('cpu'; 'cuda' once its backend is installed)."""
    device = DEVICES.get(name)
    if device is None:
        raise RuntimeError(f"device {name!r} is not available; known devices: {sorted(DEVICES)}")
    return device


cpu = DEVICES["cpu"]
