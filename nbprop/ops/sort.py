"""Sorting along one dimension: sort, argsort and topk as (values, indices); gradients go back through the indices."""

import collections
import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.gather import check_bounds, folded, index_array, position_maps, scatter_add, sizes, wrap_dim
from nbprop.tensor import Tensor

# torch.return_types.sort / topk.
sort_result = collections.namedtuple("sort", ("values", "indices"))
topk_result = collections.namedtuple("topk", ("values", "indices"))


class Sort(Function):
    """The first k entries of every line along axis in stable order (descending or ascending, NaN largest)."""

    @staticmethod
    def forward(ctx, x, axis, k, descending):
        device = DEVICES[x.device]
        lines = folded(device, x._data, axis)
        outer, _, inner = lines.shape
        values = device.empty((outer, k, inner), x.dtype)
        indices = device.empty((outer, k, inner), dtypes.int64)
        if values.size:
            device.call("sort_lines", lines, descending, values, indices,
                        work=lines.size if outer * inner > 1 else 0)
        shape = list(x.shape)
        if shape:
            shape[axis] = k
        values = Tensor._make(device.reshape(values, tuple(shape)), None, x.device)
        indices = Tensor._make(device.reshape(indices, tuple(shape)), None, x.device)
        ctx.axis, ctx.input_shape = axis, x.shape
        ctx.save_for_backward(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        (indices,) = ctx.saved_tensors
        device = DEVICES[grad_values.device]
        axis = ctx.axis
        positions = index_array(indices, "sort")
        check_bounds(device, positions, sizes(ctx.input_shape)[axis], axis, "sort() backward")
        # Each value came from one position of its line: its gradient goes back there, the rest get zero.
        grad_input = device.zeros(ctx.input_shape, grad_values.dtype)
        own_maps = position_maps(device, sizes(indices.shape), sizes(indices.shape), axis)
        device.call("scatter_lines", folded(device, grad_values._data, axis), *own_maps,
                    folded(device, positions, axis), *own_maps, False, folded(device, grad_input, axis),
                    work=positions.size)
        return Tensor._make(grad_input, None, grad_values.device), None, None, None

    @staticmethod
    def backward_graph(ctx, grad_values, grad_indices):
        # The same scatter, recorded (positions are distinct within a line, so adding is writing); its gradient is
        # a gather. The saved indices come back joined to this node: detached, they are a constant.
        (indices,) = ctx.saved_tensors
        zeros = Tensor._make(DEVICES[grad_values.device].zeros(ctx.input_shape, grad_values.dtype), None,
                             grad_values.device)
        return scatter_add(zeros, ctx.axis, indices.detach(), grad_values), None, None, None


def _sortable(input, op):  # noqa: A002 - PyTorch's argument name
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): expected a Tensor, got {type(input).__name__}")


def sort(input, dim=-1, descending=False, stable=False):  # noqa: A002 - PyTorch's argument name
    """(values, indices) of input sorted along `dim`; NaN sorts as the largest value. The sort is always stable
    (equal values keep their order), which `stable=False` allows."""
    _sortable(input, "sort")
    axis = wrap_dim(dim, input.ndim, "sort")
    return sort_result(*Sort.apply(input, axis, sizes(input.shape)[axis], bool(descending)))


def argsort(input, dim=-1, descending=False, stable=False):  # noqa: A002 - PyTorch's argument name
    """The indices that sort input along `dim` (those of `sort`)."""
    return sort(input, dim, descending, stable).indices


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's argument names
    """(values, indices) of the k largest (or smallest) entries along `dim`, in sorted order (also when
    sorted=False, which leaves the order free); ties go to the lower index; NaN counts as the largest."""
    _sortable(input, "topk")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"topk(): k must be an int, got {k!r}")
    if input.dtype.kind == "b":
        raise RuntimeError("topk(): bool tensors are not supported (as in PyTorch on the CPU); convert with .long()")
    axis = wrap_dim(dim, input.ndim, "topk")
    size = sizes(input.shape)[axis]
    if not 0 <= k <= size:
        raise RuntimeError(f"topk(): selected index k out of range: k = {k} for dimension {axis} of size {size} "
                           f"(tensor of shape {list(input.shape)})")
    if input.ndim == 0:
        k = 1  # PyTorch returns the element itself for k = 0 or 1
    return topk_result(*Sort.apply(input, axis, int(k), bool(largest)))
