"""The device table: everything that touches array data goes through a tensor's device object here.

A device array has `shape`, `dtype`, `ndim` and `size`, and nothing else is asked of it: allocation, host
transfer, layout and views, region writes, copies, casts and kernel launches (`map` for elementwise kernels,
`call` for any other) are the device's methods. `CpuDevice` is the protocol's reference; a new device is one
more entry in `DEVICES` with the same methods (tests/opaque_device.py is one whose arrays allow nothing else).
"""

import importlib

import numpy as np

from nbprop.kernels._jit import PARALLEL_THRESHOLD, ParallelKernel

# Kernel families, in `kernels/`; a kernel's name is unique across all of them.
FAMILIES = (
    "elementwise", "elementwise_backward", "reduce", "extrema", "padding", "indexing", "matmul", "softmax", "value",
    "linear", "activation", "norm", "loss", "optim", "optim_transforms", "clip", "optim_adaptive",
    "optim_sign", "optim_layerwise", "optim_factored",
    "gather", "sort", "scan", "product_scan", "logical", "conv", "pool", "interpolate", "recurrent", "attention",
)

# Large contiguous inputs are cut into rows of this many elements, so that threads share the work evenly.
_ROW_LENGTH = 4096


class CpuDevice:
    """NumPy arrays in host memory, `@njit` kernels."""

    name = "cpu"
    # A NumPy view holds its base array, so the reference count of an array sees every view of it: optimizers
    # may lend their gradient storage to the backward pass (nbprop/optim/flat.py), which relies on that.
    views_hold_their_base = True

    def __init__(self):
        self._kernels = {}

    @staticmethod
    def find_kernel(name):
        """The CPU kernel called `name`, from whichever family defines it."""
        for family in FAMILIES:
            kernel = getattr(importlib.import_module(f"nbprop.kernels.{family}"), name, None)
            if kernel is not None:
                return kernel
        raise KeyError(f"no CPU kernel called {name!r} in the families {FAMILIES}")

    def kernel(self, name):
        """The CPU kernel called `name` (looked up once)."""
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self._kernels[name] = self.find_kernel(name)
        return kernel

    @staticmethod
    def rows(array):
        """The 2-D (rows, columns) form elementwise kernels take: a view, or a copy of a broadcast view."""
        if array.ndim == 2:
            return array
        if array.ndim == 1:
            return array[None]
        if array.ndim == 0:
            return array.reshape(1, 1)
        return array.reshape(-1, array.shape[-1])

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
                if len(arguments) == 3 and arguments[1].__class__ is np.ndarray:  # binary ops: no list to build
                    kernel.serial(arguments[0][None], arguments[1][None], out[None])
                else:
                    kernel.serial(*[a[None] if a.__class__ is np.ndarray else a for a in arguments])
            else:
                kernel.serial(*[self.rows(a) if a.__class__ is np.ndarray else a for a in arguments])
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
        kernel.parallel(*[self.rows(a) if a.__class__ is np.ndarray else a for a in arguments])
        return out

    def call(self, name, *arguments, work=None):
        """Run any other kernel. A parallel kernel picks its serial or threaded variant by `work`, the number
        of elements it touches (default: the size of its last argument, the output); pass 0 to force serial.
        """
        kernel = self._kernels.get(name) or self.kernel(name)
        if kernel.__class__ is ParallelKernel:
            kernel = kernel.for_size(arguments[-1].size if work is None else work)
        return kernel(*arguments)

    # ------------------------------------------------------------------------------------ allocation

    # NumPy's own functions, not wrappers: a Python frame per allocation is measurable on tiny ops.
    empty = staticmethod(np.empty)  # (shape, dtype)
    zeros = staticmethod(np.zeros)  # (shape, dtype)

    @staticmethod
    def full(shape, value, dtype):
        array = np.empty(shape, dtype)  # np.full's Python wrapper costs more than the fill of a small array
        array.fill(value)
        return array

    @staticmethod
    def arange(start, stop, step, dtype):
        return np.arange(start, stop, step, dtype=dtype)

    @staticmethod
    def linspace(start, stop, steps, dtype):
        """`steps` evenly spaced values from start to stop inclusive, computed in float64, then cast to `dtype`."""
        return np.linspace(start, stop, steps).astype(dtype)

    @staticmethod
    def eye(rows, columns, dtype):
        """The (rows, columns) matrix with ones on its diagonal, zeros elsewhere."""
        return np.eye(rows, columns, dtype=dtype)

    @staticmethod
    def scalar_view(value, dtype, shape):
        """A read-only array of `shape` whose every element is `value`, without a copy (stride 0)."""
        return np.ndarray(shape, dtype, np.array(value, dtype), 0, (0,) * len(shape))

    @staticmethod
    def uniform(source, shape, dtype):
        """Uniform draws in [0, 1) of `shape` in `dtype` from `source()`, a NumPy Generator (a function returning
        it, since the default generator is replaced when it is reseeded)."""
        return source().random(shape, dtype=dtype)

    # ----------------------------------------------------------------------------------- host transfer

    @staticmethod
    def asarray(data, dtype=None):
        """A C-contiguous array of host `data` on this device, of the same shape (copied only if needed)."""
        return np.asarray(data, dtype=dtype, order="C")

    @staticmethod
    def to_numpy(array):
        """The array as a NumPy array in host memory (the same memory on the CPU)."""
        return array

    @staticmethod
    def item(array):
        """The single element of `array` as a Python number."""
        return array.reshape(-1)[0].item()

    # ------------------------------------------------------------------------------- layout and views

    @staticmethod
    def is_contiguous(array):
        return array.flags.c_contiguous

    @staticmethod
    def is_writeable(array):
        return array.flags.writeable

    @staticmethod
    def strides(array):
        """The strides in elements (0 along a broadcast dimension)."""
        return tuple(stride // array.itemsize for stride in array.strides)

    @staticmethod
    def view(array, shape):
        """A view of `shape`; a ValueError where the strides allow none."""
        return np.reshape(array, shape, copy=False)

    @staticmethod
    def reshape(array, shape):
        """A view of `shape` where the strides allow one, else a C-contiguous copy."""
        return array.reshape(shape)

    @staticmethod
    def permute(array, dims):
        """A view with dimension i of the result being dimension dims[i] of `array`."""
        return array.transpose(dims)

    @staticmethod
    def transpose_matrices(array):
        """A view with the last two dimensions swapped (PyTorch's `mT`), for arrays of 2 or more dimensions."""
        return array.swapaxes(-1, -2)

    @staticmethod
    def expand(array, shape):
        """A view of `shape`: new leading dimensions and size-1 dimensions repeat with stride 0."""
        lead = len(shape) - array.ndim
        strides = [0] * lead
        for size, target, stride in zip(array.shape, shape[lead:], array.strides):
            strides.append(stride if size == target else 0)
        if array.flags.c_contiguous:
            return np.ndarray(shape, array.dtype, array, 0, tuple(strides))
        return np.lib.stride_tricks.as_strided(array, shape, strides, writeable=array.flags.writeable)

    @staticmethod
    def region(array, key):
        """The view `array[key]` for a tuple of slices, integers, None and Ellipsis (basic indexing)."""
        return array[key]

    @staticmethod
    def write_region(array, key, source):
        """array[key] = source for a key as in `region` (source an array or a number, broadcast to the region)."""
        array[key] = source

    @staticmethod
    def take(array, key):
        """array[key] by NumPy's advanced indexing, as a new C-contiguous array: `key` a tuple of full slices and
        index arrays of this device (int64, broadcast together, negative counting from the end; or bool masks).
        IndexError for an index out of bounds."""
        result = array[key]
        return result if result.flags.c_contiguous else np.array(result, order="C")

    @staticmethod
    def put(array, key, values):
        """array[key] = values for a key as in `take` (where positions repeat, the last write wins); `values` an
        array broadcast to the shape of array[key], or a number. IndexError for an index out of bounds."""
        array[key] = values

    # ---------------------------------------------------------------------------------------- copies

    @staticmethod
    def copy(array):
        """A C-contiguous copy."""
        return np.array(array, order="C")

    @staticmethod
    def contiguous(array):
        """`array` itself if C-contiguous, else a C-contiguous copy."""
        return array if array.flags.c_contiguous else np.array(array, order="C")

    @staticmethod
    def copy_into(destination, source):
        """Copy `source` (broadcast to it) into the array `destination`."""
        np.copyto(destination, source)

    @staticmethod
    def fill(array, value):
        array.fill(value)

    @staticmethod
    def concatenate_into(arrays, out):
        """Copy the arrays, each flattened in C order, one after another into the 1-D C-contiguous `out`, whose
        size is their total; an array may lie in `out`'s own memory (it is read before it is overwritten)."""
        flats = [array.reshape(-1) for array in arrays]
        owner = out if out.base is None else out.base
        if any(flat.base is owner for flat in flats):
            out[...] = np.concatenate(flats)
        else:
            np.concatenate(flats, out=out)

    @staticmethod
    def astype(array, dtype):
        """A C-contiguous copy converted to `dtype`."""
        return np.array(array, dtype=dtype, order="C")

    # ------------------------------------------------------------------------------------- linear algebra

    @staticmethod
    def qr(matrix):
        """(Q, R), the reduced QR decomposition of a 2-D float64 array (LAPACK's, as NumPy computes it)."""
        return np.linalg.qr(matrix)

    # ------------------------------------------------------------------------------------- checks

    @staticmethod
    def read_status(status, position=0):
        """The verdict of a checking kernel: element `position` of its int64 status array, as a Python int."""
        return int(status[position])

    @staticmethod
    def count_nonzero(array):
        return int(np.count_nonzero(array))

    @staticmethod
    def count_nonfinite(array, include_infinity):
        """How many elements are NaN (or also +-inf); for anomaly mode, where speed does not matter."""
        return int(np.count_nonzero(~np.isfinite(array) if include_infinity else np.isnan(array)))


# The device whose arrays are NumPy arrays in host memory: where .numpy() shares storage, and .cpu() goes.
HOST = CpuDevice.name
DEVICES = {HOST: CpuDevice()}


def get(name, op=None):
    """The device called `name` ('cpu'; 'cuda' once its backend is installed); `op` names the caller in the
    error for an unknown device."""
    device = DEVICES.get(name)
    if device is None:
        raise RuntimeError(f"{op + ': ' if op else ''}device {name!r} is not available; known devices: "
                           f"{sorted(DEVICES)}")
    return device


cpu = DEVICES[HOST]
