"""Gradient formulas of the elementwise ops and their kernels; same 2-D calling convention as `elementwise.py`.

Each formula takes the incoming gradient first, then what the op saved (its input or its result), and returns
the input's gradient; its docstring states the derivative. Gradients that are forward ops (g, -g, g * b,
g / b) use the forward kernels.
"""

import math

from nbprop.kernels import scalar
from nbprop.kernels._jit import scalar_function
from nbprop.kernels.elementwise import floor_divided
from nbprop.kernels.elementwise_map import map_kernel

TWO_OVER_ROOT_PI = 2.0 / math.sqrt(math.pi)

# ----------------------------------------------------------------------------------------------- unary


@scalar_function
def absolute_gradient(grad, x):
    """d|x|/dx = sign(x) (0 at 0)."""
    return grad * scalar.sign(x)


@scalar_function
def exp_gradient(grad, result):
    """d e^x/dx = e^x, from the forward result."""
    return grad * result


@scalar_function
def log_gradient(grad, x):
    """d ln(x)/dx = 1 / x."""
    return grad / x


@scalar_function
def sqrt_gradient(grad, result):
    """d sqrt(x)/dx = 1 / (2 sqrt(x)), from the forward result."""
    return grad / (2.0 * result)


@scalar_function
def rsqrt_gradient(grad, result):
    """d x^(-1/2)/dx = -x^(-3/2) / 2 = -result^3 / 2."""
    return -0.5 * grad * result * result * result


@scalar_function
def sin_gradient(grad, x):
    """d sin(x)/dx = cos(x)."""
    return grad * math.cos(x)


@scalar_function
def cos_gradient(grad, x):
    """d cos(x)/dx = -sin(x)."""
    return -grad * math.sin(x)


@scalar_function
def tanh_gradient(grad, result):
    """d tanh(x)/dx = 1 - tanh(x)^2, from the forward result."""
    return grad * (1.0 - result * result)


@scalar_function
def sigmoid_gradient(grad, result):
    """d sigmoid(x)/dx = s (1 - s), from the forward result s."""
    return grad * result * (1.0 - result)


@scalar_function
def relu_gradient(grad, result):
    """d relu(x)/dx = 0 where the result is <= 0 (also at x = 0), else 1 (NaN passes the gradient, as PyTorch)."""
    return 0.0 if result <= 0 else grad


@scalar_function
def erf_gradient(grad, x):
    """d erf(x)/dx = 2 / sqrt(pi) e^(-x^2)."""
    return TWO_OVER_ROOT_PI * scalar.exp(-(x * x)) * grad


@scalar_function
def expm1_gradient(grad, result):
    """d (e^x - 1)/dx = e^x = result + 1."""
    return grad * (result + 1.0)


@scalar_function
def log1p_gradient(grad, x):
    """d ln(1 + x)/dx = 1 / (1 + x)."""
    return grad / (x + 1.0)


@scalar_function
def logsigmoid_gradient(grad, x):
    """d ln sigmoid(x)/dx = 1 - sigmoid(x) = sigmoid(-x), as PyTorch writes it with z = e^(-|x|):
    z / (1 + z) for x >= 0, 1 - z / (1 + z) below."""
    z = scalar.exp(-abs(x))
    if x < 0:
        return grad * (1.0 - z / (1.0 + z))
    return grad * (z / (1.0 + z))


@scalar_function
def clamp_gradient(grad, x, low, high):
    """d clamp(x, low, high)/dx = 1 where low <= x <= high (bounds included, as in PyTorch), else 0."""
    return grad if low <= x <= high else 0.0


