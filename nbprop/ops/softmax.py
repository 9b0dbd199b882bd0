"""softmax, log_softmax and logsumexp over any dimension(s), by fused numerically stable row kernels."""

import math
import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.tensor import Tensor, _wrap_dim


class _Rows:
    """How a tensor is laid out as the (rows, n) C-contiguous array the kernels take: the reduced dimensions
    moved last (`order`), the moved shape, and the way back."""

    __slots__ = ("inverse", "length", "moved", "moved_shape", "order", "rows", "rows_shape")

    def __init__(self, shape, dims):
        kept = [dim for dim in range(len(shape)) if dim not in dims]
        self.order = tuple(kept) + tuple(dims)
        self.moved = self.order != tuple(range(len(shape)))
        self.inverse = tuple(sorted(range(len(shape)), key=self.order.__getitem__))
        self.moved_shape = tuple(shape[dim] for dim in self.order)
        self.rows = math.prod(shape[dim] for dim in kept)
        self.length = math.prod(shape[dim] for dim in dims)
        self.rows_shape = (self.rows, self.length)

    def to_rows(self, array, device):
        """`array` as (rows, n): a view when the moved array is already C-contiguous, else a copy."""
        if self.moved:
            array = device.permute(array, self.order)
        array = device.contiguous(array)
        return array if array.shape == self.rows_shape else device.reshape(array, self.rows_shape)

    def from_rows(self, array, device):
        """A (rows, n) array back in the original dimension order and shape (a view)."""
        if array.shape != self.moved_shape:  # a 2-D input reduced along its last dimension is already there
            array = device.reshape(array, self.moved_shape)
        return device.permute(array, self.inverse) if self.moved else array


def _floating_input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: not implemented for {x.dtype} tensors (PyTorch: not implemented for "
                        f"'{'Long' if x.dtype.kind == 'i' else 'Bool'}'); convert with .float() first")
    return x


def _single_dim(dim, ndim, op):
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    dim = _wrap_dim(dim, ndim, op)
    return (dim,) if ndim else ()  # a 0-d tensor is its own one-element row


class _RowFunction(Function):
    """softmax / log_softmax: y = f(x) along one dimension, whose backward needs only y; `gradient` is that
    backward in differentiable ops."""

    kernel = backward_kernel = gradient = None

    @classmethod
    def forward(cls, ctx, x, dims):
        device = DEVICES[x.device]
        layout = _Rows(x.shape, dims)
        rows = layout.to_rows(x._data, device)
        out = device.empty(rows.shape, rows.dtype)
        device.call(cls.kernel, rows, out)
        result = Tensor._make(layout.from_rows(out, device), None, x.device)
        ctx.save_for_backward(result)
        ctx.layout, ctx.dims = layout, dims
        return result

    @classmethod
    def backward(cls, ctx, grad_output):
        (result,) = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        layout = ctx.layout
        result_rows = layout.to_rows(result._data, device)
        grad_rows = layout.to_rows(grad_output._data, device)
        out = device.empty(result_rows.shape, result_rows.dtype)
        device.call(cls.backward_kernel, grad_rows, result_rows, out)
        return Tensor._make(layout.from_rows(out, device), None, grad_output.device), None

    @classmethod
    def backward_graph(cls, ctx, grad_output):
        (result,) = ctx.saved_tensors
        return cls.gradient(grad_output, result, ctx.dims), None


class Softmax(_RowFunction):
    kernel, backward_kernel = "softmax_rows", "softmax_rows_backward"

    @staticmethod
    def gradient(grad_output, result, dims):
        """y * (g - sum(g * y)) in differentiable ops, for backward passes differentiated again."""
        return result * (grad_output - (grad_output * result).sum(dims, keepdim=True))


class LogSoftmax(_RowFunction):
    kernel, backward_kernel = "log_softmax_rows", "log_softmax_rows_backward"

    @staticmethod
    def gradient(grad_output, result, dims):
        """g - exp(y) * sum(g) in differentiable ops, for backward passes differentiated again."""
        return grad_output - result.exp() * grad_output.sum(dims, keepdim=True)


class Logsumexp(Function):
    @staticmethod
    def forward(ctx, x, dims, result_shape):
        device = DEVICES[x.device]
        layout = _Rows(x.shape, dims)
        rows = layout.to_rows(x._data, device)
        out = device.empty((layout.rows,), rows.dtype)
        device.call("logsumexp_rows", rows, out)
        result = Tensor._make(out if out.shape == result_shape else device.reshape(out, result_shape), None, x.device)
        ctx.save_for_backward(x, result)
        ctx.layout, ctx.dims = layout, dims
        return result

    @staticmethod
    def backward(ctx, grad_output):
        x, result = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        layout = ctx.layout
        x_rows = layout.to_rows(x._data, device)
        out = device.empty(x_rows.shape, x_rows.dtype)
        # grad_output and the result have the result's shape; the kernel reads them as (rows,).
        grad_rows, result_rows = device.contiguous(grad_output._data), result._data
        if result_rows.ndim != 1:
            grad_rows = device.reshape(grad_rows, (layout.rows,))
            result_rows = device.reshape(result_rows, (layout.rows,))
        device.call("logsumexp_rows_backward", grad_rows, x_rows, result_rows, out)
        return Tensor._make(layout.from_rows(out, device), None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # g * exp(x - lse), g and lse read with the reduced dimensions kept (size 1) so that they broadcast.
        x, result = ctx.saved_tensors
        kept_shape = tuple(1 if dim in ctx.dims else size for dim, size in enumerate(x.shape))
        return grad_output.reshape(kept_shape) * (x - result.reshape(kept_shape)).exp(), None, None


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along `dim`, computed stably (max-subtracted); a row of all -inf gives NaN, as in
    PyTorch. Only floating tensors (PyTorch raises for integers too)."""
    x = _floating_input(x, "softmax")
    return Softmax.apply(x, _single_dim(dim, x.ndim, "softmax"))


def log_softmax(x, dim):
    """x - logsumexp(x) along `dim`: finite for any finite input, however large. Only floating tensors."""
    x = _floating_input(x, "log_softmax")
    return LogSoftmax.apply(x, _single_dim(dim, x.ndim, "log_softmax"))


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over `dim` (an int or a tuple of ints; () reduces every dimension), computed stably:
    all -inf (or an empty reduction) gives -inf, +inf gives +inf. Integer inputs are computed in the default
    float dtype, as in PyTorch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"logsumexp: expects a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        x = x.to(dtypes.get_default_dtype())
    if isinstance(dim, (tuple, list)):
        for entry in dim:
            if not isinstance(entry, numbers.Integral) or isinstance(entry, bool):
                raise TypeError(f"logsumexp: dim must be an int or a tuple of ints, got {tuple(dim)!r}")
        dims = tuple(_wrap_dim(entry, x.ndim, "logsumexp") for entry in dim) if dim else tuple(range(x.ndim))
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"logsumexp: a dimension appears more than once in dim={tuple(dim)} (for a "
                               f"tensor of shape {tuple(x.shape)})")
    else:
        dims = _single_dim(dim, x.ndim, "logsumexp")
    dims = tuple(sorted(dims))
    if keepdim:
        result_shape = tuple(1 if index in dims else size for index, size in enumerate(x.shape))
    else:
        result_shape = tuple(size for index, size in enumerate(x.shape) if index not in dims)
    return Logsumexp.apply(x, dims, result_shape)
