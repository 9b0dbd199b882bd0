"""Activation kernels (leaky ReLU, ELU/SELU, GELU, SiLU, softplus, hardtanh), forward and backward.

Same calling convention as `elementwise.py`: 2-D arrays of one shape (rows, columns), any strides, the
C-contiguous `out` passed last, parameters as scalars before it. Each backward docstring states the
derivative, with PyTorch's value at the kinks. The per-element formulas are the scalar helpers below,
inlined into the CPU loops and usable from CUDA kernels alike.
"""

import math

from numba import prange

from nbprop.kernels import scalar, scalar_special
from nbprop.kernels._jit import parallel_cpu_kernel, scalar_function

INVERSE_SQRT_TWO_PI = 0.3989422804014327  # 1 / sqrt(2 pi), the standard normal density at 0
SQRT_TWO_OVER_PI = 0.7978845608028654  # sqrt(2 / pi), the scale inside GELU's tanh approximation
GELU_CUBIC = 0.044715

# ------------------------------------------------------------------------------------ scalar formulas


@scalar_function
def elu_value(x, alpha, scale, input_scale):
    """scale * x for x > 0, else scale * alpha * (exp(input_scale * x) - 1) (expm1: exact near 0)."""
    if x > 0:
        return scale * x
    return scale * alpha * math.expm1(input_scale * x)


@scalar_function
def elu_derivative(x, alpha, scale, input_scale):
    """scale for x > 0, else scale * alpha * input_scale * exp(input_scale * x) (PyTorch's at 0: the left)."""
    if x > 0:
        return scale
    return scale * alpha * input_scale * scalar.exp(input_scale * x)


@scalar_function
def gelu_value(x):
    """x * Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps the left tail's tiny values exact (float32:
    vectorised arithmetic, float64: libm; see scalar_special.normal_terms)."""
    twice_cdf, _ = scalar_special.normal_terms(x)
    return 0.5 * x * twice_cdf


@scalar_function
def gelu_derivative(x):
    """Phi(x) + x * phi(x), phi(x) = e^(-x^2 / 2) / sqrt(2 pi) the standard normal density."""
    twice_cdf, gaussian = scalar_special.normal_terms(x)
    return 0.5 * twice_cdf + x * INVERSE_SQRT_TWO_PI * gaussian


@scalar_function
def gelu_tanh_value(x):
    """x * (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3), as x * sigmoid(2u): no cancellation."""
    inner = SQRT_TWO_OVER_PI * (x + GELU_CUBIC * x * x * x)
    return x * scalar.sigmoid(2.0 * inner)


@scalar_function
def gelu_tanh_derivative(x):
    """(1 + tanh u) / 2 + x / 2 * (1 - tanh(u)^2) * du/dx, with (1 + tanh u) / 2 = sigmoid(2u) = s and
    1 - tanh(u)^2 = 4 s (1 - s)."""
    inner = SQRT_TWO_OVER_PI * (x + GELU_CUBIC * x * x * x)
    half_one_plus_tanh = scalar.sigmoid(2.0 * inner)
    inner_derivative = SQRT_TWO_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x)
    sech_squared = 4.0 * half_one_plus_tanh * (1.0 - half_one_plus_tanh)
    return half_one_plus_tanh + 0.5 * x * sech_squared * inner_derivative


@scalar_function
def silu_derivative(x):
    """d (x sigmoid x)/dx = s (1 + x (1 - s)), s = sigmoid(x)."""
    s = scalar.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


@scalar_function
def softplus_value(x, beta, threshold):
    """log(1 + exp(beta x)) / beta, written max(bx, 0) + log1p(exp(-|bx|)) so that exp never overflows;
    the identity x where beta x > threshold, as PyTorch."""
    scaled = beta * x
    if scaled > threshold:
        return x
    return (max(scaled, 0.0) + math.log1p(scalar.exp(-abs(scaled)))) / beta


# ------------------------------------------------------------------------------------------- forward


@parallel_cpu_kernel
def leaky_relu(x, negative_slope, out):
    """out = x for x > 0, negative_slope * x otherwise."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = value if value > 0 else value * negative_slope


@parallel_cpu_kernel
def elu(x, alpha, scale, input_scale, out):
    """out = scale * x for x > 0, scale * alpha * (exp(input_scale * x) - 1) otherwise (SELU: fixed alpha, scale)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = elu_value(x[row, column], alpha, scale, input_scale)


@parallel_cpu_kernel
def gelu(x, out):
    """out = x * Phi(x), Phi the standard normal distribution function (exact, through erfc)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = gelu_value(x[row, column])


@parallel_cpu_kernel
def gelu_tanh(x, out):
    """out = x / 2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (PyTorch's approximate='tanh')."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = gelu_tanh_value(x[row, column])


@parallel_cpu_kernel
def silu(x, out):
    """out = x * sigmoid(x)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = value * scalar.sigmoid(value)


@parallel_cpu_kernel
def softplus(x, beta, threshold, out):
    """out = log(1 + exp(beta x)) / beta, x where beta x > threshold; finite for any finite x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = softplus_value(x[row, column], beta, threshold)


@parallel_cpu_kernel
def hardtanh(x, min_val, max_val, out):
    """out = min(max(x, min_val), max_val); NaN stays NaN."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            if value < min_val:
                value = min_val
            if value > max_val:
                value = max_val
            out[row, column] = value


# ------------------------------------------------------------------------------------------ backward


@parallel_cpu_kernel
def leaky_relu_backward(grad_output, x, negative_slope, out):
    """d/dx = 1 for x > 0, negative_slope for x <= 0 (PyTorch's value at 0)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            gradient = grad_output[row, column]
            out[row, column] = gradient if x[row, column] > 0 else gradient * negative_slope


@parallel_cpu_kernel
def elu_backward(grad_output, x, alpha, scale, input_scale, out):
    """d/dx = scale for x > 0, scale * alpha * input_scale * exp(input_scale * x) for x <= 0 (so alpha * scale
    at 0, PyTorch's value)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * elu_derivative(x[row, column], alpha, scale, input_scale)


@parallel_cpu_kernel
def gelu_backward(grad_output, x, out):
    """d (x Phi(x))/dx = Phi(x) + x phi(x)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * gelu_derivative(x[row, column])


@parallel_cpu_kernel
def gelu_tanh_backward(grad_output, x, out):
    """d/dx of the tanh approximation: (1 + tanh u) / 2 + x / 2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * gelu_tanh_derivative(x[row, column])


@parallel_cpu_kernel
def silu_backward(grad_output, x, out):
    """d (x sigmoid x)/dx = s (1 + x (1 - s)), s = sigmoid(x)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = grad_output[row, column] * silu_derivative(x[row, column])


@parallel_cpu_kernel
def softplus_backward(grad_output, x, beta, threshold, out):
    """d/dx = sigmoid(beta x), and 1 where beta x > threshold (the identity branch), as PyTorch."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            scaled = beta * x[row, column]
            gradient = grad_output[row, column]
            out[row, column] = gradient if scaled > threshold else gradient * scalar.sigmoid(scaled)


@parallel_cpu_kernel
def hardtanh_backward(grad_output, x, min_val, max_val, out):
    """d/dx = 1 strictly inside (min_val, max_val), 0 outside and AT the bounds (PyTorch's convention, unlike
    clamp's); NaN passes the gradient."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = 0.0 if value <= min_val or value >= max_val else grad_output[row, column]
