"""Reductions (sum, mean, prod, var/std) and their gradients; dim parsing and folding shared with extrema.py."""

import builtins
import math
import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import elementwise, movement
from nbprop.ops.broadcast import expand
from nbprop.tensor import Tensor

# A reduction producing fewer independent outputs than this is split along the reduced axis into chunks of
# about CHUNK_ELEMENTS, so that threads share the work; the split depends only on the shape (deterministic).
_FEW_OUTPUTS = 64
_CHUNK_ELEMENTS = 16384
_PARALLEL_WORK = 1 << 16


def work(folded):
    """The work by which a kernel over a folded (outer, reduced, inner) array picks its variant."""
    return folded.size if folded.shape[0] * folded.shape[2] > 1 else 0


def parse_dims(dim, shape, op):
    """The sorted tuple of dimensions named by `dim` (None or () = all); errors name the op and the shape."""
    ndim = len(shape)
    if dim is None:
        return tuple(range(ndim))
    if dim.__class__ is int and -ndim <= dim < ndim:  # the common case, checked once
        return (dim % ndim,)
    listed = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if not listed:
        return tuple(range(ndim))
    bound = builtins.max(ndim, 1)
    wrapped = []
    for entry in listed:
        if not isinstance(entry, numbers.Integral) or isinstance(entry, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -bound <= entry < bound:
            raise IndexError(f"{op}: dimension {entry} is out of range for a tensor of shape {tuple(shape)} "
                             f"(expected in [{-bound}, {bound - 1}])")
        wrapped.append(int(entry) % bound)
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"{op}: dim {dim!r} names a dimension more than once (tensor of shape {tuple(shape)})")
    return tuple(sorted(wrapped)) if ndim else ()


def _runs(dims):
    """Maximal runs of consecutive dimensions, as (start, stop) pairs."""
    runs = []
    for axis in dims:
        if runs and runs[-1][1] == axis:
            runs[-1][1] = axis + 1
        else:
            runs.append([axis, axis + 1])
    return runs


def _folded(shape, start, stop):
    outer = math.prod(shape[:start])
    return outer, math.prod(shape[start:stop]), math.prod(shape[stop:])


