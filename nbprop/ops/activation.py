"""torch.nn.functional's activations: relu, leaky_relu, elu, selu, gelu, silu, softplus, hardtanh.

Each is one fused forward kernel and one fused backward kernel (kernels/activation.py). `inplace=True`
writes the result into the input's storage and returns the input (PyTorch's semantics, through the same
in-place machinery as `clamp_`: the input's version is bumped and it takes the op's tape node); as in
PyTorch, a leaf that requires grad cannot be changed in place.
"""

import math
import numbers

from nbprop.autograd import Function
from nbprop.ops import inplace, unary
from nbprop.ops.elementwise import clamp, where
from nbprop.ops.elementwise_base import gradient_map, map_tensors
from nbprop.tensor import Tensor

# SELU's fixed constants (Klambauer et al. 2017), PyTorch's values.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
INVERSE_SQRT_TWO = 1.0 / math.sqrt(2.0)
INVERSE_SQRT_TWO_PI = 1.0 / math.sqrt(2.0 * math.pi)  # the standard normal density at 0
SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)  # the scale inside GELU's tanh approximation
GELU_CUBIC = 0.044715


class _Activation(Function):
    """y = f(x; parameters) by kernel `kernel`; backward by `backward_kernel(grad_output, x, *parameters)`.

    For backward passes that are differentiated again, `derivative(x, *parameters)` is f'(x) in differentiable
    ops (None where f' is constant piecewise: the backward kernel is recorded, see GradientMap).
    """

    kernel = backward_kernel = derivative = None

    @classmethod
    def forward(cls, ctx, x, *parameters):
        ctx.save_for_backward(x)
        ctx.parameters = parameters
        return map_tensors(cls.kernel, x, *parameters)

    @classmethod
    def backward(cls, ctx, grad_output):
        (x,) = ctx.saved_tensors
        parameters = ctx.parameters
        return (map_tensors(cls.backward_kernel, grad_output, x, *parameters),) + (None,) * len(parameters)

    @classmethod
    def backward_graph(cls, ctx, grad_output):
        (x,) = ctx.saved_tensors
        parameters = ctx.parameters
        if cls.derivative is None:  # a slope that is constant piecewise: the kernel itself, recorded
            return (gradient_map(cls.backward_kernel, grad_output, x, *parameters),) + (None,) * len(parameters)
        return (grad_output * cls.derivative(x, *parameters),) + (None,) * len(parameters)


class LeakyRelu(_Activation):
    kernel, backward_kernel = "leaky_relu", "leaky_relu_backward"


class Elu(_Activation):
    kernel, backward_kernel = "elu", "elu_backward"

    @staticmethod
    def derivative(x, alpha, scale, input_scale):
        # The exponential sees x clamped to <= 0 so that the branch where() drops stays finite for large x
        # (0 * inf would be NaN); at 0 the clamp passes the gradient, the left branch's, as the kernel.
        exponential = (clamp(x, max=0.0) * input_scale).exp()
        return where(x > 0, scale, exponential * (scale * alpha * input_scale))


class Gelu(_Activation):
    kernel, backward_kernel = "gelu", "gelu_backward"

    @staticmethod
    def derivative(x):
        # Phi(x) + x phi(x), Phi the standard normal CDF and phi its density.
        cdf = ((x * INVERSE_SQRT_TWO).erf() + 1.0) * 0.5
        return cdf + x * (x * x * -0.5).exp() * INVERSE_SQRT_TWO_PI


class GeluTanh(_Activation):
    kernel, backward_kernel = "gelu_tanh", "gelu_tanh_backward"

    @staticmethod
    def derivative(x):
        # s + x / 2 * 4 s (1 - s) * du/dx with s = sigmoid(2u) = (1 + tanh u) / 2, as the kernel.
        square = x * x
        half_one_plus_tanh = ((x + square * x * GELU_CUBIC) * (2.0 * SQRT_TWO_OVER_PI)).sigmoid()
        inner_derivative = (square * (3.0 * GELU_CUBIC) + 1.0) * SQRT_TWO_OVER_PI
        return half_one_plus_tanh + x * 2.0 * half_one_plus_tanh * (1.0 - half_one_plus_tanh) * inner_derivative


