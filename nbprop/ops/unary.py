"""The unary elementwise ops, declared once: one table row each, from which come the Function, the function
`nbprop.<name>`, the Tensor method and its in-place form; the kernels come from formulas (kernels/elementwise.py)."""

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.elementwise import clone, map_tensors
from nbprop.ops.inplace import in_place
from nbprop.tensor import Tensor


class _Unary(Function):
    """y = f(x) for a row of UNARY: the subclass made per row names the kernels (see _unary)."""

    kernel = backward_kernel = saves = None

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


# One row per unary op, PyTorch's name first: its forward kernel; its backward kernel, which takes the incoming
# gradient and what the op saved (None: a zero gradient); what it saves ("input", "result", or None when the
# gradient needs neither); what integer and bool inputs give ("float": computed in the default float dtype,
# "same": computed in their dtype, "copy": returned unchanged, as rounding an integer changes nothing).
UNARY_ROWS = {
    "neg": ("neg", "neg", None, "same"),
    "abs": ("absolute", "absolute_backward", "input", "same"),
    "exp": ("exp", "exp_backward", "result", "float"),
    "log": ("log", "log_backward", "input", "float"),
    "sqrt": ("sqrt", "sqrt_backward", "result", "float"),
    "rsqrt": ("rsqrt", "rsqrt_backward", "result", "float"),
    "sin": ("sin", "sin_backward", "input", "float"),
    "cos": ("cos", "cos_backward", "input", "float"),
    "tanh": ("tanh", "tanh_backward", "result", "float"),
    "sigmoid": ("sigmoid", "sigmoid_backward", "result", "float"),
    "relu": ("relu", "relu_backward", "result", "same"),
    "erf": ("erf", "erf_backward", "input", "float"),
    "expm1": ("expm1", "expm1_backward", "result", "float"),
    "log1p": ("log1p", "log1p_backward", "input", "float"),
    "logsigmoid": ("logsigmoid", "logsigmoid_backward", "input", "float"),
    "floor": ("floor", None, None, "copy"),
    "ceil": ("ceil", None, None, "copy"),
    "round": ("round_even", None, None, "copy"),
    "sign": ("sign", None, None, "same"),
}


def _unary(name, kernel, backward_kernel, saves, integers):
    """The Function and the public function of one UNARY_ROWS row."""
    function_class = type(name.capitalize(), (_Unary,), {
        "kernel": kernel, "backward_kernel": backward_kernel, "saves": saves, "__module__": __name__,
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
