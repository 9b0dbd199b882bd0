"""The unary elementwise ops, declared once: one table row each, from which come the Function, the function
`nbprop.<name>`, the Tensor method and its in-place form; the kernels come from formulas (kernels/elementwise.py)."""

import math

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.elementwise import clone
from nbprop.ops.elementwise_base import gradient_map, map_tensors
from nbprop.ops.inplace import in_place
from nbprop.tensor import Tensor

TWO_OVER_ROOT_PI = 2.0 / math.sqrt(math.pi)


class _Unary(Function):
    """y = f(x) for a row of UNARY: the subclass made per row names the kernels (see _unary)."""

    kernel = backward_kernel = saves = derivative = None

    @classmethod
    def forward(cls, ctx, x):
        result = map_tensors(cls.kernel, x)
        if cls.saves is not None:
            ctx.save_for_backward(result if cls.saves == "result" else x)
        return result

    @classmethod
    def backward(cls, ctx, grad_output):
        if cls.backward_kernel is None:  # a piecewise-constant function: PyTorch's zero gradient
            return Tensor._make(DEVICES[grad_output.device].zeros(grad_output.shape, grad_output.dtype), None,
                                grad_output.device)
        if cls.saves is None:
            return map_tensors(cls.backward_kernel, grad_output)
        (saved,) = ctx.saved_tensors
        return map_tensors(cls.backward_kernel, grad_output, saved)

    @classmethod
    def backward_graph(cls, ctx, grad_output):
        if cls.backward_kernel is None:
            return cls.backward(ctx, grad_output)
        saved = () if cls.saves is None else ctx.saved_tensors
        if cls.derivative is None:  # a mask or a sign: the kernel itself, recorded (see GradientMap)
            return gradient_map(cls.backward_kernel, grad_output, *saved)
        return cls.derivative(grad_output, saved[0])


# One row per unary op, PyTorch's name first: its forward kernel; its backward kernel, which takes the incoming
# gradient and what the op saved (None: a zero gradient); what it saves ("input", "result", or None when the
# gradient needs neither); what integer and bool inputs give ("float": computed in the default float dtype,
# "same": computed in their dtype, "copy": returned unchanged, as rounding an integer changes nothing); the
# backward kernel's formula in differentiable ops, (gradient, saved) -> input gradient, for backward passes
# that are differentiated again (None where the kernel multiplies by a mask or a sign, see GradientMap).
UNARY_ROWS = {
    "neg": ("neg", "neg", None, "same", None),
    "abs": ("absolute", "absolute_backward", "input", "same", None),
    "exp": ("exp", "exp_backward", "result", "float", lambda grad, result: grad * result),
    "log": ("log", "log_backward", "input", "float", lambda grad, x: grad / x),
    "sqrt": ("sqrt", "sqrt_backward", "result", "float", lambda grad, result: grad / (2.0 * result)),
    "rsqrt": ("rsqrt", "rsqrt_backward", "result", "float",
              lambda grad, result: -0.5 * grad * result * result * result),
    "sin": ("sin", "sin_backward", "input", "float", lambda grad, x: grad * x.cos()),
    "cos": ("cos", "cos_backward", "input", "float", lambda grad, x: -grad * x.sin()),
    "tanh": ("tanh", "tanh_backward", "result", "float", lambda grad, result: grad * (1.0 - result * result)),
    "sigmoid": ("sigmoid", "sigmoid_backward", "result", "float",
                lambda grad, result: grad * result * (1.0 - result)),
    "relu": ("relu", "relu_backward", "result", "same", None),
    "erf": ("erf", "erf_backward", "input", "float",
            lambda grad, x: TWO_OVER_ROOT_PI * (-(x * x)).exp() * grad),
    "expm1": ("expm1", "expm1_backward", "result", "float", lambda grad, result: grad * (result + 1.0)),
    "log1p": ("log1p", "log1p_backward", "input", "float", lambda grad, x: grad / (x + 1.0)),
    # d log(sigmoid(x)) / dx = 1 - sigmoid(x) = sigmoid(-x).
    "logsigmoid": ("logsigmoid", "logsigmoid_backward", "input", "float", lambda grad, x: grad * (-x).sigmoid()),
    "floor": ("floor", None, None, "copy", None),
    "ceil": ("ceil", None, None, "copy", None),
    "round": ("round_even", None, None, "copy", None),
    "sign": ("sign", None, None, "same", None),
}


def _unary(name, kernel, backward_kernel, saves, integers, derivative):
    """The Function and the public function of one UNARY_ROWS row."""
    function_class = type(name.capitalize(), (_Unary,), {
        "kernel": kernel, "backward_kernel": backward_kernel, "saves": saves, "__module__": __name__,
        "derivative": staticmethod(derivative) if derivative is not None else None,
    })
    apply = function_class.apply

    def unary(input):  # noqa: A002 - PyTorch's argument name
        if input._data.dtype.kind != "f":
            if input._data.dtype.kind == "b" and name == "neg":
                raise TypeError("neg: negation of a boolean tensor is not supported; use logical_not (~) instead")
            if integers == "float":
                input = input.to(dtypes.get_default_dtype())
            elif integers == "copy":
                return clone(input)
        return apply(input)

    unary.__name__ = unary.__qualname__ = name
    unary.__doc__ = f"PyTorch's {name}, elementwise (kernels {kernel!r} / {backward_kernel!r})."
    return function_class, unary


UNARY = {}
for _name, _row in UNARY_ROWS.items():
    _class, UNARY[_name] = _unary(_name, *_row)
    globals()[_class.__name__] = _class
# The public functions under their names (ops.unary.exp, ...); Tensor methods (below) and nbprop.<name>
# (functional.py) come from the same table.
globals().update(UNARY)


def _in_place(name, function):
    def method(self):
        return in_place(self, function(self), name)

    method.__name__ = method.__qualname__ = name
    return method


# Each row is a Tensor method too, with its in-place form (exp_, ...); logsigmoid is only nn.functional's, as
# in PyTorch.
for _name, _function in UNARY.items():
    if _name != "logsigmoid":
        setattr(Tensor, _name, _function)
        setattr(Tensor, _name + "_", _in_place(_name + "_", _function))
