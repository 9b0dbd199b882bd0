"""Extreme-value reductions (max/min, amax/amin, argmax/argmin) and their gradients."""

import collections
import math
import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import elementwise, movement, reduce
from nbprop.ops.broadcast import expand
from nbprop.ops.gather import scatter_add
from nbprop.ops.reduce import fold, parse_dims, prepare, reduce_dims, work, wrap
from nbprop.tensor import Tensor

# torch.return_types.max / min: (values, indices) of a reduction along one dimension.
max_result = collections.namedtuple("max", ("values", "indices"))
min_result = collections.namedtuple("min", ("values", "indices"))


# ------------------------------------------------------------------------------ max, min, amax, amin


class Extreme(Function):
    """amax/amin over dims, and max()/min() of all elements; ties share the gradient evenly."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, name, whole):
        shape = prepare(ctx, x, dims, keepdim)
        ctx.dims = dims
        ctx.whole = whole
        result = wrap(reduce_dims(x, dims, name, x._data.dtype), shape, x.device)
        ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        x, result = ctx.saved_tensors
        device = DEVICES[result.device]
        kept = Tensor._make(device.reshape(result._data, ctx.kept_shape), None, result.device)
        if ctx.whole and math.isnan(result.item()):
            # PyTorch's max()/min(): a NaN result sends the gradient to the NaN elements.
            mask = elementwise.compare("not_equal", x, x)
        else:
            mask = elementwise.compare("equal", x, expand(kept, x.shape))
        mask = mask.to(x.dtype)
        count = reduce.sum(mask, ctx.dims, keepdim=True)
        # (g / count) * mask, as PyTorch: a NaN amax (count 0) gives NaN gradients over its slice.
        share = Tensor._make(device.reshape(grad_output._data, ctx.kept_shape), None, grad_output.device) / count
        return elementwise.mul(expand(share, x.shape), mask), None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # The mask of the extreme elements and their count are constants (piecewise constant in x): only the
        # gradient's path is recorded.
        x, result = ctx.saved_tensors
        device = DEVICES[result.device]
        kept = Tensor._make(device.reshape(result._data, ctx.kept_shape), None, result.device)
        if ctx.whole and math.isnan(kept.item()):
            mask = elementwise.compare("not_equal", x, x)
        else:
            mask = elementwise.compare("equal", x, expand(kept, x.shape))
        mask = mask.to(x.dtype)
        count = reduce.sum(mask, ctx.dims, keepdim=True)
        share = movement.reshape(grad_output, ctx.kept_shape) / count
        return elementwise.mul(expand(share, x.shape), mask), None, None, None, None


class ExtremeAlongDim(Function):
    """max/min along one dimension: (values, indices); the gradient goes to the chosen index."""

    @staticmethod
    def forward(ctx, x, axis, keepdim, largest):
        shape = prepare(ctx, x, (axis,) if x.ndim else (), keepdim)
        folded = fold(x, (axis,))
        values, indices = _extreme_with_indices(DEVICES[x.device], folded, largest)
        ctx.folded_shape, ctx.axis = folded.shape, axis
        indices = wrap(indices, shape, x.device)
        ctx.save_for_backward(indices)
        return wrap(values, shape, x.device), indices

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        (indices,) = ctx.saved_tensors
        device = DEVICES[grad_values.device]
        outer, _, inner = ctx.folded_shape
        grad_input = device.empty(ctx.folded_shape, grad_values.dtype)
        device.call("index_backward", device.reshape(device.contiguous(grad_values._data), (outer, inner)),
                    device.reshape(indices._data, (outer, inner)), grad_input, work=grad_input.size)
        return Tensor._make(device.reshape(grad_input, ctx.input_shape), None, grad_values.device), None, None, None

    @staticmethod
    def backward_graph(ctx, grad_values, grad_indices):
        # A scatter of the gradient to the chosen positions, recorded (its gradient is a gather); the saved
        # indices come back joined to this node: detached, they are a constant.
        (indices,) = ctx.saved_tensors
        device = DEVICES[grad_values.device]
        zeros = Tensor._make(device.zeros(ctx.input_shape, grad_values.dtype), None, grad_values.device)
        index = movement.reshape(indices.detach(), ctx.kept_shape)
        return (scatter_add(zeros, ctx.axis, index, movement.reshape(grad_values, ctx.kept_shape)), None, None,
                None)


def _extreme_with_indices(device, folded, largest):
    """The maxima (largest) or minima along axis 1 of a folded (outer, reduced, inner) array, and their indices."""
    outer, inner = folded.shape[0], folded.shape[2]
    values = device.empty((outer, inner), folded.dtype)
    indices = device.empty((outer, inner), dtypes.int64)
    device.call("extreme_with_indices", folded, largest, values, indices, work=work(folded))
    return values, indices


def _comparable(x, op):
    if x._data.dtype.kind == "b":
        raise TypeError(f"{op}: bool tensors are not supported; use x.long() or any()/all()-style logic")
    return x


def _empty_whole(x, op):
    if x._data.size == 0:
        raise RuntimeError(f"{op}(): expected reduction dim to be specified for an empty input (shape "
                           f"{tuple(x.shape)}); pass dim=")


def _check_nonempty(x, dims, op):
    for axis in dims:
        if x.shape[axis] == 0:
            raise IndexError(f"{op}(): expected reduction dim {axis} to have non-zero size (tensor of shape "
                             f"{tuple(x.shape)})")


def _single_dim(x, dim, op):
    """The one dimension that max/min/argmax/argmin along a dim reduce (0 for a 0-d tensor)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}" + ("; use a" + op + " for several dimensions"
                                                                     if op in ("max", "min") else ""))
    dims = parse_dims(dim, x.shape, op)
    _check_nonempty(x, dims, op)
    return dims[0] if dims else 0


