"""Running sums and products along one dimension: cumsum and cumprod, with gradients that can be differentiated
again (a reverse running sum; a division-free product gradient through a first-order linear recurrence)."""

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.gather import folded, index_select, wrap_dim
from nbprop.ops.padding import PadConstant
from nbprop.tensor import Tensor


def _line_work(lines):
    # Work items are the lines (blocks of them); a single line is scanned serially.
    outer, _, inner = lines.shape
    return lines.size if outer * inner > 1 else 0


def _scan(x, array, axis, reverse, out_dtype):
    """The (reverse) running sum of `array` (x's data or a gradient of its shape) along axis, in `out_dtype`."""
    device = DEVICES[x.device]
    lines = folded(device, array, axis)
    out = device.empty(array.shape, out_dtype)
    if out.size:
        device.call("cumulative_sum", lines, reverse, 0.0 if out_dtype.kind == "f" else 0, folded(device, out, axis),
                    work=_line_work(lines))
    return Tensor._make(out, None, x.device)


class CumulativeSum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return _scan(x, x._data, axis, False, x.dtype if x.dtype.kind == "f" else dtypes.int64)

    @staticmethod
    def backward(ctx, grad_output):
        # d out[j] / d x[m] = 1 for m <= j: x[m] gets the sum of the gradient from m on.
        return _scan(grad_output, grad_output._data, ctx.axis, True, grad_output.dtype), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return ReverseCumulativeSum.apply(grad_output, ctx.axis), None


class ReverseCumulativeSum(Function):
    """The running sum from the end of each line (cumsum's gradient), recorded; its gradient is cumsum."""

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return _scan(x, x._data, axis, True, x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return CumulativeSum.apply(grad_output, ctx.axis), None

    backward_graph = backward


def cumsum(input, dim, dtype=None):  # noqa: A002 - PyTorch's argument name
    """The running sum of input along `dim` (cast to `dtype` first if given); integer and bool inputs sum to int64,
    float32 accumulates in float64 as PyTorch does on the CPU."""
    if dtype is not None:
        input = input.to(dtypes.as_dtype(dtype))
    axis = wrap_dim(dim, input.ndim, "cumsum")
    return CumulativeSum.apply(input, axis)


# --------------------------------------------------------------------------------------------- cumprod


def shifted(x, axis, fill):
    """x moved one step along axis (x[j - 1] at j), `fill` at position 0: a pad that crops the last element."""
    if x.ndim == 0 or x.shape[axis] == 0:
        return x
    pairs = [(0, 0)] * x.ndim
    pairs[axis] = (1, -1)
    return PadConstant.apply(x, pairs, fill)


def flipped(x, axis):
    """x reversed along axis: an index_select by a constant index, so recorded and differentiable again."""
    count = x.shape[axis]
    positions = DEVICES[x.device].arange(count - 1, -1, -1, dtypes.int64)
    return index_select(x, axis, Tensor._make(positions, None, x.device))


class CumulativeProduct(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        device = DEVICES[x.device]
        lines = folded(device, x._data, axis)
        out = device.empty(x.shape, x.dtype)
        if out.size:
            device.call("cumulative_product", lines, 1.0 if x.dtype.kind == "f" else 1, folded(device, out, axis),
                        work=_line_work(lines))
        result = Tensor._make(out, None, x.device)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        x, _ = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        grad_input = device.empty(x.shape, grad_output.dtype)
        if grad_input.size:
            # prod(x[:m]) * (the gradient summed from m on, each term times the products between): no division.
            lines = folded(device, x._data, ctx.axis)
            device.call("cumulative_product_backward", folded(device, grad_output._data, ctx.axis), lines,
                        folded(device, grad_input, ctx.axis), work=_line_work(lines))
        return Tensor._make(grad_input, None, grad_output.device), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        x, result = ctx.saved_tensors
        if x.ndim == 0:
            return grad_output, None
        # backward's formula in recorded ops: prod(x[:m]) is the running product one step back, the sum a
        # reverse linear recurrence with the links x[m + 1].
        before = shifted(result, ctx.axis, 1.0)
        return before * LinearRecurrence.apply(grad_output, x, ctx.axis, True), None


class LinearRecurrence(Function):
    """out[j] = source[j] + weights[j] * out[j - 1] along axis (out[-1] = 0), or from the end where reverse:
    out[j] = source[j] + weights[j + 1] * out[j + 1] (out[n] = 0). weights[j] links positions j - 1 and j."""

    @staticmethod
    def forward(ctx, source, weights, axis, reverse):
        device = DEVICES[source.device]
        out = device.empty(source.shape, source.dtype)
        if out.size:
            lines = folded(device, source._data, axis)
            device.call("linear_recurrence", lines, folded(device, weights._data, axis), reverse,
                        folded(device, out, axis), work=_line_work(lines))
        result = Tensor._make(out, None, source.device)
        ctx.axis, ctx.reverse = axis, reverse
        ctx.save_for_backward(weights, result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        # Written with recorded ops, so it is its own backward_graph. out = (I - L)^-1 source with L the links:
        # the adjoint runs the recurrence the other way with the same links, and d out[j] / d weights[j] is
        # out[j - 1] (from the end, d out[j - 1] / d weights[j] is out[j]).
        weights, result = ctx.saved_tensors
        axis = ctx.axis
        adjoint = LinearRecurrence.apply(grad_output, weights, axis, not ctx.reverse)
        grad_weights = None
        if ctx.needs_input_grad[1]:
            if ctx.reverse:
                grad_weights = shifted(adjoint, axis, 0.0) * result
            else:
                grad_weights = adjoint * shifted(result, axis, 0.0)
        return adjoint if ctx.needs_input_grad[0] else None, grad_weights, None, None

    backward_graph = backward


def cumprod(input, dim, dtype=None):  # noqa: A002 - PyTorch's argument name
    """The running product of input along `dim` (cast to `dtype` first if given); integer and bool inputs multiply
    to int64, float32 accumulates in float64 as PyTorch does on the CPU. The gradient is exact with zeros in
    input (no division)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"cumprod(): expected a Tensor, got {type(input).__name__}")
    if dtype is not None:
        input = input.to(dtypes.as_dtype(dtype))
    if input.dtype.kind != "f":
        input = input.to(dtypes.int64)
    axis = wrap_dim(dim, input.ndim, "cumprod")
    return CumulativeProduct.apply(input, axis)


def products_of_others(x, dim):
    """For each element of x, the product of the other elements of its line along `dim` (of shape x's): the
    running products before and after it, multiplied; no division, so exact with zeros, and recorded."""
    axis = wrap_dim(dim, x.ndim, "products_of_others")
    if x.ndim == 0:
        return Tensor._make(DEVICES[x.device].full((), 1, x.dtype), None, x.device)  # no other elements
    before = shifted(CumulativeProduct.apply(x, axis), axis, 1.0)
    after = flipped(shifted(CumulativeProduct.apply(flipped(x, axis), axis), axis, 1.0), axis)
    return before * after
