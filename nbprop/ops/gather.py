"""Gather and scatter along one dimension: gather, scatter, scatter_add, index_select, masked_fill, with gradients.

Index tensors are saved with `save_for_backward` (an in-place change before backward raises) and every index
read from data is bounds-checked by a kernel before use, also in backward (an index changed through `.numpy()`
gets PyTorch's error, never a crash).
"""

import math
import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import elementwise
from nbprop.ops.broadcast import broadcast_shapes, expand
from nbprop.ops.elementwise_base import scalar_tensor
from nbprop.ops.inplace import in_place
from nbprop.ops.padding import PadConstant
from nbprop.tensor import Tensor


def wrap_dim(dim, ndim, op):
    """`dim` as an index in [0, max(ndim, 1)); IndexError (PyTorch's class) naming the op otherwise."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}(): dim must be an int, got {dim!r}")
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"{op}(): dimension out of range (expected to be in range of [{-bound}, {bound - 1}], but "
                         f"got {dim}) for a tensor of {ndim} dimensions")
    return int(dim) % bound


def sizes(shape):
    """A shape as the kernels see it: a 0-d tensor is one element along dimension 0."""
    return tuple(shape) or (1,)


def folded(device, array, axis):
    """An array as (outer, size, inner) around `axis`: a view of a C-contiguous array, else a contiguous copy."""
    shape = sizes(array.shape)
    lines = (math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))
    return device.reshape(device.contiguous(array), lines)


def index_array(index, op):
    """The C-contiguous int64 array of an integer index tensor; PyTorch's RuntimeError for other dtypes."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}(): index must be a Tensor, got {type(index).__name__}")
    if index.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): expected dtype int32 or int64 for index, got {index.dtype}")
    device = DEVICES[index.device]
    if index.dtype != dtypes.int64:
        return device.astype(index._data, dtypes.int64)
    return device.contiguous(index._data)


def check_bounds(device, indices, size, axis, op, error=RuntimeError):
    """Raise `error` naming the first index of `indices` (an int64 array) outside [0, size)."""
    found = device.empty(2, dtypes.int64)
    device.call("check_indices", device.reshape(indices, (-1,)), size, found, work=indices.size)
    if device.read_status(found) >= 0:
        raise error(f"{op}: index {device.read_status(found, 1)} is out of bounds for dimension {axis} with size "
                    f"{size}")


# Identity maps (the common case: an index as large as the tensor apart from the indexed dimension), made once
# per device up to this many positions, so that small ops do not rebuild them.
_IDENTITY_SIZE = 1 << 16
_identities = {}


def _positions(device, index_sizes, target_sizes):
    out = device.empty(math.prod(index_sizes), dtypes.int64)
    device.call("fold_positions", device.asarray(index_sizes, dtypes.int64), device.asarray(target_sizes, dtypes.int64),
                out)
    return out


def position_maps(device, index_sizes, target_sizes, axis):
    """The maps from the (outer, inner) positions of an index of `index_sizes` to those of a tensor of
    `target_sizes` around `axis` (see kernels/gather.py)."""
    maps = []
    for part in (slice(None, axis), slice(axis + 1, None)):
        count = math.prod(index_sizes[part])
        if index_sizes[part] == target_sizes[part] and count <= _IDENTITY_SIZE:
            identity = _identities.get(device.name)
            if identity is None:
                identity = _identities[device.name] = _positions(device, (_IDENTITY_SIZE,), (_IDENTITY_SIZE,))
            maps.append(device.region(identity, (slice(0, count),)))
        else:
            maps.append(_positions(device, index_sizes[part], target_sizes[part]))
    return maps


def _check_same_rank(index, other, name, op):
    if len(sizes(index.shape)) != len(sizes(other.shape)):
        raise RuntimeError(f"{op}(): index tensor must have the same number of dimensions as {name} tensor (index "
                           f"of shape {list(index.shape)}, {name} of shape {list(other.shape)})")