def _extreme(x, dim, keepdim, op):
    x = _comparable(x, op)
    if dim is None:
        _empty_whole(x, op)
        return Extreme.apply(x, tuple(range(x.ndim)), False, f"a{op}_chunks", True)
    axis = _single_dim(x, dim, op)
    result = max_result if op == "max" else min_result
    return result(*ExtremeAlongDim.apply(x, axis, keepdim, op == "max"))


def max(x, dim=None, keepdim=False):
    """The largest element (dim None; NaN if any), or (values, indices) along `dim` (first of ties)."""
    return _extreme(x, dim, keepdim, "max")


def min(x, dim=None, keepdim=False):
    """The smallest element (dim None; NaN if any), or (values, indices) along `dim` (first of ties)."""
    return _extreme(x, dim, keepdim, "min")


def _amax_amin(x, dim, keepdim, op):
    x = _comparable(x, op)
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        _empty_whole(x, op)
    dims = parse_dims(dim, x.shape, op)
    _check_nonempty(x, dims, op)
    return Extreme.apply(x, dims, keepdim, f"{op}_chunks", False)


def amax(x, dim=(), keepdim=False):
    """Maximum over `dim` (() = all); NaN propagates; tied maxima share the gradient evenly."""
    return _amax_amin(x, dim, keepdim, "amax")


def amin(x, dim=(), keepdim=False):
    """Minimum over `dim` (() = all); NaN propagates; tied minima share the gradient evenly."""
    return _amax_amin(x, dim, keepdim, "amin")


# ------------------------------------------------------------------------------------ argmax, argmin


def _result_shape(shape, dims, keepdim):
    if keepdim:
        return tuple(1 if axis in dims else size for axis, size in enumerate(shape))
    return tuple(size for axis, size in enumerate(shape) if axis not in dims)


def _arg_extreme(x, dim, keepdim, op):
    if x._data.dtype.kind == "b":
        raise TypeError(f"{op}(): bool tensors are not supported; convert with x.long()")
    device = DEVICES[x.device]
    if dim is None:
        if x._data.size == 0:
            raise IndexError(f"{op}(): expected reduction dim to be specified for an empty input (shape "
                             f"{tuple(x.shape)}); pass dim=")
        folded = device.reshape(device.contiguous(x._data), (1, -1, 1))
        shape = (1,) * x.ndim if keepdim else ()
    else:
        axis = _single_dim(x, dim, op)
        folded = fold(x, (axis,))
        shape = _result_shape(x.shape, (axis,) if x.ndim else (), keepdim)
    _, indices = _extreme_with_indices(device, folded, op == "argmax")
    return wrap(indices, shape, x.device)


def argmax(x, dim=None, keepdim=False):
    """The index of the largest element (of the flattened tensor for dim None): first of ties; NaN wins."""
    return _arg_extreme(x, dim, keepdim, "argmax")


def argmin(x, dim=None, keepdim=False):
    """The index of the smallest element (of the flattened tensor for dim None): first of ties; NaN wins."""
    return _arg_extreme(x, dim, keepdim, "argmin")
