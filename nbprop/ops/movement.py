"""Movement ops: reshape, view, permute, squeeze, split, cat and stack, views wherever NumPy allows."""

import math
import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.backend import get as get_device
from nbprop.ops import padding
from nbprop.tensor import Tensor, _wrap_dim


def _view_of(x, array):
    """A tensor over (part of) x's storage: it shares x's version counter, so in-place changes are seen."""
    return Tensor._make(array, x._version_counter, x.device)


# ------------------------------------------------------------------------------------------ devices


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.source = x.device
        return Tensor._make(_transfer(x._data, x.device, device), None, device)

    @staticmethod
    def backward(ctx, grad_output):
        return Tensor._make(_transfer(grad_output._data, grad_output.device, ctx.source), None, ctx.source), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return to_device(grad_output, ctx.source), None


def _transfer(array, source, destination):
    """A copy of `array` from device `source` on the other device `destination`, through host memory."""
    return get_device(destination).asarray(DEVICES[source].to_numpy(array))


def to_device(x, device):
    """x copied to `device` ('cpu', ...); gradients flow back to x's device."""
    get_device(device, "to()")
    return ToDevice.apply(x, device)


# --------------------------------------------------------------------------------- reshape and view


def _resolve_shape(shape, numel, op):
    """`shape` with its one -1 filled in; PyTorch's errors for anything that does not hold `numel` elements."""
    shape = tuple(int(size) for size in shape)
    inferred = [index for index, size in enumerate(shape) if size == -1]
    if len(inferred) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred, got shape {list(shape)}")
    for size in shape:
        if size < -1:
            raise RuntimeError(f"{op}: invalid shape dimension {size} in {list(shape)}")
    known = math.prod(size for size in shape if size != -1)
    if inferred:
        if known == 0:
            raise RuntimeError(f"{op}: cannot reshape a tensor of {numel} elements into shape {list(shape)} because "
                               "the unspecified dimension size -1 can be any value and is ambiguous")
        if numel % known == 0:
            resolved = list(shape)
            resolved[inferred[0]] = numel // known
            return tuple(resolved)
    elif known == numel:
        return shape
    raise RuntimeError(f"{op}: shape {list(shape)} is invalid for input of size {numel}")


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape, must_view):
        ctx.input_shape = x.shape
        device = DEVICES[x.device]
        try:
            return _view_of(x, device.view(x._data, shape))
        except ValueError:
            if must_view:
                raise RuntimeError(
                    f"view: view size is not compatible with input tensor's size and stride (at least one "
                    f"dimension spans across two contiguous subspaces): shape {tuple(x.shape)} with strides "
                    f"{device.strides(x._data)} cannot be viewed as {shape}. Use .reshape(...) instead."
                ) from None
        return Tensor._make(device.reshape(x._data, shape), None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        return Tensor._make(device.reshape(grad_output._data, ctx.input_shape), None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return reshape(grad_output, ctx.input_shape), None, None


def reshape(x, shape):
    """A tensor of `shape` with x's elements in order: a view when the strides allow one, else a copy."""
    shape = _resolve_shape(shape, x._data.size, "reshape")
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape, False)


def view(x, shape):
    """Like reshape, but always a view; a RuntimeError if x's strides do not allow one."""
    return Reshape.apply(x, _resolve_shape(shape, x._data.size, "view"), True)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one; a 0-d tensor becomes 1-d."""
    if x.ndim == 0:
        _wrap_dim(start_dim, 0, "flatten")
        _wrap_dim(end_dim, 0, "flatten")
        return reshape(x, (1,))
    start = _wrap_dim(start_dim, x.ndim, "flatten")
    end = _wrap_dim(end_dim, x.ndim, "flatten")
    if start > end:
        raise RuntimeError(f"flatten: invalid args: start_dim {start_dim} cannot come after end_dim {end_dim} "
                           f"(tensor of shape {tuple(x.shape)})")
    if start == end:
        return x
    shape = x.shape
    return reshape(x, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])


def squeeze(x, dim=None):
    """Drop dimensions of size 1: all of them, or those among `dim` (an int or a tuple); others stay."""
    if dim is None:
        dims = range(x.ndim)
    else:
        dims = _wrap_dims(dim, x.ndim, "squeeze")
    shape = tuple(size for index, size in enumerate(x.shape) if not (index in dims and size == 1))
    return Reshape.apply(x, shape, True)


def unsqueeze(x, dim):
    """Insert a dimension of size 1 at `dim` (in [-ndim - 1, ndim])."""
    dim = _wrap_dim(dim, x.ndim + 1, "unsqueeze")
    return Reshape.apply(x, x.shape[:dim] + (1,) + x.shape[dim:], True)


def _wrap_dims(dim, ndim, op):
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    wrapped = [_wrap_dim(d, ndim, op) for d in dims]
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"{op}: a dimension appears more than once in {tuple(dims)}")
    return set(wrapped)


# ------------------------------------------------------------------------------------------- permute


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return _view_of(x, DEVICES[x.device].permute(x._data, dims))

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        return Tensor._make(device.permute(grad_output._data, _inverse(ctx.dims)), None, grad_output.device), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return permute(grad_output, _inverse(ctx.dims)), None


def _inverse(dims):
    """The permutation that undoes `dims`."""
    return tuple(sorted(range(len(dims)), key=dims.__getitem__))


def permute(x, dims):
    """A view with the dimensions reordered: result dimension i is input dimension dims[i]."""
    dims = tuple(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute: the tensor has {x.ndim} dimensions (shape {tuple(x.shape)}) but the "
                           f"ordering {dims} has {len(dims)}")
    wrapped = tuple(_wrap_dim(int(d), x.ndim, "permute") for d in dims)
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"permute: duplicate dims are not allowed, got {dims}")
    return Permute.apply(x, wrapped)


def transpose(x, dim0, dim1):
    """A view with dimensions dim0 and dim1 swapped."""
    dims = list(range(x.ndim))
    first, second = _wrap_dim(dim0, x.ndim, "transpose"), _wrap_dim(dim1, x.ndim, "transpose")
    if x.ndim:
        dims[first], dims[second] = dims[second], dims[first]
    return Permute.apply(x, tuple(dims))


# ---------------------------------------------------------------------------------- split and chunk


class Narrow(Function):
    @staticmethod
    def forward(ctx, x, dim, start, length):
        ctx.input_shape = x.shape
        ctx.region = (slice(None),) * dim + (slice(start, start + length),)
        return _view_of(x, DEVICES[x.device].region(x._data, ctx.region))

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        grad_input = device.zeros(ctx.input_shape, grad_output.dtype)
        device.write_region(grad_input, ctx.region, grad_output._data)
        return Tensor._make(grad_input, None, grad_output.device), None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # The gradient in its place among zeros: a constant pad, whose own gradient is this narrowing again.
        dim, piece = len(ctx.region) - 1, ctx.region[-1]
        before, after = piece.start, ctx.input_shape[dim] - piece.stop
        return padding.pad(grad_output, (0, 0) * (len(ctx.input_shape) - 1 - dim) + (before, after)), None, None, None


def split(x, split_size_or_sections, dim=0):
    """Views of consecutive pieces along `dim`: of split_size each (the last may be smaller) or of the listed
    sizes, which must add up to the dimension's size."""
    if x.ndim == 0:
        raise RuntimeError("split: expects at least a 1-dimensional tensor, got a 0-d tensor")
    dim = _wrap_dim(dim, x.ndim, "split")
    size = x.shape[dim]
    if isinstance(split_size_or_sections, numbers.Integral):
        split_size = int(split_size_or_sections)
        if split_size < 0:
            raise RuntimeError(f"split: expects split_size be non-negative, but got split_size={split_size}")
        if split_size == 0 and size != 0:
            raise RuntimeError(f"split: split_size can only be 0 if dimension size is 0, but got dimension "
                               f"{dim} of size {size}")
        count = max(-(-size // split_size), 1) if split_size else 1
        sizes = [split_size] * count
        sizes[-1] = split_size - (split_size * count - size)
    else:
        sizes = [int(section) for section in split_size_or_sections]
        if any(section < 0 for section in sizes) or sum(sizes) != size:
            raise RuntimeError(f"split: split_with_sizes expects split_sizes to sum exactly to {size} (input "
                               f"tensor's size at dimension {dim}, shape {tuple(x.shape)}), but got "
                               f"split_sizes={sizes}")
    pieces = []
    start = 0
    for length in sizes:
        pieces.append(Narrow.apply(x, dim, start, length))
        start += length
    return tuple(pieces)


def chunk(x, chunks, dim=0):
    """`chunks` pieces (fewer if the dimension is short) of ceil(size / chunks) along `dim`, as PyTorch."""
    if chunks <= 0:
        raise RuntimeError(f"chunk: expects `chunks` to be greater than 0, got: {chunks}")
    if x.ndim == 0:
        raise RuntimeError("chunk: expects at least a 1-dimensional tensor, got a 0-d tensor")
    size = x.shape[_wrap_dim(dim, x.ndim, "chunk")]
    if size == 0:
        return split(x, [0] * chunks, dim)
    return split(x, -(-size // chunks), dim)


# ------------------------------------------------------------------------------------- cat and stack


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *tensors):
        skipped = [_is_legacy_empty(t) for t in tensors]
        if all(skipped):
            skipped = [False] * len(tensors)
        kept = [t for t, skip in zip(tensors, skipped) if not skip]
        shape = list(kept[0].shape)
        shape[dim] = sum(t.shape[dim] for t in kept)
        device = DEVICES[kept[0].device]
        out = device.empty(tuple(shape), kept[0].dtype)
        regions = []
        start = 0
        for tensor, skip in zip(tensors, skipped):
            if skip:
                regions.append(None)
                continue
            region = (slice(None),) * dim + (slice(start, start + tensor.shape[dim]),)
            device.write_region(out, region, tensor._data)
            regions.append(region)
            start += tensor.shape[dim]
        ctx.regions = regions
        return Tensor._make(out, None, kept[0].device)

    @staticmethod
    def backward(ctx, grad_output):
        gradients = [None]
        for index, region in enumerate(ctx.regions):
            if not ctx.needs_input_grad[index + 1]:
                gradients.append(None)
            elif region is None:
                gradients.append(Tensor._make(DEVICES[grad_output.device].zeros((0,), grad_output.dtype), None,
                                              grad_output.device))
            else:
                gradients.append(_view_of(grad_output, DEVICES[grad_output.device].region(grad_output._data, region)))
        return tuple(gradients)

    @staticmethod
    def backward_graph(ctx, grad_output):
        gradients = [None]
        for index, region in enumerate(ctx.regions):
            if not ctx.needs_input_grad[index + 1]:
                gradients.append(None)
            elif region is None:  # a skipped empty tensor
                gradients.append(Tensor._make(DEVICES[grad_output.device].zeros((0,), grad_output.dtype), None,
                                              grad_output.device))
            else:
                dim, piece = len(region) - 1, region[-1]
                gradients.append(Narrow.apply(grad_output, dim, piece.start, piece.stop - piece.start))
        return tuple(gradients)


def _is_legacy_empty(tensor):
    # PyTorch lets 1-d empty tensors join tensors of any shape (they are skipped).
    return tensor.ndim == 1 and tensor.shape[0] == 0


def _check_is_tensor(tensor, index, op):
    """Raise a TypeError naming `op` unless entry `index` of the sequence it joins is a Tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a sequence of Tensors, got {type(tensor).__name__} at position {index}")


def cat(tensors, dim=0):
    """Join tensors along an existing dimension `dim`; dtypes promote as in PyTorch; sizes must match
    except along `dim`; 1-d empty tensors are skipped."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of Tensors")
    for index, tensor in enumerate(tensors):
        _check_is_tensor(tensor, index, "cat")
        if tensor.ndim == 0:
            raise RuntimeError(f"cat: zero-dimensional tensor (at position {index}) cannot be concatenated")
        if tensor.device != tensors[0].device:
            raise RuntimeError(f"cat: tensors on different devices, {tensors[0].device} and {tensor.device} "
                               f"(position {index})")
    kept = [(index, t) for index, t in enumerate(tensors) if not _is_legacy_empty(t)] or list(enumerate(tensors))
    reference = kept[0][1]
    dim = _wrap_dim(dim, reference.ndim, "cat")
    for index, tensor in kept[1:]:
        if tensor.ndim != reference.ndim:
            raise RuntimeError(f"cat: tensors must have the same number of dimensions: got {reference.ndim} "
                               f"(shape {tuple(reference.shape)}) and {tensor.ndim} (shape {tuple(tensor.shape)}) "
                               f"for tensor number {index} in the list")
        for axis, (expected, got) in enumerate(zip(reference.shape, tensor.shape)):
            if axis != dim and expected != got:
                raise RuntimeError(f"cat: sizes of tensors must match except in dimension {dim}. Expected size "
                                   f"{expected} but got size {got} for tensor number {index} in the list (shapes "
                                   f"{tuple(reference.shape)} and {tuple(tensor.shape)})")
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = dtypes.promote(dtype, tensor.dtype)
    return Cat.apply(dim, *[t.to(dtype) for t in tensors])


def stack(tensors, dim=0):
    """Join tensors of one shape along a new dimension `dim` (in [-ndim - 1, ndim])."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack: expects a non-empty TensorList")
    for index, tensor in enumerate(tensors):
        _check_is_tensor(tensor, index, "stack")
        if tensor.shape != tensors[0].shape:
            raise RuntimeError(f"stack: expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(tensor.shape)} at entry {index}")
    dim = _wrap_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(tensor, dim) for tensor in tensors], dim)
