"""What every elementwise op builds on: kernel maps over tensors, operand promotion and broadcasting, GradientMap."""

import numbers

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.broadcast import broadcast_shapes, expand
from nbprop.tensor import Tensor


def map_tensors(name, first, *others, dtype=None):
    """Run elementwise kernel `name` over tensors of one shape (other arguments pass through)."""
    data = first._data
    device = DEVICES[first.device]
    out = device.empty(data.shape, data.dtype if dtype is None else dtype)
    if len(others) == 1 and others[0].__class__ is Tensor:  # binary ops: no argument list to build
        device.map(name, data, others[0]._data, out)
    else:
        device.map(name, data, *[o._data if isinstance(o, Tensor) else o for o in others], out)
    return Tensor._make(out, None, first.device)


def scalar_tensor(value, dtype, shape, device):
    """A Python number as a read-only stride-0 tensor of `shape` on `device`: no copy, no gradient."""
    return Tensor._make(DEVICES[device].scalar_view(value, dtype, shape), None, device)


def promoted_operands(a, b, op):
    """Two tensors of one shape and dtype from tensors and numbers, by PyTorch's promotion and broadcast."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a._data.dtype is not b._data.dtype:
                dtype = dtypes.promote(a._data.dtype, b._data.dtype)
                a, b = a.to(dtype), b.to(dtype)
            if a._data.shape != b._data.shape:
                if a.device != b.device:
                    raise RuntimeError(f"{op}: tensors on different devices, {a.device} and {b.device}")
                shape = broadcast_shapes(a._data.shape, b._data.shape, op)
                a, b = expand(a, shape), expand(b, shape)
            return a, b
        if isinstance(b, numbers.Number):
            dtype = dtypes.promote_scalar(a._data.dtype, b)
            return a.to(dtype), scalar_tensor(b, dtype, a._data.shape, a.device)
    elif isinstance(b, Tensor) and isinstance(a, numbers.Number):
        dtype = dtypes.promote_scalar(b._data.dtype, a)
        return scalar_tensor(a, dtype, b._data.shape, b.device), b.to(dtype)
    raise TypeError(f"{op}: unsupported operand types {type(a).__name__} and {type(b).__name__}")


def floating(x):
    """Integer and boolean inputs of float-valued functions are computed in the default float dtype."""
    return x if x._data.dtype.kind == "f" else x.to(dtypes.get_default_dtype())


class GradientMap(Function):
    """A backward kernel that is linear in the incoming gradient, with a factor that is constant almost
    everywhere (a mask, a sign, a tie's 1/2): recorded so that a backward pass can be differentiated again.
    Its derivative in the gradient is the same kernel; in the saved values it is zero."""

    @staticmethod
    def forward(ctx, kernel, grad, *saved):
        ctx.kernel, ctx.saved = kernel, saved
        return map_tensors(kernel, grad, *saved)

    @staticmethod
    def backward(ctx, grad_output):
        return (None, GradientMap.apply(ctx.kernel, grad_output, *ctx.saved)) + (None,) * len(ctx.saved)

    backward_graph = backward


def gradient_map(kernel, grad, *saved):
    """The backward kernel `kernel` over (grad, *saved), differentiable in grad (see GradientMap)."""
    return GradientMap.apply(kernel, grad, *saved)