def _check_devices(op, *tensors):
    devices = {tensor.device for tensor in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{op}(): expected all tensors on one device, got {sorted(devices)}")


# ------------------------------------------------------------------------------------------------ gather


class Gather(Function):
    @staticmethod
    def forward(ctx, x, axis, index):
        device = DEVICES[x.device]
        indices = index_array(index, "gather")
        input_sizes, index_sizes = sizes(x.shape), sizes(index.shape)
        check_bounds(device, indices, input_sizes[axis], axis, "gather()")
        out = device.empty(index.shape, x.dtype)
        input_maps = position_maps(device, index_sizes, input_sizes, axis)
        own_maps = position_maps(device, index_sizes, index_sizes, axis)
        if out.size:
            device.call("gather_lines", folded(device, x._data, axis), *input_maps, folded(device, indices, axis),
                        *own_maps, folded(device, out, axis), work=out.size)
        ctx.axis, ctx.input_shape, ctx.maps = axis, x.shape, (own_maps, input_maps)
        ctx.save_for_backward(index)
        return Tensor._make(out, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        indices = index_array(index, "gather")
        axis = ctx.axis
        check_bounds(device, indices, sizes(ctx.input_shape)[axis], axis, "gather() backward")
        # d out[o, j, i] / d x[o, index[o, j, i], i] = 1: the gradient is added back at the gathered positions.
        grad_input = device.zeros(ctx.input_shape, grad_output.dtype)
        own_maps, input_maps = ctx.maps
        device.call("scatter_lines", folded(device, grad_output._data, axis), *own_maps,
                    folded(device, indices, axis), *input_maps, True, folded(device, grad_input, axis),
                    work=indices.size)
        return Tensor._make(grad_input, None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # The same adjoint, recorded: a scatter_add into zeros, whose own gradient is this gather again. The saved
        # (version-checked) index is a constant of the graph.
        (index,) = ctx.saved_tensors
        return scatter_add(_zeros(ctx.input_shape, grad_output), ctx.axis, index, grad_output), None, None


def _zeros(shape, like):
    """A constant zero tensor of `shape` with like's dtype and device."""
    return Tensor._make(DEVICES[like.device].zeros(shape, like.dtype), None, like.device)


def gather(input, dim, index, *, sparse_grad=False):  # noqa: A002 - PyTorch's argument name
    """out[..., j, ...] = input[..., index[..., j, ...], ...] along `dim`; index has input's rank and is no larger
    than input in the other dimensions."""
    if sparse_grad:
        raise NotImplementedError("gather(): sparse_grad=True is not supported (there are no sparse tensors)")
    index_array(index, "gather")
    axis = wrap_dim(dim, input.ndim, "gather")
    _check_devices("gather", input, index)
    _check_same_rank(index, input, "input", "gather")
    input_sizes, index_sizes = sizes(input.shape), sizes(index.shape)
    for other, (index_size, input_size) in enumerate(zip(index_sizes, input_sizes)):
        if other != axis and index_size > input_size:
            raise RuntimeError(f"gather(): size does not match at dimension {other}: expected index "
                               f"{list(index.shape)} to be no larger than self {list(input.shape)} apart from "
                               f"dimension {axis}")
    return Gather.apply(input, axis, index)


# ------------------------------------------------------------------------------------ scatter, scatter_add


class Scatter(Function):
    """x with source's elements written (or added, where accumulate) at index along axis."""

    @staticmethod
    def forward(ctx, x, axis, index, source, accumulate):
        device = DEVICES[x.device]
        indices = index_array(index, "scatter")
        input_sizes, index_sizes, source_sizes = sizes(x.shape), sizes(index.shape), sizes(source.shape)
        op = "scatter_add()" if accumulate else "scatter()"
        check_bounds(device, indices, input_sizes[axis], axis, op)
        out = device.copy(x._data)
        source_maps = position_maps(device, index_sizes, source_sizes, axis)
        input_maps = position_maps(device, index_sizes, input_sizes, axis)
        if indices.size:
            device.call("scatter_lines", folded(device, source._data, axis), *source_maps,
                        folded(device, indices, axis), *input_maps, accumulate, folded(device, out, axis),
                        work=indices.size)
        ctx.axis, ctx.accumulate, ctx.source_shape = axis, accumulate, source.shape
        ctx.maps = (source_maps, input_maps)
        ctx.save_for_backward(index)
        return Tensor._make(out, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        indices = index_array(index, "scatter")
        axis = ctx.axis
        check_bounds(device, indices, sizes(grad_output.shape)[axis], axis, "scatter() backward")
        source_maps, input_maps = ctx.maps
        grad_output_data = folded(device, grad_output._data, axis)
        grad_input = grad_source = None
        if ctx.needs_input_grad[0]:
            if ctx.accumulate:
                grad_input = grad_output
            else:
                # The overwritten elements no longer depend on x: zeros written where the index points.
                data = device.copy(grad_output._data)
                zeros = device.zeros(indices.shape, data.dtype)
                own_maps = position_maps(device, sizes(indices.shape), sizes(indices.shape), axis)
                device.call("scatter_lines", folded(device, zeros, axis), *own_maps, folded(device, indices, axis),
                            *input_maps, False, folded(device, data, axis), work=indices.size)
                grad_input = Tensor._make(data, None, grad_output.device)
        if ctx.needs_input_grad[3]:
            # Every source element at an index position (also one overwritten later) reads the gradient there;
            # the source elements past the index's extent get zero.
            data = device.zeros(ctx.source_shape, grad_output.dtype)
            if indices.size:
                device.call("gather_lines", grad_output_data, *input_maps, folded(device, indices, axis),
                            *source_maps, folded(device, data, axis), work=indices.size)
            grad_source = Tensor._make(data, None, grad_output.device)
        return grad_input, None, None, grad_source, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        (index,) = ctx.saved_tensors
        axis = ctx.axis
        grad_input = grad_source = None
        if ctx.needs_input_grad[0]:
            # Overwritten elements: zeros scattered at the index (linear in the gradient, so recorded as such).
            grad_input = grad_output if ctx.accumulate else scatter(grad_output, axis, index, value=0.0)
        if ctx.needs_input_grad[3]:
            # A gather, whose gradient is a scatter_add; source elements past the index's extent get zero (a pad).
            grad_source = gather(grad_output, axis, index)
            if tuple(grad_source.shape) != tuple(ctx.source_shape):
                pairs = [(0, total - part) for part, total in zip(grad_source.shape, ctx.source_shape)]
                grad_source = PadConstant.apply(grad_source, pairs, 0.0)
        return grad_input, None, None, grad_source, None


def _scatter(input, dim, index, src, value, accumulate, op):  # noqa: A002 - PyTorch's argument name
    index_array(index, op)
    axis = wrap_dim(dim, input.ndim, op)
    _check_devices(op, input, index)
    _check_same_rank(index, input, "self", op)
    if src is None and value is None:
        raise TypeError(f"{op}(): expects src (a Tensor) or value (a number)")
    if value is not None or not isinstance(src, Tensor):
        value = src if value is None else value
        if not isinstance(value, numbers.Number) and not (isinstance(value, Tensor) and value.ndim == 0):
            raise TypeError(f"{op}(): value must be a number, got {type(value).__name__}")
        if isinstance(value, Tensor):
            value = value.item()
        src = scalar_tensor(value, input.dtype, index.shape, input.device)
    else:
        _check_devices(op, input, src)
        if src.dtype != input.dtype:
            raise RuntimeError(f"{op}(): expected self.dtype to be equal to src.dtype, got {input.dtype} and "
                               f"{src.dtype}")
        _check_same_rank(index, src, "src", op)
    input_sizes, index_sizes, source_sizes = sizes(input.shape), sizes(index.shape), sizes(src.shape)
    for other, (index_size, input_size, source_size) in enumerate(zip(index_sizes, input_sizes, source_sizes)):
        if index_size > source_size or (other != axis and index_size > input_size):
            raise RuntimeError(f"{op}(): expected index {list(index.shape)} to be no larger than self "
                               f"{list(input.shape)} apart from dimension {axis} and to be no larger size than "
                               f"src {list(src.shape)}")
    if accumulate and input.dtype.kind == "b":
        # bool + bool is a logical or: add as integers, then compare with 0.
        total = Scatter.apply(input.long(), axis, index, src.long(), True)
        return elementwise.compare("not_equal", total, 0)
    return Scatter.apply(input, axis, index, src, accumulate)


def scatter(input, dim, index, src=None, value=None, *, reduce=None):  # noqa: A002 - PyTorch's argument name
    """A copy of input with src's elements (or the number `value`) written at index along `dim`:
    out[..., index[..., j, ...], ...] = src[..., j, ...]; of repeated indices the last write wins."""
    if reduce is not None:
        raise NotImplementedError(f"scatter(): reduce={reduce!r} is not supported; use scatter_add for 'add'")
    return _scatter(input, dim, index, src, value, False, "scatter")


def scatter_add(input, dim, index, src):  # noqa: A002 - PyTorch's argument name
    """A copy of input with src's elements added at index along `dim` (repeated indices add up, in order)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add(): src must be a Tensor, got {type(src).__name__}")
    return _scatter(input, dim, index, src, None, True, "scatter_add")


def scatter_(input, dim, index, src=None, value=None, *, reduce=None):  # noqa: A002
    return in_place(input, scatter(input, dim, index, src, value, reduce=reduce), "scatter_")


def scatter_add_(input, dim, index, src):  # noqa: A002
    return in_place(input, scatter_add(input, dim, index, src), "scatter_add_")


# ------------------------------------------------------------------------------------------- index_select


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, axis, index):
        device = DEVICES[x.device]
        indices = device.reshape(index_array(index, "index_select"), (-1,))
        input_sizes = sizes(x.shape)
        check_bounds(device, indices, input_sizes[axis], axis, "index_select()", IndexError)
        shape = list(x.shape)
        if shape:
            shape[axis] = indices.size
        out = device.empty(tuple(shape), x.dtype)
        if out.size:
            device.call("index_select_rows", folded(device, x._data, axis), indices, folded(device, out, axis),
                        work=out.size)
        ctx.axis, ctx.input_shape = axis, x.shape
        ctx.save_for_backward(index)
        return Tensor._make(out, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        indices = device.reshape(index_array(index, "index_select"), (-1,))
        axis = ctx.axis
        check_bounds(device, indices, sizes(ctx.input_shape)[axis], axis, "index_select() backward", IndexError)
        # Each selected row's gradient adds into the row it was read from (repeated indices add up).
        grad_input = device.zeros(ctx.input_shape, grad_output.dtype)
        device.call("index_add_rows", folded(device, grad_output._data, axis), indices,
                    folded(device, grad_input, axis), work=grad_output._data.size)
        return Tensor._make(grad_input, None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        (index,) = ctx.saved_tensors
        if not ctx.input_shape:  # a 0-d input: its single element was selected once
            return grad_output, None, None
        return index_add_along(grad_output, ctx.axis, index, ctx.input_shape[ctx.axis]), None, None


def index_add_along(source, axis, index, size):
    """Zeros of source's shape but `size` along axis, with the slices of source added at the positions `index` (a
    1-D integer tensor, one per slice) along axis: the adjoint of index_select, recorded as a scatter_add (whose
    gradient is a gather), with index as a constant broadcast over the other dimensions."""
    device = DEVICES[source.device]
    indices = index_array(index, "index_add")
    line = [1] * source.ndim
    line[axis] = source.shape[axis]
    spread = Tensor._make(device.expand(device.reshape(indices, tuple(line)), source.shape), None, source.device)
    shape = list(source.shape)
    shape[axis] = size
    return scatter_add(_zeros(tuple(shape), source), axis, spread, source)


def index_select(input, dim, index):  # noqa: A002 - PyTorch's argument name
    """The entries of input at the positions `index` (a 1-D or 0-d integer tensor) along `dim`."""
    if not isinstance(index, Tensor):
        raise TypeError(f"index_select(): index must be a Tensor, got {type(index).__name__}")
    if index.ndim > 1:
        raise IndexError(f"index_select(): index is supposed to be a vector, got shape {list(index.shape)}")
    index_array(index, "index_select")
    axis = wrap_dim(dim, input.ndim, "index_select")
    _check_devices("index_select", input, index)
    if input.ndim == 0 and index.numel() != 1:
        raise RuntimeError(f"index_select(): index to scalar can have only 1 value, got {index.numel()} value(s)")
    return IndexSelect.apply(input, axis, index)


# -------------------------------------------------------------------------------------------- masked_fill


def masked_fill(input, mask, value):  # noqa: A002 - PyTorch's argument name
    """input with `value` (a number, or a 0-d tensor that gets the gradient of the filled elements) where the
    bool `mask` is true; input and mask broadcast together."""
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        raise RuntimeError(f"masked_fill(): only supports boolean masks, but got mask of "
                           f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill(): only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s)")
        _check_devices("masked_fill", input, mask, value)
        value = value.to(input.dtype)
    elif isinstance(value, numbers.Number):
        value = scalar_tensor(value, input.dtype, (), input.device)
    else:
        raise TypeError(f"masked_fill(): value must be a number or a 0-d Tensor, got {type(value).__name__}")
    _check_devices("masked_fill", input, mask)
    shape = broadcast_shapes(input.shape, mask.shape, "masked_fill")
    return elementwise.Where.apply(expand(mask, shape), expand(value, shape), expand(input, shape))


def masked_fill_(input, mask, value):  # noqa: A002
    return in_place(input, masked_fill(input, mask, value), "masked_fill_")
