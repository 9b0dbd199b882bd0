"""Per-element formulas shared by CPU loops and CUDA kernels; each is inlined where it is called."""

import math

from nbprop.kernels._jit import scalar_function


@scalar_function
def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp is only taken of a non-positive number."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@scalar_function
def sign(x):
    """-1, 0 or 1 (0 at 0 and at NaN, as PyTorch's sign), also the derivative of abs."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0


@scalar_function
def power(base, exponent):
    """base ** exponent with PyTorch's conventions (0 ** 0 = 1, a negative base with a fractional exponent NaN)."""
    return base**exponent


@scalar_function
def power_base_derivative(base, exponent):
    """d(base ** exponent)/d base = exponent * base ** (exponent - 1), zero where the exponent is zero."""
    if exponent == 0:
        return 0.0
    return exponent * base ** (exponent - 1.0)


@scalar_function
def power_exponent_derivative(base, exponent, result):
    """d(base ** exponent)/d exponent = base ** exponent * log(base), zero where 0 ** (exponent >= 0)."""
    if base == 0 and exponent >= 0:
        return 0.0
    return result * math.log(base)


@scalar_function
def maximum(a, b):
    """The larger of a and b; NaN if either is NaN, as in PyTorch."""
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@scalar_function
def minimum(a, b):
    """The smaller of a and b; NaN if either is NaN, as in PyTorch."""
    if a != a or b != b:
        return a + b
    return a if a <= b else b


@scalar_function
def maximum_derivative(a, b):
    """d max(a, b)/d a: 1 where a wins, 1/2 on a tie (PyTorch splits the gradient), 0 where b wins.

    Where either is NaN the result is NaN and, as in PyTorch, both inputs get the whole gradient.
    """
    if a < b:
        return 0.0
    if a == b:
        return 0.5
    return 1.0


@scalar_function
def minimum_derivative(a, b):
    """d min(a, b)/d a: 1 where a wins, 1/2 on a tie, 0 where b wins (1 where either is NaN, as PyTorch)."""
    if a > b:
        return 0.0
    if a == b:
        return 0.5
    return 1.0


@scalar_function
def improves(value, best, largest):
    """Whether `value` replaces `best` as the running maximum (largest) or minimum: it is strictly beyond
    it, so the first of ties stays, or it is NaN, so a NaN anywhere makes the extreme NaN.
    """
    return (value > best if largest else value < best) or math.isnan(value)


@scalar_function
def accumulate(total, value, product):
    """A running product (where `product`) or sum, advanced by one value."""
    return total * value if product else total + value
