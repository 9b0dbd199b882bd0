"""Tensor factories: from data, filled, ranges and random, with PyTorch's signatures."""

import numbers
import warnings

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES, HOST
from nbprop.backend import get as get_device
from nbprop.random import numpy_generator
from nbprop.tensor import Tensor
from nbprop.tensor_operators import shape_arguments


def _finish(array, requires_grad, device):
    tensor = Tensor._make(array, None, device)
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor


def _dtype(dtype, default=None):
    if dtype is None:
        return dtypes.get_default_dtype() if default is None else default
    return dtypes.as_dtype(dtype)


def resolve_device(device, op=None):
    """The name of `device` (a name such as 'cpu', or None for the CPU), checked against the device table;
    `op` names the caller in the error for an unknown device."""
    if device is None:
        return HOST
    get_device(str(device), op)
    return str(device)


def _on_device(host, device):
    """Host-built values (a NumPy array) as an array on `device`."""
    return DEVICES[device].asarray(host)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays or a Tensor) on `device`
    (by default a Tensor's own device, else the CPU).

    Python floats become the default dtype (float32), ints int64, bools bool; NumPy float64 stays float64.
    """
    if isinstance(data, Tensor):
        source = data
        device = resolve_device(source.device if device is None else device)
        resolved = _dtype(dtype, source.dtype)
        if device == source.device:
            return _finish(DEVICES[device].astype(source._data, resolved), requires_grad, device)
        data = DEVICES[source.device].to_numpy(source._data)
    device = resolve_device(device)
    host = DEVICES[HOST]
    # NumPy makes new memory for lists and numbers, shared with no one: no second copy needed then.
    owned = isinstance(data, (list, tuple, numbers.Number))
    if isinstance(data, np.ndarray):
        inferred = dtypes.as_dtype(data.dtype) if data.dtype.kind in "fiub" else None
    else:
        data = host.asarray(data)
        kinds = {"f": dtypes.get_default_dtype(), "i": dtypes.int64, "u": dtypes.int64, "b": dtypes.bool_}
        inferred = kinds.get(data.dtype.kind)
    if inferred is None:
        raise TypeError(f"tensor: cannot make a tensor from data of NumPy dtype {data.dtype}")
    resolved = _dtype(dtype, inferred)
    if data.dtype == np.uint64 and resolved == dtypes.int64 and data.size and data.max() > np.iinfo(np.int64).max:
        # NumPy's cast would wrap it to a negative number.
        raise ValueError(f"tensor: the value {data.max()} does not fit int64, the widest integer dtype nbprop has")
    # The copy is made in host memory: whether a device's array shares the host's memory is the device's business.
    values = data if owned and data.dtype == resolved else host.astype(data, resolved)
    return _finish(_on_device(values, device), requires_grad, device)


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
        return Tensor._make(array, None, HOST)
    widened = dtypes.WIDENED.get(array.dtype)
    if widened is None:
        hint = "; if its values fit, convert it with array.astype(np.int64)" if array.dtype == np.uint64 else ""
        raise TypeError(f"from_numpy: dtype {array.dtype} is not supported; use float32, float64, int64 or "
                        f"bool, or a narrower integer or float16 (copied into int64 or float32){hint}")
    return Tensor._make(array.astype(widened), None, HOST)


def as_tensor(data, dtype=None):
    """`data` itself if it is already a tensor of `dtype`, else a new tensor."""
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype) \
            and data.dtype in dtypes.SUPPORTED:
        return from_numpy(data)
    return tensor(data, dtype)


def _filled(shape, value, dtype, requires_grad, device):
    device = resolve_device(device)
    return _finish(DEVICES[device].full(shape_arguments(shape), value, _dtype(dtype)), requires_grad, device)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 0, dtype, requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 1, dtype, requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False):
    device = resolve_device(device)
    return _finish(DEVICES[device].empty(shape_arguments(size), _dtype(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of `size` filled with `fill_value`; the dtype follows the value's type when not given."""
    if dtype is None:
        dtype = dtypes.promote_scalar(dtypes.bool_, fill_value) if not isinstance(fill_value, bool) else dtypes.bool_
    return _filled((size,) if isinstance(size, numbers.Integral) else size, fill_value, dtype, requires_grad, device)


def _like_device(input, device):  # noqa: A002
    """The *_like factories' device: `input`'s unless given (PyTorch's default)."""
    return getattr(input, "device", None) if device is None else device


def zeros_like(input, dtype=None, device=None, requires_grad=False):  # noqa: A002 - PyTorch's argument name
    return zeros(input.shape, dtype=input.dtype if dtype is None else dtype, device=_like_device(input, device),
                 requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):  # noqa: A002
    return ones(input.shape, dtype=input.dtype if dtype is None else dtype, device=_like_device(input, device),
                requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):  # noqa: A002
    return empty(input.shape, dtype=input.dtype if dtype is None else dtype, device=_like_device(input, device),
                 requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):  # noqa: A002
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                device=_like_device(input, device), requires_grad=requires_grad)


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
    device = resolve_device(device)
    host = DEVICES[HOST]
    # NumPy's arange of the requested dtype rounds differently: the range is made as NumPy infers it, then cast.
    values = host.astype(host.arange(start, end, step, None), resolved)
    return _finish(_on_device(values, device), requires_grad, device)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    device = resolve_device(device)
    return _finish(DEVICES[device].linspace(start, end, steps, _dtype(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    device = resolve_device(device)
    return _finish(DEVICES[device].eye(n, n if m is None else m, _dtype(dtype)), requires_grad, device)


def _floating_dtype(dtype, op):
    resolved = _dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"{op}: samples need a floating dtype (float32 or float64), got {resolved}")
    return resolved


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from `generator` (by default the one seeded by `manual_seed`)."""
    resolved = _floating_dtype(dtype, "randn")
    device = resolve_device(device)
    array = numpy_generator(generator, device, "randn").standard_normal(shape_arguments(size), dtype=resolved)
    return _finish(_on_device(array, device), requires_grad, device)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from `generator` (by default the one seeded by `manual_seed`)."""
    resolved = _floating_dtype(dtype, "rand")
    device = resolve_device(device)
    array = numpy_generator(generator, device, "rand").random(shape_arguments(size), dtype=resolved)
    return _finish(_on_device(array, device), requires_grad, device)


def randint(low, high=None, size=(), *, generator=None, dtype=None, device=None, requires_grad=False):
    """Integers uniform in [low, high) (int64 by default)."""
    if high is None:
        low, high = 0, low
    device = resolve_device(device)
    shape = shape_arguments((size,)) if size != () else ()
    array = numpy_generator(generator, device, "randint").integers(low, high, size=shape)
    return _finish(_on_device(array.astype(_dtype(dtype, dtypes.int64)), device), requires_grad, device)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):  # noqa: A002
    return randn(input.shape, generator=generator, dtype=input.dtype if dtype is None else dtype,
                 device=_like_device(input, device), requires_grad=requires_grad)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):  # noqa: A002
    return rand(input.shape, generator=generator, dtype=input.dtype if dtype is None else dtype,
                device=_like_device(input, device), requires_grad=requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0, ..., n - 1 (int64 by default; a floating dtype holds the same values)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"randperm: n must be an integer, got {type(n).__name__}")
    if n < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    resolved = _dtype(dtype, dtypes.int64)
    if resolved.kind == "b":
        raise NotImplementedError("randperm: not implemented for bool; use int64 or a floating dtype")
    if resolved.kind == "f" and n > 2 ** (np.finfo(resolved).nmant + 1):
        # Larger integers are not all representable: the values would not be a permutation.
        raise RuntimeError(f"randperm: n = {n} is too large for {resolved}, which holds the integers only up to "
                           f"{2 ** (np.finfo(resolved).nmant + 1)}")
    device = resolve_device(device)
    array = numpy_generator(generator, device, "randperm").permutation(int(n))
    return _finish(_on_device(DEVICES[HOST].astype(array, resolved), device), requires_grad, device)
