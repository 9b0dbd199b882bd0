"""Elementwise ops (arithmetic, unary math, clamp, where, comparisons, casts) and in-place writes."""

import math
import numbers

import numpy as np

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.broadcast import broadcast_shapes, expand
from nbprop.tensor import Tensor


def _map(name, first, *others, dtype=None):
    """Run elementwise kernel `name` over tensors of one shape (other arguments pass through)."""
    data = first._data
    device = DEVICES[first.device]
    out = device.empty(data.shape, data.dtype if dtype is None else dtype)
    device.map(name, data, *[o._data if o.__class__ is Tensor or isinstance(o, Tensor) else o for o in others], out)
    return Tensor._make(out, None, first.device)


def scalar_tensor(value, dtype, shape):
    """A Python number as a read-only stride-0 tensor of `shape`: no copy, no gradient."""
    return Tensor._make(np.ndarray(shape, dtype, np.array(value, dtype), 0, (0,) * len(shape)))


def _operands(a, b, op):
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
            return a.to(dtype), scalar_tensor(b, dtype, a._data.shape)
    elif isinstance(b, Tensor) and isinstance(a, numbers.Number):
        dtype = dtypes.promote_scalar(b._data.dtype, a)
        return scalar_tensor(a, dtype, b._data.shape), b.to(dtype)
    raise TypeError(f"{op}: unsupported operand types {type(a).__name__} and {type(b).__name__}")


def _floating(x):
    """Integer and boolean inputs of float-valued functions are computed in the default float dtype."""
    return x if x._data.dtype.kind == "f" else x.to(dtypes.get_default_dtype())


