"""Kernels of the composable gradient transforms: in-place passes over 1-D C-contiguous arrays of one dtype."""

import math

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, parallel_cpu_kernel

# Reductions sum fixed chunks in parallel and then the partial sums in order: bit-identical on reruns.
_REDUCE_CHUNK = 4096


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adam_moments(mu, nu, b1, b2, eps, eps_root, bias_correction1, bias_correction2, grad):
    """mu = b1 mu + (1 - b1) g; nu = b2 nu + (1 - b2) g^2; g = (mu / bc1) / (sqrt(nu / bc2 + eps_root) + eps)."""
    for index in prange(grad.size):
        gradient = grad[index]
        average = b1 * mu[index] + (1.0 - b1) * gradient
        square = b2 * nu[index] + (1.0 - b2) * gradient * gradient
        mu[index] = average
        nu[index] = square
        grad[index] = (average / bias_correction1) / (math.sqrt(square / bias_correction2 + eps_root) + eps)


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def rms_scale(nu, decay, eps, eps_in_sqrt, grad):
    """nu = decay nu + (1 - decay) g^2; g = g / sqrt(nu + eps) (eps_in_sqrt) or g / (sqrt(nu) + eps)."""
    for index in prange(grad.size):
        gradient = grad[index]
        square = decay * nu[index] + (1.0 - decay) * gradient * gradient
        nu[index] = square
        if eps_in_sqrt:
            grad[index] = gradient / math.sqrt(square + eps)
        else:
            grad[index] = gradient / (math.sqrt(square) + eps)


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def trace_momentum(trace, decay, nesterov, grad):
    """t = g + decay t; g = g + decay t (nesterov) or t."""
    for index in prange(grad.size):
        gradient = grad[index]
        momentum = gradient + decay * trace[index]
        trace[index] = momentum
        grad[index] = gradient + decay * momentum if nesterov else momentum


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def add_scaled(other, factor, out):
    """out += factor * other."""
    for index in prange(out.size):
        out[index] = out[index] + factor * other[index]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def lerp_into(other, weight, out):
    """out += weight * (other - out) (a running mean with weight 1 / (n + 1))."""
    for index in prange(out.size):
        out[index] = out[index] + weight * (other[index] - out[index])


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def scale_values(factor, out):
    """out *= factor."""
    for index in prange(out.size):
        out[index] = out[index] * factor


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def clip_values(max_delta, out):
    """out = clip(out, -max_delta, max_delta) (NaN stays NaN)."""
    for index in prange(out.size):
        value = out[index]
        if value > max_delta:
            out[index] = max_delta
        elif value < -max_delta:
            out[index] = -max_delta


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def zero_nan_values(out):
    """Replace NaN by 0 in place; returns how many were replaced."""
    found = 0
    for index in prange(out.size):
        if out[index] != out[index]:
            out[index] = 0.0
            found += 1
    return found


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def count_nonfinite(x):
    """How many elements of x are NaN or +-inf."""
    found = 0
    for index in prange(x.size):
        if not math.isfinite(x[index]):
            found += 1
    return found


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def sum_of_squares(x):
    """sum(x^2) in float64, over fixed chunks summed in order (deterministic)."""
    chunks = (x.size + _REDUCE_CHUNK - 1) // _REDUCE_CHUNK
    partial = np.zeros(chunks, np.float64)
    for chunk in prange(chunks):
        total = 0.0
        for index in range(chunk * _REDUCE_CHUNK, min((chunk + 1) * _REDUCE_CHUNK, x.size)):
            value = np.float64(x[index])
            total += value * value
        partial[chunk] = total
    result = 0.0
    for chunk in range(chunks):
        result += partial[chunk]
    return result


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adaptive_clip_rows(param, clipping, eps, grad):
    """Per row r of (units, fan) arrays: m = max(|p_r|, eps) * clipping; g_r *= m / max(|g_r|, 1e-6) where
    |g_r| > m (|.| the Euclidean norm; rows of all zero stay)."""
    for row in range(grad.shape[0]):
        param_norm = 0.0
        grad_norm = 0.0
        for column in range(grad.shape[1]):
            param_norm += np.float64(param[row, column]) ** 2
            grad_norm += np.float64(grad[row, column]) ** 2
        limit = max(math.sqrt(param_norm), eps) * clipping
        grad_norm = math.sqrt(grad_norm)
        if not grad_norm < limit:
            factor = limit / max(grad_norm, 1e-6)
            for column in range(grad.shape[1]):
                grad[row, column] = grad[row, column] * factor
