"""Binary math beyond the four operations: atan2, hypot, floor division (//) and remainder (%), with
PyTorch's promotion, broadcasting, integer rules and gradients."""

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.elementwise import compare
from nbprop.ops.elementwise_base import floating, gradient_map, map_tensors, promoted_operands


class Atan2(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return map_tensors("atan2", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return (map_tensors("atan2_backward_first", grad_output, a, b) if ctx.needs_input_grad[0] else None,
                map_tensors("atan2_backward_second", grad_output, a, b) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        a, b = ctx.saved_tensors
        squared_norm = a * a + b * b
        return (grad_output * b / squared_norm if ctx.needs_input_grad[0] else None,
                grad_output * -a / squared_norm if ctx.needs_input_grad[1] else None)


class Hypot(Function):
    @staticmethod
    def forward(ctx, a, b):
        result = map_tensors("hypot", a, b)
        ctx.save_for_backward(a, b, result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        a, b, result = ctx.saved_tensors
        return (map_tensors("hypot_backward", grad_output, a, result) if ctx.needs_input_grad[0] else None,
                map_tensors("hypot_backward", grad_output, b, result) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        a, b, result = ctx.saved_tensors
        return (grad_output * a / result if ctx.needs_input_grad[0] else None,
                grad_output * b / result if ctx.needs_input_grad[1] else None)


class Remainder(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[1] else None)
        return map_tensors("remainder", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_divisor = map_tensors("remainder_backward_divisor", grad_output, a, b) if ctx.needs_input_grad[1] else None
        return grad_output, grad_divisor

    @staticmethod
    def backward_graph(ctx, grad_output):
        # -floor(a / b) is constant piecewise: the kernel itself, recorded (see GradientMap).
        a, b = ctx.saved_tensors
        return grad_output, gradient_map("remainder_backward_divisor", grad_output, a, b) if ctx.needs_input_grad[1] \
            else None


class FloorDivide(Function):
    @staticmethod
    def forward(ctx, a, b):
        return map_tensors("floor_divide", a, b)

    @staticmethod
    def backward(ctx, grad_output):
        raise RuntimeError("derivative for floor_divide is not implemented")

    backward_graph = backward  # not differentiable at all, as in PyTorch


def atan2(input, other):  # noqa: A002 - PyTorch's argument names
    """The angle of the point (other, input), elementwise: atan2(input, other)."""
    a, b = promoted_operands(input, other, "atan2")
    return Atan2.apply(floating(a), floating(b))


def hypot(input, other):  # noqa: A002
    """sqrt(input^2 + other^2) without overflow; floating-point inputs only, as PyTorch."""
    a, b = promoted_operands(input, other, "hypot")
    if a._data.dtype.kind != "f":
        raise TypeError(f"hypot: expects floating-point tensors, got {a.dtype}")
    return Hypot.apply(a, b)


def _integer_divisor(a, b, op):
    """Integer division by zero is an error, as in PyTorch (floats give IEEE inf / NaN instead)."""
    if DEVICES[b.device].count_nonzero(compare("equal", b, 0)._data):
        raise RuntimeError(f"{op}: ZeroDivisionError (an integer divisor is 0)")
    return a, b


def floor_divide(input, other):  # noqa: A002
    """input / other rounded towards -inf (`//`); integers stay integers. Not differentiable, as in PyTorch."""
    a, b = promoted_operands(input, other, "floor_divide")
    if a._data.dtype.kind == "b":
        raise TypeError("floor_divide: not supported for bool tensors")
    if a._data.dtype.kind != "f":
        return map_tensors("floor_divide_integer", *_integer_divisor(a, b, "floor_divide"))
    return FloorDivide.apply(a, b)


def remainder(input, other):  # noqa: A002
    """input - other * floor_divide(input, other) (`%`), with the sign of other, as Python's and PyTorch's."""
    a, b = promoted_operands(input, other, "remainder")
    if a._data.dtype.kind == "b":
        raise TypeError("remainder: not supported for bool tensors")
    if a._data.dtype.kind != "f":
        return map_tensors("remainder_integer", *_integer_divisor(a, b, "remainder"))
    return Remainder.apply(a, b)
