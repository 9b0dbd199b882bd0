"""Elementwise ops declared once: each is a per-element formula for its value (and, in
`elementwise_backward.py`, its gradient) plus one `map_kernel` row that makes its serial and parallel kernels.

Every kernel takes 2-D arrays of one shape (rows, columns), any strides (a broadcast input has stride 0),
and writes into a C-contiguous `out` passed last. The caller folds N-d tensors into that form.
"""

import math

import numpy as np
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from nbprop.kernels import scalar, scalar_special
from nbprop.kernels._jit import scalar_function
from nbprop.kernels.elementwise_map import map_kernel

# ----------------------------------------------------------------------------------------------- unary


@scalar_function
def negative(x):
    """-x."""
    return -x


@scalar_function
def absolute_value(x):
    """|x|."""
    return abs(x)


@scalar_function
def natural_log(x):
    """ln x (-inf at 0, NaN below)."""
    return scalar.log(x)


@scalar_function
def square_root(x):
    """sqrt(x) (NaN below 0)."""
    return math.sqrt(x)


@scalar_function
def reciprocal_square_root(x):
    """1 / sqrt(x) (inf at 0, NaN below)."""
    return 1.0 / math.sqrt(x)


@scalar_function
def sine(x):
    return math.sin(x)


@scalar_function
def cosine(x):
    return math.cos(x)


@scalar_function
def hyperbolic_tangent(x):
    return scalar.tanh(x)


@scalar_function
def rectified(x):
    """max(x, 0) (NaN stays NaN)."""
    return 0.0 if x <= 0 else x


@scalar_function
def error_function(x):
    """erf x (float32: vectorised arithmetic within 1 ulp; float64: libm)."""
    return scalar_special.erf(x)


@scalar_function
def exp_minus_one(x):
    """e ** x - 1, accurate near 0."""
    return math.expm1(x)


@scalar_function
def log_one_plus(x):
    """ln(1 + x), accurate near 0."""
    return math.log1p(x)


@scalar_function
def round_down(x):
    return np.floor(x)


@scalar_function
def round_up(x):
    return np.ceil(x)


@scalar_function
def round_half_even(x):
    """The nearest integer, halves to even (PyTorch's round)."""
    return np.rint(x)


@scalar_function
def log_sigmoid(x):
    """ln(1 / (1 + e ** -x)) = min(x, 0) - ln(1 + e ** -|x|), PyTorch's stable form."""
    return min(x, 0.0) - math.log1p(scalar.exp(-abs(x)))


@scalar_function
def clamp_value(x, low, high):
    """min(max(x, low), high); pass -inf / inf for a missing bound; NaN stays NaN."""
    if x < low:
        x = low
    if x > high:
        x = high
    return x


neg = map_kernel("neg", negative, 1)
absolute = map_kernel("absolute", absolute_value, 1)
exp = map_kernel("exp", scalar.exp, 1)
log = map_kernel("log", natural_log, 1)
sqrt = map_kernel("sqrt", square_root, 1)
rsqrt = map_kernel("rsqrt", reciprocal_square_root, 1)
sin = map_kernel("sin", sine, 1)
cos = map_kernel("cos", cosine, 1)
tanh = map_kernel("tanh", hyperbolic_tangent, 1)
sigmoid = map_kernel("sigmoid", scalar.sigmoid, 1)
relu = map_kernel("relu", rectified, 1)
erf = map_kernel("erf", error_function, 1)
expm1 = map_kernel("expm1", exp_minus_one, 1)
log1p = map_kernel("log1p", log_one_plus, 1)
floor = map_kernel("floor", round_down, 1)
ceil = map_kernel("ceil", round_up, 1)
round_even = map_kernel("round_even", round_half_even, 1)
sign = map_kernel("sign", scalar.sign, 1)
logsigmoid = map_kernel("logsigmoid", log_sigmoid, 1)
clamp = map_kernel("clamp", clamp_value, 1, scalars=2)