absolute_backward = map_kernel("absolute_backward", absolute_gradient, 2)
exp_backward = map_kernel("exp_backward", exp_gradient, 2)
log_backward = map_kernel("log_backward", log_gradient, 2)
sqrt_backward = map_kernel("sqrt_backward", sqrt_gradient, 2)
rsqrt_backward = map_kernel("rsqrt_backward", rsqrt_gradient, 2)
sin_backward = map_kernel("sin_backward", sin_gradient, 2)
cos_backward = map_kernel("cos_backward", cos_gradient, 2)
tanh_backward = map_kernel("tanh_backward", tanh_gradient, 2)
sigmoid_backward = map_kernel("sigmoid_backward", sigmoid_gradient, 2)
relu_backward = map_kernel("relu_backward", relu_gradient, 2)
erf_backward = map_kernel("erf_backward", erf_gradient, 2)
expm1_backward = map_kernel("expm1_backward", expm1_gradient, 2)
log1p_backward = map_kernel("log1p_backward", log1p_gradient, 2)
logsigmoid_backward = map_kernel("logsigmoid_backward", logsigmoid_gradient, 2)
clamp_backward = map_kernel("clamp_backward", clamp_gradient, 2, scalars=2)

# ---------------------------------------------------------------------------------------------- binary


@scalar_function
def divisor_gradient(grad, a, b):
    """d(a / b)/db = -a / b^2, computed as -(a / b) / b like PyTorch."""
    return -grad * (a / b) / b


@scalar_function
def power_base_gradient(grad, base, exponent):
    """d(a ** b)/da = b * a ** (b - 1), zero where b == 0."""
    return grad * scalar.power_base_derivative(base, exponent)


@scalar_function
def power_exponent_gradient(grad, base, exponent, result):
    """d(a ** b)/db = a ** b * ln(a), zero where a == 0 and b >= 0."""
    return grad * scalar.power_exponent_derivative(base, exponent, result)


@scalar_function
def maximum_gradient(grad, a, b):
    """d max(a, b)/da = 1 where a > b, 1/2 where a == b, 0 where a < b (call with b, a for d/db)."""
    return grad * scalar.maximum_derivative(a, b)


@scalar_function
def minimum_gradient(grad, a, b):
    """d min(a, b)/da = 1 where a < b, 1/2 where a == b, 0 where a > b (call with b, a for d/db)."""
    return grad * scalar.minimum_derivative(a, b)


@scalar_function
def remainder_divisor_gradient(grad, a, b):
    """d(a mod b)/db = -floor(a / b), with PyTorch's floor division."""
    return -grad * floor_divided(a, b)


@scalar_function
def atan2_first_gradient(grad, a, b):
    """d atan2(a, b)/da = b / (a^2 + b^2)."""
    return grad * b / (a * a + b * b)


@scalar_function
def atan2_second_gradient(grad, a, b):
    """d atan2(a, b)/db = -a / (a^2 + b^2)."""
    return grad * -a / (a * a + b * b)


@scalar_function
def hypot_gradient(grad, a, result):
    """d hypot(a, b)/da = a / hypot(a, b) (call with b for d/db)."""
    return grad * a / result


@scalar_function
def where_gradient(grad, condition, take_where_true):
    """d where(c, a, b)/da = c and d/db = not c: keep the gradient where condition == take_where_true."""
    return grad if condition == take_where_true else 0.0


div_backward_divisor = map_kernel("div_backward_divisor", divisor_gradient, 3)
power_backward_base = map_kernel("power_backward_base", power_base_gradient, 3)
power_backward_exponent = map_kernel("power_backward_exponent", power_exponent_gradient, 4)
maximum_backward = map_kernel("maximum_backward", maximum_gradient, 3)
minimum_backward = map_kernel("minimum_backward", minimum_gradient, 3)
remainder_backward_divisor = map_kernel("remainder_backward_divisor", remainder_divisor_gradient, 3,
                                        fastmath=False)
atan2_backward_first = map_kernel("atan2_backward_first", atan2_first_gradient, 3)
atan2_backward_second = map_kernel("atan2_backward_second", atan2_second_gradient, 3)
hypot_backward = map_kernel("hypot_backward", hypot_gradient, 3)
where_backward = map_kernel("where_backward", where_gradient, 2, scalars=1)
