"""Tensor factories: from data, filled, ranges and random, with PyTorch's signatures."""

import numbers
import warnings

import numpy as np

from nbprop import dtypes
from nbprop.backend import get as get_device
from nbprop.random import generator
from nbprop.tensor import Tensor
from nbprop.tensor_operators import shape_arguments


def _finish(array, requires_grad, device="cpu"):
    tensor = Tensor._make(array, device=device)
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor


def _dtype(dtype, default=None):
    if dtype is None:
        return dtypes.get_default_dtype() if default is None else default
    return dtypes.as_dtype(dtype)


def _check_device(device):
    if device is not None:
        get_device(str(device))
    return "cpu" if device is None else str(device)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays or a Tensor).

    Python floats become the default dtype (float32), ints int64, bools bool; NumPy float64 stays float64.
    """
    device = _check_device(device)
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, np.ndarray):
        inferred = dtypes.as_dtype(data.dtype) if data.dtype.kind in "fiub" else None
    else:
        data = np.asarray(data)
        kinds = {"f": dtypes.get_default_dtype(), "i": dtypes.int64, "u": dtypes.int64, "b": dtypes.bool_}
        inferred = kinds.get(data.dtype.kind)
    if inferred is None:
        raise TypeError(f"tensor: cannot make a tensor from data of NumPy dtype {data.dtype}")
    resolved = _dtype(dtype, inferred)
    if data.dtype == np.uint64 and resolved == dtypes.int64 and data.size and data.max() > np.iinfo(np.int64).max:
        # NumPy's cast would wrap it to a negative number.
        raise ValueError(f"tensor: the value {data.max()} does not fit int64, the widest integer dtype nbprop has")
    array = get_device(device).asarray(data, resolved)
    if array is data or np.shares_memory(array, data):
        array = array.copy()
    return _finish(array, requires_grad, device)


def from_numpy(array):
    """A tensor sharing `array`'s memory (float32, float64, int64 or bool), as `torch.from_numpy`.

    The kernels compute in those four dtypes only, so int8, int16, int32, uint8, uint16 and uint32 arrays
    become int64 tensors and float16 arrays float32 ones: these are COPIES, which do not share memory with
    `array` (a later write to either is not seen by the other), and their arithmetic is that of the wider
    dtype (uint8 200 + 100 is 300, where PyTorch wraps to 44; float16 products are not rounded to float16).
    A read-only array is shared with a warning, as PyTorch does; in-place ops on the tensor then raise.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expects a NumPy array, got {type(array).__name__}")
    if type(array) is not np.ndarray:
        array = array.view(np.ndarray)  # np.matrix and other subclasses would change how indexing works
    if not array.dtype.isnative:
        raise ValueError(f"from_numpy: the array's byte order ({array.dtype.str}) is not the machine's; "
                         "convert it first with array.astype(array.dtype.newbyteorder('='))")
    if array.dtype in dtypes.SUPPORTED:
        if not array.flags.writeable:
            warnings.warn("The given NumPy array is not writable; the tensor shares its memory, so in-place "
                          "ops on the tensor will raise an error. You may want to copy the array or make it "
                          "writable before converting it to a tensor.", UserWarning, stacklevel=2)
        return Tensor._make(array)
    widened = dtypes.WIDENED.get(array.dtype)
    if widened is None:
        hint = "; if its values fit, convert it with array.astype(np.int64)" if array.dtype == np.uint64 else ""
        raise TypeError(f"from_numpy: dtype {array.dtype} is not supported; use float32, float64, int64 or "
                        f"bool, or a narrower integer or float16 (copied into int64 or float32){hint}")
    return Tensor._make(array.astype(widened))


def as_tensor(data, dtype=None):
    """`data` itself if it is already a tensor of `dtype`, else a new tensor."""
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype) \
            and data.dtype in dtypes.SUPPORTED:
        return from_numpy(data)
    return tensor(data, dtype)


def _filled(shape, value, dtype, requires_grad, device):
    device = _check_device(device)
    return _finish(get_device(device).full(shape_arguments(shape), value, _dtype(dtype)), requires_grad, device)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 0, dtype, requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 1, dtype, requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False):
    device = _check_device(device)
    return _finish(get_device(device).empty(shape_arguments(size), _dtype(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of `size` filled with `fill_value`; the dtype follows the value's type when not given."""
    if dtype is None:
        dtype = dtypes.promote_scalar(dtypes.bool_, fill_value) if not isinstance(fill_value, bool) else dtypes.bool_
    return _filled((size,) if isinstance(size, numbers.Integral) else size, fill_value, dtype, requires_grad, device)


def zeros_like(input, dtype=None, requires_grad=False):  # noqa: A002 - PyTorch's argument name
    return zeros(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def ones_like(input, dtype=None, requires_grad=False):  # noqa: A002
    return ones(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def empty_like(input, dtype=None, requires_grad=False):  # noqa: A002
    return empty(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, requires_grad=False):  # noqa: A002
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """[start, end) in steps of `step`; int64 when all three are integers, else the default float dtype."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError(f"arange: the bounds [{start}, {end}) are inconsistent with the sign of step {step}")
    integral = all(isinstance(value, numbers.Integral) for value in (start, end, step))
    resolved = _dtype(dtype, dtypes.int64 if integral else None)
    device = _check_device(device)
    return _finish(np.arange(start, end, step).astype(resolved), requires_grad, device)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _finish(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _finish(np.eye(n, m).astype(_dtype(dtype)), requires_grad)


def _floating_dtype(dtype, op):
    resolved = _dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"{op}: samples need a floating dtype (float32 or float64), got {resolved}")
    return resolved


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the generator seeded by `manual_seed`."""
    resolved = _floating_dtype(dtype, "randn")
    array = generator().standard_normal(shape_arguments(size), dtype=resolved)
    return _finish(array, requires_grad, _check_device(device))


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the generator seeded by `manual_seed`."""
    resolved = _floating_dtype(dtype, "rand")
    array = generator().random(shape_arguments(size), dtype=resolved)
    return _finish(array, requires_grad, _check_device(device))


def randint(low, high=None, size=(), dtype=None, requires_grad=False):
    """Integers uniform in [low, high) (int64 by default)."""
    if high is None:
        low, high = 0, low
    array = generator().integers(low, high, size=shape_arguments((size,)) if size != () else ())
    return _finish(array.astype(_dtype(dtype, dtypes.int64)), requires_grad)


def randn_like(input, dtype=None, requires_grad=False):  # noqa: A002
    return randn(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)


def rand_like(input, dtype=None, requires_grad=False):  # noqa: A002
    return rand(input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad)
