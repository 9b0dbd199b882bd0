"""Running sums along one dimension: cumsum, whose gradient is the reverse running sum of the gradient."""

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.gather import folded, wrap_dim
from nbprop.tensor import Tensor


def _scan(x, array, axis, reverse, out_dtype):
    """The (reverse) running sum of `array` (x's data or a gradient of its shape) along axis, in `out_dtype`."""
    device = DEVICES[x.device]
    lines = folded(device, array, axis)
    out = device.empty(array.shape, out_dtype)
    outer, _, inner = lines.shape
    if out.size:
        # Work items are the lines (blocks of them); a single line is scanned serially.
        device.call("cumulative_sum", lines, reverse, 0.0 if out_dtype.kind == "f" else 0, folded(device, out, axis),
                    work=lines.size if outer * inner > 1 else 0)
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


def cumsum(input, dim, dtype=None):  # noqa: A002 - PyTorch's argument name
    """The running sum of input along `dim` (cast to `dtype` first if given); integer and bool inputs sum to int64,
    float32 accumulates in float64 as PyTorch does on the CPU."""
    if dtype is not None:
        input = input.to(dtypes.as_dtype(dtype))
    axis = wrap_dim(dim, input.ndim, "cumsum")
    return CumulativeSum.apply(input, axis)