def _reduce_3d(device, name, array, out_dtype):
    """Reduce axis 1 of a C-contiguous (outer, reduced, inner) array with an `*_chunks` kernel -> (outer, inner)."""
    outer, reduced, inner = array.shape
    if outer * inner < _FEW_OUTPUTS and array.size >= _PARALLEL_WORK:
        chunk = builtins.max(_CHUNK_ELEMENTS // inner, 1)
        partial = device.empty((outer, -(-reduced // chunk), inner), out_dtype)
        device.call(name, array, chunk, partial, work=array.size)
        array, reduced = partial, partial.shape[1]
    out = device.empty((outer, 1, inner), out_dtype)
    device.call(name, array, builtins.max(reduced, 1), out, work=array.size if outer * inner > 1 else 0)
    return device.reshape(out, (outer, inner))


def reduce_dims(x, dims, name, out_dtype):
    """Reduce `dims` of x (sorted, non-empty) run by run, last run first: an array of the keepdim shape."""
    device = DEVICES[x.device]
    array = device.contiguous(x._data)
    if not dims:  # a 0-d tensor: its value
        return device.astype(array, out_dtype)
    if dims[-1] - dims[0] == len(dims) - 1:  # one run of adjacent dimensions
        shape = array.shape
        reduced = _reduce_3d(device, name, device.reshape(array, _folded(shape, dims[0], dims[-1] + 1)), out_dtype)
        return device.reshape(reduced, shape[:dims[0]] + (1,) * len(dims) + shape[dims[-1] + 1:])
    shape = list(array.shape)
    for start, stop in reversed(_runs(dims)):
        array = _reduce_3d(device, name, device.reshape(array, _folded(shape, start, stop)), out_dtype)
        shape[start:stop] = [1] * (stop - start)
        array = device.reshape(array, tuple(shape))
    return array


def fold(x, dims):
    """x as a C-contiguous (outer, reduced, inner) array, reduced dims moved last (one copy) if not adjacent."""
    device = DEVICES[x.device]
    array = x._data
    if array.ndim == 0:
        return device.reshape(array, (1, 1, 1))
    if dims == tuple(range(dims[0], dims[-1] + 1)):
        return device.reshape(device.contiguous(array), _folded(array.shape, dims[0], dims[-1] + 1))
    kept = [axis for axis in range(array.ndim) if axis not in dims]
    moved = device.copy(device.permute(array, tuple(kept + list(dims))))
    outer = math.prod(array.shape[axis] for axis in kept)
    return device.reshape(moved, (outer, math.prod(array.shape[axis] for axis in dims), 1))


def _unfold(device, array, shape, dims):
    """The inverse of `fold` for an (outer, reduced, inner) result: an array of `shape`."""
    if not shape or dims == tuple(range(dims[0], dims[-1] + 1)):
        return device.reshape(array, shape)
    kept = [axis for axis in range(len(shape)) if axis not in dims]
    order = kept + list(dims)
    moved = device.reshape(array, tuple(shape[axis] for axis in order))
    inverse = tuple(order.index(axis) for axis in range(len(shape)))
    return device.permute(moved, inverse)


def wrap(array, shape, device):
    """`array` reshaped to `shape`, as a tensor on `device` (a name)."""
    return Tensor._make(DEVICES[device].reshape(array, shape), None, device)


def _expand_gradient(grad_output, ctx):
    """grad_output (result shape) broadcast back over the reduced dimensions: a stride-0 view, no copy."""
    device = DEVICES[grad_output.device]
    kept = device.reshape(grad_output._data, ctx.kept_shape)
    return Tensor._make(device.expand(kept, ctx.input_shape), grad_output._version_counter, grad_output.device)


def prepare(ctx, x, dims, keepdim):
    """Record the input shape and the keepdim shape on ctx; returns the result shape."""
    shape = x._data.shape
    kept = list(shape)
    for axis in dims:
        kept[axis] = 1
    ctx.input_shape = shape
    ctx.kept_shape = kept = tuple(kept)
    return kept if keepdim else tuple(size for axis, size in enumerate(shape) if axis not in dims)


# ------------------------------------------------------------------------------------ sum, mean, prod


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, divisor):
        shape = prepare(ctx, x, dims, keepdim)
        ctx.divisor = divisor
        device = DEVICES[x.device]
        dtype = x._data.dtype
        accumulator_dtype = dtypes.float64 if dtype.kind == "f" else dtypes.int64
        size = x._data.size
        if dims and len(dims) == x._data.ndim and 0 < size < _PARALLEL_WORK:
            # Every element of a small tensor (a loss, typically): one serial kernel over its flat view, the
            # same summation order as the folded path below, without its Python.
            if dtype.kind == "f":
                out = device.empty((1,), dtype)
                device.call("sum_whole", device.reshape(device.contiguous(x._data), (1, size, 1)), float(divisor), out)
                return wrap(out, shape, x.device)
            flat = device.reshape(device.contiguous(x._data), (1, size, 1))
            accumulator = device.empty((1, 1, 1), accumulator_dtype)
            device.call("sum_chunks", flat, size, accumulator, work=0)
        else:
            accumulator = reduce_dims(x, dims, "sum_chunks", accumulator_dtype)
        if divisor == 1 and accumulator_dtype == dtype:
            return wrap(accumulator, shape, x.device)
        out = device.empty((accumulator.size,), dtype)
        device.call("divide_into", device.reshape(accumulator, (-1,)), float(divisor), out, work=out.size)
        return wrap(out, shape, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.divisor != 1:
            device = DEVICES[grad_output.device]
            divided = device.empty((grad_output._data.size,), grad_output.dtype)
            device.call("divide_into", device.reshape(device.contiguous(grad_output._data), (-1,)),
                        float(ctx.divisor), divided, work=divided.size)
            grad_output = Tensor._make(divided, None, grad_output.device)
        return _expand_gradient(grad_output, ctx), None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        if ctx.divisor != 1:
            grad_output = elementwise.div(grad_output, float(ctx.divisor))
        return expand(movement.reshape(grad_output, ctx.kept_shape), ctx.input_shape), None, None, None


class Prod(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        shape = prepare(ctx, x, dims, keepdim)
        ctx.dims = dims
        dtype = x._data.dtype
        accumulator = reduce_dims(x, dims, "prod_chunks", dtypes.float64 if dtype.kind == "f" else dtypes.int64)
        if accumulator.dtype != dtype:
            accumulator = DEVICES[x.device].astype(accumulator, dtype)
        result = wrap(accumulator, shape, x.device)
        ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        x, result = ctx.saved_tensors
        device = DEVICES[x.device]
        folded = fold(x, ctx.dims)
        grad_input = device.empty(folded.shape, folded.dtype)
        outer, inner = folded.shape[0], folded.shape[2]
        device.call("prod_backward", device.reshape(device.contiguous(grad_output._data), (outer, inner)),
                    folded, device.reshape(result._data, (outer, inner)), grad_input, work=folded.size)
        return Tensor._make(_unfold(device, grad_input, ctx.input_shape, ctx.dims), None, x.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # Each element's gradient is the product of the other elements of its reduction, made as running
        # products before and after it (scan.products_of_others): no division, so exact with one or several
        # zeros, in O(n) memory, and recorded through cumprod. The reduced dimensions go last, as one line.
        from nbprop.ops import scan  # scan -> gather -> elementwise -> broadcast import this module first

        x, _ = ctx.saved_tensors
        grad = movement.reshape(grad_output, ctx.kept_shape)
        if not ctx.dims:  # a 0-d input is its own product
            return movement.reshape(grad, ctx.input_shape), None, None
        kept = [axis for axis in range(x.ndim) if axis not in ctx.dims]
        order = kept + list(ctx.dims)
        outer_shape = tuple(x.shape[axis] for axis in kept)
        line = math.prod(x.shape[axis] for axis in ctx.dims)
        lines = movement.reshape(movement.permute(x, tuple(order)), outer_shape + (line,))
        others = scan.products_of_others(lines, -1) * movement.reshape(grad, outer_shape + (1,))
        moved = movement.reshape(others, tuple(x.shape[axis] for axis in order))
        return movement.permute(moved, tuple(order.index(axis) for axis in range(x.ndim))), None, None


def _summable(x, dtype):
    if dtype is not None:
        x = x.to(dtypes.as_dtype(dtype))
    return x.to(dtypes.int64) if x._data.dtype.kind == "b" else x


def sum(x, dim=None, keepdim=False, dtype=None):
    """Sum over `dim` (None or () = all); int64 and bool sum to int64, float32 accumulates in float64."""
    x = _summable(x, dtype)
    return Sum.apply(x, parse_dims(dim, x._data.shape, "sum"), keepdim, 1)


def mean(x, dim=None, keepdim=False, dtype=None):
    """Mean over `dim` (None or () = all); integer inputs need a floating `dtype`; empty: NaN."""
    wanted = x._data.dtype if dtype is None else dtypes.as_dtype(dtype)
    if wanted.kind != "f":
        raise RuntimeError(f"mean(): could not infer output dtype; the input (or dtype=) must be floating point, "
                           f"got {wanted}")
    x = x.to(wanted)
    dims = parse_dims(dim, x.shape, "mean")
    return Sum.apply(x, dims, keepdim, math.prod(x.shape[axis] for axis in dims))


def prod(x, dim=None, keepdim=False, dtype=None):
    """Product over `dim` (None or () = all); int64 and bool give int64; empty: 1."""
    x = _summable(x, dtype)
    return Prod.apply(x, parse_dims(dim, x.shape, "prod"), keepdim)


# --------------------------------------------------------------------------------------- var and std


class Variance(Function):
    """var (or std with `root`) over dims with a correction; PyTorch's gradients, std's 0 at zero spread."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, correction, root, whole):
        shape = prepare(ctx, x, dims, keepdim)
        ctx.whole, ctx.dims = whole, dims
        device = DEVICES[x.device]
        folded = fold(x, dims)
        outer, reduced, inner = folded.shape
        center = device.empty((outer, inner), folded.dtype)
        out = device.empty((outer, inner), folded.dtype)
        device.call("variance", folded, float(correction), center, out, work=work(folded))
        if root:
            device.map("sqrt", out, out)
        result = wrap(out, shape, x.device)
        ctx.center = _unfold(device, device.reshape(center, (outer, 1, inner)), ctx.kept_shape, dims)
        ctx.degrees = reduced - correction
        ctx.root = root
        ctx.save_for_backward(x, result if root else None)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        x, result = ctx.saved_tensors
        device = DEVICES[x.device]
        grad_output = Tensor._make(device.reshape(grad_output._data, ctx.kept_shape), None, grad_output.device)
        if ctx.root:
            # d sqrt(v) = dv / (2 sqrt(v)), set to 0 where the spread is 0 (PyTorch's std_backward).
            spread = Tensor._make(device.reshape(result._data, ctx.kept_shape), None, result.device)
            grad_output = elementwise.where(spread == 0, 0.0, grad_output / (spread * 2.0))
        center = Tensor._make(ctx.center, None, x.device)
        if ctx.whole and ctx.degrees <= 0:
            # PyTorch's var over all elements with N <= correction: inf * grad, NaN where x is the mean.
            spread = expand(grad_output, ctx.input_shape)
            return elementwise.where(x == center, spread * math.nan, spread * math.inf), None, None, None, None, None
        # d var / dx = 2 (x - mean) / (N - correction), PyTorch's unclamped N - correction along dims.
        scale = 2.0 / ctx.degrees if ctx.degrees != 0 else math.inf
        return (x - center) * expand(grad_output * scale, ctx.input_shape), None, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # backward's formulas in recorded ops; the mean is recomputed from x, as its gradient counts now.
        x, result = ctx.saved_tensors
        grad_output = movement.reshape(grad_output, ctx.kept_shape)
        if ctx.root:
            spread = movement.reshape(result, ctx.kept_shape)
            grad_output = elementwise.where(spread == 0, 0.0, grad_output / (spread * 2.0))
        center = mean(x, ctx.dims, keepdim=True)
        if ctx.whole and ctx.degrees <= 0:
            spread = expand(grad_output, ctx.input_shape)
            return elementwise.where(x == center, spread * math.nan, spread * math.inf), None, None, None, None, None
        scale = 2.0 / ctx.degrees if ctx.degrees != 0 else math.inf
        return (x - center) * expand(grad_output * scale, ctx.input_shape), None, None, None, None, None


def _variance(x, dim, unbiased, keepdim, correction, op):
    if isinstance(dim, bool):  # var(True): PyTorch's (unbiased) overload
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass either unbiased or correction, not both")
    if correction is None:
        correction = 0 if unbiased is False else 1
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"{op}: std and var only support floating point dtypes, got {x.dtype}")
    dims = parse_dims(dim, x.shape, op)
    return Variance.apply(x, dims, keepdim, correction, op == "std", dim is None or x.ndim == 0)


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """sum((x - mean)^2) / max(0, N - correction) over `dim`; correction 1 unless unbiased=False (0)."""
    return _variance(x, dim, unbiased, keepdim, correction, "var")


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """The square root of `var` with the same arguments."""
    return _variance(x, dim, unbiased, keepdim, correction, "std")
