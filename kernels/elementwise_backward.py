"""Backward kernels of the elementwise ops; same 2-D calling convention as `elementwise.py`.

Each docstring states the derivative. Gradients of add, sub, mul, exp and log reuse the forward kernels
(g, -g, g * b, g * e ** x, g / x) and need none here.
"""

import math

from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import parallel_cpu_kernel


@parallel_cpu_kernel
def absolute_backward(grad_output, x, out):
    """d|x|/dx = sign(x) (0 at 0)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * scalar.sign(x[row, column])


@parallel_cpu_kernel
def sqrt_backward(grad_output, result, out):
    """d sqrt(x)/dx = 1 / (2 sqrt(x)), from the forward result."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] / (2.0 * result[row, column])


@parallel_cpu_kernel
def rsqrt_backward(grad_output, result, out):
    """d x^(-1/2)/dx = -x^(-3/2) / 2 = -result^3 / 2."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = result[row, column]
            out[row, column] = -0.5 * grad_output[row, column] * value * value * value


@parallel_cpu_kernel
def sin_backward(grad_output, x, out):
    """d sin(x)/dx = cos(x)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * math.cos(x[row, column])


@parallel_cpu_kernel
def cos_backward(grad_output, x, out):
    """d cos(x)/dx = -sin(x)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = -grad_output[row, column] * math.sin(x[row, column])


@parallel_cpu_kernel
def tanh_backward(grad_output, result, out):
    """d tanh(x)/dx = 1 - tanh(x)^2, from the forward result."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = result[row, column]
            out[row, column] = grad_output[row, column] * (1.0 - value * value)


@parallel_cpu_kernel
def sigmoid_backward(grad_output, result, out):
    """d sigmoid(x)/dx = s (1 - s), from the forward result s."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = result[row, column]
            out[row, column] = grad_output[row, column] * value * (1.0 - value)


@parallel_cpu_kernel
def relu_backward(grad_output, result, out):
    """d relu(x)/dx = 0 where the result is <= 0 (also at x = 0), else 1 (NaN passes the gradient, as PyTorch)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = 0.0 if result[row, column] <= 0 else grad_output[row, column]


@parallel_cpu_kernel
def clamp_backward(grad_output, x, low, high, out):
    """d clamp(x, low, high)/dx = 1 where low <= x <= high (bounds included, as in PyTorch), else 0."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = grad_output[row, column] if low <= value <= high else 0.0


@parallel_cpu_kernel
def div_backward_divisor(grad_output, a, b, out):
    """d(a / b)/db = -a / b^2, computed as -(a / b) / b like PyTorch."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            divisor = b[row, column]
            out[row, column] = -grad_output[row, column] * (a[row, column] / divisor) / divisor


@parallel_cpu_kernel
def power_backward_base(grad_output, base, exponent, out):
    """d(a ** b)/da = b * a ** (b - 1), zero where b == 0."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            derivative = scalar.power_base_derivative(base[row, column], exponent[row, column])
            out[row, column] = grad_output[row, column] * derivative


@parallel_cpu_kernel
def power_backward_exponent(grad_output, base, exponent, result, out):
    """d(a ** b)/db = a ** b * ln(a), zero where a == 0 and b >= 0."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            derivative = scalar.power_exponent_derivative(base[row, column], exponent[row, column], result[row, column])
            out[row, column] = grad_output[row, column] * derivative


@parallel_cpu_kernel
def maximum_backward(grad_output, a, b, out):
    """d max(a, b)/da = 1 where a > b, 1/2 where a == b, 0 where a < b (call with b, a for d/db)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * scalar.maximum_derivative(a[row, column], b[row, column])


@parallel_cpu_kernel
def minimum_backward(grad_output, a, b, out):
    """d min(a, b)/da = 1 where a < b, 1/2 where a == b, 0 where a > b (call with b, a for d/db)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * scalar.minimum_derivative(a[row, column], b[row, column])


@parallel_cpu_kernel
def where_backward(grad_output, condition, take_where_true, out):
    """d where(c, a, b)/da = c and d/db = not c: keep the gradient where condition == take_where_true."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            keep = condition[row, column] == take_where_true
            out[row, column] = grad_output[row, column] if keep else 0.0
