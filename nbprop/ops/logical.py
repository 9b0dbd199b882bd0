"""Logical reductions: all and any over dimensions, bool results without gradient."""

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.ops.reduce import parse_dims, reduce_dims
from nbprop.tensor import Tensor


def _truth(x, dim, keepdim, name, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): expected a Tensor, got {type(x).__name__}")
    device = DEVICES[x.device]
    if isinstance(dim, (tuple, list)) and not dim:
        dims = ()  # PyTorch's all(dim=()) reduces nothing: each element's truth
    else:
        dims = parse_dims(dim, x.shape, op)
    if dims:
        result = reduce_dims(x, dims, name, dtypes.bool_)
    else:
        result = device.astype(x._data, dtypes.bool_)
    if keepdim:
        shape = tuple(1 if axis in dims else size for axis, size in enumerate(x.shape))
    else:
        shape = tuple(size for axis, size in enumerate(x.shape) if axis not in dims)
    return Tensor._make(device.reshape(result, shape), None, x.device)


def all(input, dim=None, keepdim=False):  # noqa: A001, A002 - PyTorch's names
    """Whether every element (over `dim`: an int, a tuple, or None for all) is nonzero; NaN counts as nonzero."""
    return _truth(input, dim, keepdim, "all_chunks", "all")


def any(input, dim=None, keepdim=False):  # noqa: A001, A002 - PyTorch's names
    """Whether any element (over `dim`: an int, a tuple, or None for all) is nonzero; NaN counts as nonzero."""
    return _truth(input, dim, keepdim, "any_chunks", "any")
