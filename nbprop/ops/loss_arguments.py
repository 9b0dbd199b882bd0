"""The arguments every loss shares: reduction (and PyTorch's deprecated size_average/reduce), tensor checks, dtypes."""

import warnings

from nbprop import dtypes
from nbprop.ops.broadcast import broadcast_shapes
from nbprop.tensor import Tensor

# The reductions by name, and the codes the loss kernels take for them.
REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def reduction_name(reduction, size_average, reduce, op):
    """The reduction name, from PyTorch's deprecated size_average/reduce flags when either is given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", stacklevel=3)
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                      stacklevel=3)
        reduction = "mean"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: {reduction} is not a valid value for reduction (expected 'none', 'mean' or 'sum')")
    return reduction


def apply_reduction(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def check_tensor(value, name, op):
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    return value


def check_floating(value, name, op):
    if check_tensor(value, name, op).dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point {name}, got a {value.dtype} tensor of shape "
                           f"{tuple(value.shape)}")
    return value


def common_dtype(tensors):
    """Floating tensors (or None) converted to their promoted dtype, as PyTorch's binary ops do."""
    dtype = None
    for tensor in tensors:
        if tensor is not None:
            dtype = tensor.dtype if dtype is None else dtypes.promote(dtype, tensor.dtype)
    return [None if tensor is None else tensor.to(dtype) for tensor in tensors]


def broadcast_weight(weight, shape, name, op):
    """A weight that broadcasts to the input's `shape` without growing it (PyTorch's BCE rule)."""
    check_floating(weight, name, op)
    if broadcast_shapes(tuple(weight.shape), tuple(shape), op) != tuple(shape):
        raise RuntimeError(f"{op}: {name} of shape {tuple(weight.shape)} does not broadcast to the input's shape "
                           f"{tuple(shape)}")
    return weight
