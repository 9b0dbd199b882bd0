"""Elementwise ops: arithmetic with promotion and broadcasting, clamp, where, comparisons, casts; the unary
math ops are declared in a table in unary.py, atan2, hypot, // and % are in binary_math.py, and what they all
build on (kernel maps, operand promotion, the recorded gradient map) is in elementwise_base.py."""

import math

import numpy as np

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.grad_mode import recording
from nbprop.ops.broadcast import broadcast_shapes, expand
from nbprop.ops.elementwise_base import floating, gradient_map, map_tensors, promoted_operands
from nbprop.tensor import Tensor

# --------------------------------------------------------------------------------------------- binary


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return map_tensors("add", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output

    backward_graph = backward


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return map_tensors("sub", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, map_tensors("neg", grad_output) if ctx.needs_input_grad[1] else None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return grad_output, -grad_output if ctx.needs_input_grad[1] else None


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        # Keep only what the wanted gradients use, so an in-place change to the other is no error.
        ctx.save_for_backward(b if ctx.needs_input_grad[0] else None, a if ctx.needs_input_grad[1] else None)
        return map_tensors("mul", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        b, a = ctx.saved_tensors
        return (map_tensors("mul", grad_output, b) if b is not None else None,
                map_tensors("mul", grad_output, a) if a is not None else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        b, a = ctx.saved_tensors
        return mul(grad_output, b) if b is not None else None, mul(grad_output, a) if a is not None else None


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        return map_tensors("div", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (map_tensors("div", grad_output, b) if ctx.needs_input_grad[0] else None,
                map_tensors("div_backward_divisor", grad_output, a, b) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (div(grad_output, b) if ctx.needs_input_grad[0] else None,
                div(mul(-grad_output, div(a, b)), b) if ctx.needs_input_grad[1] else None)


class Pow(Function):
    @staticmethod
    def forward(ctx, base, exponent):
        result = map_tensors("power", base, exponent)
        ctx.save_for_backward(base, exponent, result if ctx.needs_input_grad[1] else None)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        base, exponent, result = ctx.saved_tensors
        return (map_tensors("power_backward_base", grad_output, base, exponent) if ctx.needs_input_grad[0] else None,
                map_tensors("power_backward_exponent", grad_output, base, exponent, result)
                if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        base, exponent, result = ctx.saved_tensors
        grad_base = grad_exponent = None
        if ctx.needs_input_grad[0]:
            # exponent * base ** (exponent - 1), zero where the exponent is zero (as the kernel).
            grad_base = where(compare("equal", exponent, 0), 0.0, grad_output * exponent * pow(base, exponent - 1))
        if ctx.needs_input_grad[1]:
            # result * log(base), zero where 0 ** (exponent >= 0); the log reads 1 there, so that its own
            # gradient stays finite where the branch is not taken.
            zero_base = logical("and", compare("equal", base, 0), compare("greater_equal", exponent, 0))
            grad_exponent = where(zero_base, 0.0, grad_output * result * where(zero_base, 1.0, base).log())
        return grad_base, grad_exponent


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return map_tensors("maximum", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (map_tensors("maximum_backward", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                map_tensors("maximum_backward", grad_output, b, a) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (gradient_map("maximum_backward", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                gradient_map("maximum_backward", grad_output, b, a) if ctx.needs_input_grad[1] else None)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return map_tensors("minimum", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (map_tensors("minimum_backward", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                map_tensors("minimum_backward", grad_output, b, a) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (gradient_map("minimum_backward", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                gradient_map("minimum_backward", grad_output, b, a) if ctx.needs_input_grad[1] else None)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return map_tensors("where", condition, a, b, dtype=a.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (condition,) = ctx.saved_tensors
        return (None,
                map_tensors("where_backward", grad_output, condition, True) if ctx.needs_input_grad[1] else None,
                map_tensors("where_backward", grad_output, condition, False) if ctx.needs_input_grad[2] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        (condition,) = ctx.saved_tensors
        return (None,
                gradient_map("where_backward", grad_output, condition, True) if ctx.needs_input_grad[1] else None,
                gradient_map("where_backward", grad_output, condition, False) if ctx.needs_input_grad[2] else None)


def _unrecorded(name, a, b):
    """Kernel `name` over a and b when they are tensors of one shape, floating dtype and device with nothing to
    record: the common case, where the kernel is the whole op (no promotion, broadcast or tape node). None
    otherwise."""
    if a.__class__ is not Tensor or b.__class__ is not Tensor:
        return None
    first, second = a._data, b._data
    if (first.dtype is not second.dtype or first.shape != second.shape or a.device != b.device
            or first.dtype.kind != "f" or (recording.enabled and (a.requires_grad or b.requires_grad))):
        return None
    device = DEVICES[a.device]
    out = device.empty(first.shape, first.dtype)
    device.map(name, first, second, out)
    return Tensor._make(out, None, a.device)


def add(a, b):
    if (result := _unrecorded("add", a, b)) is not None:
        return result
    a, b = promoted_operands(a, b, "add")
    if a._data.dtype.kind == "b":
        return map_tensors("maximum", a, b)  # bool + bool is a bool (logical or) in PyTorch
    return Add.apply(a, b)


def sub(a, b):
    if (result := _unrecorded("sub", a, b)) is not None:
        return result
    a, b = promoted_operands(a, b, "sub")
    if a._data.dtype.kind == "b":
        raise TypeError("sub: subtraction of boolean tensors is not supported; use logical_xor (^) instead")
    return Sub.apply(a, b)


def mul(a, b):
    if (result := _unrecorded("mul", a, b)) is not None:
        return result
    a, b = promoted_operands(a, b, "mul")
    if a._data.dtype.kind == "b":
        return map_tensors("minimum", a, b)  # bool * bool is a bool (logical and) in PyTorch
    return Mul.apply(a, b)


def div(a, b):
    """True division: integer operands give a floating result."""
    if (result := _unrecorded("div", a, b)) is not None:
        return result
    a, b = promoted_operands(a, b, "div")
    return Div.apply(floating(a), floating(b))


def pow(base, exponent):  # noqa: A001 - PyTorch's name
    base, exponent = promoted_operands(base, exponent, "pow")
    if base._data.dtype.kind != "f" and DEVICES[base.device].count_nonzero(compare("less", exponent, 0)._data):
        raise ValueError("pow: integers to negative integer powers are not allowed")
    return Pow.apply(base, exponent)


def maximum(a, b):
    a, b = promoted_operands(a, b, "maximum")
    return Maximum.apply(a, b)


def minimum(a, b):
    a, b = promoted_operands(a, b, "minimum")
    return Minimum.apply(a, b)


def where(condition, a, b):
    """`a` where `condition` is true, else `b`, all three broadcast together."""
    if not isinstance(condition, Tensor) or condition.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    a, b = promoted_operands(a, b, "where")
    shape = broadcast_shapes(condition.shape, a.shape, "where")
    return Where.apply(expand(condition, shape), expand(a, shape), expand(b, shape))


# ---------------------------------------------------------------------------------------------- unary


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.bounds = (low, high)
        return map_tensors("clamp", x, low, high)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return map_tensors("clamp_backward", grad_output, x, *ctx.bounds), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return gradient_map("clamp_backward", grad_output, x, *ctx.bounds), None, None


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
    a, b = promoted_operands(a, b, kernel)
    return map_tensors(kernel, a, b, dtype=dtypes.bool_)


def logical_not(x):
    if x._data.dtype.kind != "b":
        raise TypeError(f"logical_not (~): expects a bool tensor, got {x.dtype}")
    return compare("equal", x, False)


def logical(operation, a, b):
    """Elementwise and / or / xor of bool tensors (broadcast)."""
    a, b = promoted_operands(a, b, f"logical_{operation}")
    if a._data.dtype.kind != "b" or b._data.dtype.kind != "b":
        raise TypeError(f"logical_{operation}: expects bool tensors, got {a.dtype} and {b.dtype}")
    if operation == "xor":
        return compare("not_equal", a, b)
    # On 0/1 values, and is the minimum and or the maximum.
    return map_tensors("minimum" if operation == "and" else "maximum", a, b)


# ------------------------------------------------------------------------------------ casts and copies


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.input_dtype = x.dtype
        return Tensor._make(DEVICES[x.device].astype(x._data, dtype), None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        return Tensor._make(device.astype(grad_output._data, ctx.input_dtype), None, grad_output.device), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return cast(grad_output, ctx.input_dtype), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return Tensor._make(DEVICES[x.device].copy(x._data), None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output

    backward_graph = backward


def cast(x, dtype):
    return Cast.apply(x, dtype)


def clone(x):
    return Clone.apply(x)


# Tensor's four arithmetic operators are these functions themselves: no forwarding frame on the most frequent
# path (the others forward through tensor_operators.py).
Tensor.__add__, Tensor.__sub__, Tensor.__mul__, Tensor.__truediv__ = add, sub, mul, div