class Silu(_Activation):
    kernel, backward_kernel = "silu", "silu_backward"

    @staticmethod
    def derivative(x):
        s = x.sigmoid()
        return s * (x * (1.0 - s) + 1.0)


class Softplus(_Activation):
    kernel, backward_kernel = "softplus", "softplus_backward"

    @staticmethod
    def derivative(x, beta, threshold):
        scaled = x * beta
        return where(scaled > threshold, 1.0, scaled.sigmoid())


class Hardtanh(_Activation):
    kernel, backward_kernel = "hardtanh", "hardtanh_backward"


def _check_input(input, op):  # noqa: A002 - PyTorch's argument name
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: not implemented for {input.dtype} tensors (PyTorch: not implemented for "
                        f"'{'Long' if input.dtype.kind == 'i' else 'Bool'}'); convert with .float() first")
    return input


def _number(value, op, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def _finish(input, result, inplace_flag, op):  # noqa: A002 - PyTorch's argument name
    """The result, or the input overwritten with it when `inplace`."""
    return inplace.in_place(input, result, op + "_") if inplace_flag else result


def relu(input, inplace=False):  # noqa: A002 - PyTorch's argument names
    """max(x, 0); gradient 0 at 0 (PyTorch's)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"relu: expects a Tensor, got {type(input).__name__}")
    return _finish(input, unary.relu(input), inplace, "relu")


def leaky_relu(input, negative_slope=0.01, inplace=False):  # noqa: A002 - PyTorch's argument names
    """x for x > 0, negative_slope * x otherwise; gradient negative_slope at 0 (PyTorch's)."""
    _check_input(input, "leaky_relu")
    negative_slope = _number(negative_slope, "leaky_relu", "negative_slope")
    return _finish(input, LeakyRelu.apply(input, negative_slope), inplace, "leaky_relu")


def elu(input, alpha=1.0, inplace=False):  # noqa: A002 - PyTorch's argument names
    """x for x > 0, alpha * (exp(x) - 1) otherwise; gradient alpha at 0 (PyTorch's)."""
    _check_input(input, "elu")
    alpha = _number(alpha, "elu", "alpha")
    return _finish(input, Elu.apply(input, alpha, 1.0, 1.0), inplace, "elu")


def selu(input, inplace=False):  # noqa: A002 - PyTorch's argument names
    """scale * elu(x, alpha) with SELU's fixed alpha ~ 1.6733 and scale ~ 1.0507."""
    _check_input(input, "selu")
    return _finish(input, Elu.apply(input, SELU_ALPHA, SELU_SCALE, 1.0), inplace, "selu")


def gelu(input, approximate="none"):  # noqa: A002 - PyTorch's argument name
    """x * Phi(x) (Phi the standard normal CDF, exact through erfc) or, with approximate='tanh',
    x / 2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    _check_input(input, "gelu")
    if approximate == "none":
        return Gelu.apply(input)
    if approximate == "tanh":
        return GeluTanh.apply(input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input, inplace=False):  # noqa: A002 - PyTorch's argument names
    """x * sigmoid(x) (also called swish)."""
    _check_input(input, "silu")
    return _finish(input, Silu.apply(input), inplace, "silu")


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002 - PyTorch's argument names
    """log(1 + exp(beta x)) / beta, computed without overflow; x itself where beta x > threshold."""
    _check_input(input, "softplus")
    beta = _number(beta, "softplus", "beta")
    threshold = _number(threshold, "softplus", "threshold")
    if beta == 0:
        raise ValueError("softplus: beta must be non-zero (the function divides by it)")
    return Softplus.apply(input, beta, threshold)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # noqa: A002 - PyTorch's argument names
    """x clamped to [min_val, max_val]; gradient 1 strictly inside, 0 at and beyond the bounds (PyTorch's)."""
    _check_input(input, "hardtanh")
    min_val = _number(min_val, "hardtanh", "min_val")
    max_val = _number(max_val, "hardtanh", "max_val")
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not be larger than max_val ({max_val})")
    return _finish(input, Hardtanh.apply(input, min_val, max_val), inplace, "hardtanh")