# ---------------------------------------------------------------------------------------------- binary


@scalar_function
def plus(a, b):
    return a + b


@scalar_function
def minus(a, b):
    return a - b


@scalar_function
def times(a, b):
    return a * b


@scalar_function
def divided(a, b):
    """a / b (IEEE: x / 0 is +-inf, 0 / 0 NaN)."""
    return a / b


def one_like(x):
    """1 in the type of x: a float32 formula that meets a float64 literal is computed in float64, which rounds
    differently from PyTorch's float32 arithmetic."""
    return 1.0


@overload(one_like, inline="always")
def _one_like_overload(x):
    one = as_dtype(x).type(1)
    return lambda x: one


@scalar_function
def floor_divided(a, b):
    """floor(a / b) as PyTorch computes it for floats (from fmod, so that a == b * (a // b) + a % b);
    IEEE a / b where b is 0."""
    if b == 0:
        return a / b
    modulus = np.fmod(a, b)
    quotient = (a - modulus) / b
    if modulus != 0 and (b < 0) != (modulus < 0):
        quotient -= one_like(quotient)
    if quotient == 0:
        return math.copysign(0.0, a / b)
    whole = np.floor(quotient)
    if quotient - whole > 0.5:
        whole += one_like(whole)
    return whole


@scalar_function
def floor_divided_integer(a, b):
    """a // b of integers, rounding towards -inf (the caller rejects b == 0)."""
    return a // b


@scalar_function
def modulo(a, b):
    """a mod b with the sign of b (Python's and PyTorch's remainder); NaN where b is 0 for floats."""
    modulus = np.fmod(a, b)
    if modulus != 0 and (b < 0) != (modulus < 0):
        modulus += b
    return modulus


@scalar_function
def modulo_integer(a, b):
    """a % b of integers with the sign of b (the caller rejects b == 0)."""
    return a % b


@scalar_function
def arc_tangent2(a, b):
    """The angle of the point (b, a): atan2(a, b)."""
    return math.atan2(a, b)


@scalar_function
def hypotenuse(a, b):
    """sqrt(a^2 + b^2) without overflow."""
    return math.hypot(a, b)


@scalar_function
def select(condition, a, b):
    return a if condition else b


add = map_kernel("add", plus, 2)
sub = map_kernel("sub", minus, 2)
mul = map_kernel("mul", times, 2)
div = map_kernel("div", divided, 2)
power = map_kernel("power", scalar.power, 2)
maximum = map_kernel("maximum", scalar.maximum, 2)
minimum = map_kernel("minimum", scalar.minimum, 2)
floor_divide = map_kernel("floor_divide", floor_divided, 2, fastmath=False)
floor_divide_integer = map_kernel("floor_divide_integer", floor_divided_integer, 2)
remainder = map_kernel("remainder", modulo, 2, fastmath=False)
remainder_integer = map_kernel("remainder_integer", modulo_integer, 2)
atan2 = map_kernel("atan2", arc_tangent2, 2)
hypot = map_kernel("hypot", hypotenuse, 2)
where = map_kernel("where", select, 3)

# ----------------------------------------------------------------------------------------- comparisons


@scalar_function
def is_equal(a, b):
    return a == b


@scalar_function
def is_not_equal(a, b):
    return a != b


@scalar_function
def is_less(a, b):
    return a < b


@scalar_function
def is_less_equal(a, b):
    return a <= b


@scalar_function
def is_greater(a, b):
    return a > b


@scalar_function
def is_greater_equal(a, b):
    return a >= b


equal = map_kernel("equal", is_equal, 2)
not_equal = map_kernel("not_equal", is_not_equal, 2)
less = map_kernel("less", is_less, 2)
less_equal = map_kernel("less_equal", is_less_equal, 2)
greater = map_kernel("greater", is_greater, 2)
greater_equal = map_kernel("greater_equal", is_greater_equal, 2)