# --------------------------------------------------------------------------------------------- binary


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _map("add", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _map("sub", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, _map("neg", grad_output) if ctx.needs_input_grad[1] else None


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        # Keep only what the wanted gradients use, so an in-place change to the other is no error.
        ctx.save_for_backward(b if ctx.needs_input_grad[0] else None, a if ctx.needs_input_grad[1] else None)
        return _map("mul", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        b, a = ctx.saved_tensors
        return (_map("mul", grad_output, b) if b is not None else None,
                _map("mul", grad_output, a) if a is not None else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        return _map("div", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (_map("div", grad_output, b) if ctx.needs_input_grad[0] else None,
                _map("div_backward_divisor", grad_output, a, b) if ctx.needs_input_grad[1] else None)


class Pow(Function):
    @staticmethod
    def forward(ctx, base, exponent):
        result = _map("power", base, exponent)
        ctx.save_for_backward(base, exponent, result if ctx.needs_input_grad[1] else None)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        base, exponent, result = ctx.saved_tensors
        return (_map("power_backward_base", grad_output, base, exponent) if ctx.needs_input_grad[0] else None,
                _map("power_backward_exponent", grad_output, base, exponent, result)
                if ctx.needs_input_grad[1] else None)


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _map("maximum", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (_map("maximum_backward", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                _map("maximum_backward", grad_output, b, a) if ctx.needs_input_grad[1] else None)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _map("minimum", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (_map("minimum_backward", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                _map("minimum_backward", grad_output, b, a) if ctx.needs_input_grad[1] else None)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return _map("where", condition, a, b, dtype=a.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (condition,) = ctx.saved_tensors
        return (None,
                _map("where_backward", grad_output, condition, True) if ctx.needs_input_grad[1] else None,
                _map("where_backward", grad_output, condition, False) if ctx.needs_input_grad[2] else None)


def add(a, b):
    a, b = _operands(a, b, "add")
    if a._data.dtype.kind == "b":
        return _map("maximum", a, b)  # bool + bool is a bool (logical or) in PyTorch
    return Add.apply(a, b)


def sub(a, b):
    a, b = _operands(a, b, "sub")
    if a._data.dtype.kind == "b":
        raise TypeError("sub: subtraction of boolean tensors is not supported; use logical_xor (^) instead")
    return Sub.apply(a, b)


def mul(a, b):
    a, b = _operands(a, b, "mul")
    if a._data.dtype.kind == "b":
        return _map("minimum", a, b)  # bool * bool is a bool (logical and) in PyTorch
    return Mul.apply(a, b)


def div(a, b):
    """True division: integer operands give a floating result."""
    a, b = _operands(a, b, "div")
    return Div.apply(_floating(a), _floating(b))


def pow(base, exponent):  # noqa: A001 - PyTorch's name
    base, exponent = _operands(base, exponent, "pow")
    if base._data.dtype.kind != "f" and (exponent._data < 0).any():
        raise ValueError("pow: integers to negative integer powers are not allowed")
    return Pow.apply(base, exponent)


def maximum(a, b):
    a, b = _operands(a, b, "maximum")
    return Maximum.apply(a, b)


def minimum(a, b):
    a, b = _operands(a, b, "minimum")
    return Minimum.apply(a, b)


def where(condition, a, b):
    """`a` where `condition` is true, else `b`, all three broadcast together."""
    if not isinstance(condition, Tensor) or condition.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    a, b = _operands(a, b, "where")
    shape = broadcast_shapes(condition.shape, a.shape, "where")
    return Where.apply(expand(condition, shape), expand(a, shape), expand(b, shape))


# ---------------------------------------------------------------------------------------------- unary


def _unary(kernel, backward_kernel, saves):
    """A Function for `y = f(x)` whose backward kernel takes (grad_output, x or y)."""

    class Unary(Function):
        @staticmethod
        def forward(ctx, x):
            result = _map(kernel, x)
            ctx.save_for_backward(result if saves == "result" else x)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (saved,) = ctx.saved_tensors
            return _map(backward_kernel, grad_output, saved)

    Unary.__name__ = Unary.__qualname__ = kernel.capitalize()
    return Unary


Exp = _unary("exp", "mul", "result")  # d e^x = e^x
Log = _unary("log", "div", "input")  # d ln x = 1 / x
Sqrt = _unary("sqrt", "sqrt_backward", "result")
Rsqrt = _unary("rsqrt", "rsqrt_backward", "result")
Sin = _unary("sin", "sin_backward", "input")
Cos = _unary("cos", "cos_backward", "input")
Tanh = _unary("tanh", "tanh_backward", "result")
Sigmoid = _unary("sigmoid", "sigmoid_backward", "result")
Relu = _unary("relu", "relu_backward", "result")
Abs = _unary("absolute", "absolute_backward", "input")


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return _map("neg", x)

    @staticmethod
    def backward(ctx, grad_output):
        return _map("neg", grad_output)


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.bounds = (low, high)
        return _map("clamp", x, low, high)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return _map("clamp_backward", grad_output, x, *ctx.bounds), None, None


def exp(x):
    return Exp.apply(_floating(x))


def log(x):
    return Log.apply(_floating(x))


def sqrt(x):
    return Sqrt.apply(_floating(x))


def rsqrt(x):
    return Rsqrt.apply(_floating(x))


def sin(x):
    return Sin.apply(_floating(x))


def cos(x):
    return Cos.apply(_floating(x))


def tanh(x):
    return Tanh.apply(_floating(x))


def sigmoid(x):
    return Sigmoid.apply(_floating(x))


def relu(x):
    return Relu.apply(x)


def abs(x):  # noqa: A001 - PyTorch's name
    return Abs.apply(x)


def neg(x):
    if x._data.dtype.kind == "b":
        raise TypeError("neg: negation of a boolean tensor is not supported; use logical_not (~) instead")
    return Neg.apply(x)


def clamp(x, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """Limit `x` to [min, max]; either bound may be None, a number or a tensor (broadcast)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        result = x if min is None else maximum(x, min)
        return result if max is None else minimum(result, max)
    if x._data.dtype.kind != "f" and any(isinstance(bound, float) for bound in (min, max)):
        x = x.to(dtypes.get_default_dtype())
    low = -math.inf if min is None else min
    high = math.inf if max is None else max
    if x._data.dtype.kind != "f":
        low, high = (np.iinfo(np.int64).min if min is None else min), (np.iinfo(np.int64).max if max is None else max)
    return Clamp.apply(x, low, high)


# --------------------------------------------------------------------------- comparisons and logic


def compare(kernel, a, b):
    """A comparison kernel ('less', 'equal', ...) over broadcast operands: a bool tensor, no gradient."""
    a, b = _operands(a, b, kernel)
    return _map(kernel, a, b, dtype=dtypes.bool_)


def logical_not(x):
    if x._data.dtype.kind != "b":
        raise TypeError(f"logical_not (~): expects a bool tensor, got {x.dtype}")
    return compare("equal", x, False)


def logical(operation, a, b):
    """Elementwise and / or / xor of bool tensors (broadcast)."""
    a, b = _operands(a, b, f"logical_{operation}")
    if a._data.dtype.kind != "b" or b._data.dtype.kind != "b":
        raise TypeError(f"logical_{operation}: expects bool tensors, got {a.dtype} and {b.dtype}")
    if operation == "xor":
        return compare("not_equal", a, b)
    # On 0/1 values, and is the minimum and or the maximum.
    return _map("minimum" if operation == "and" else "maximum", a, b)


# ------------------------------------------------------------------------------------ casts and copies


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.input_dtype = x.dtype
        return Tensor._make(DEVICES[x.device].astype(x._data, dtype), device=x.device)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.to(ctx.input_dtype), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return Tensor._make(DEVICES[x.device].copy(x._data), device=x.device)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def cast(x, dtype):
    return Cast.apply(x, dtype)


def clone(x):
    return Clone.apply(x)
