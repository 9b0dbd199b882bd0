"""Elementwise forward and backward kernels.

Every kernel takes 2-D arrays of one shape (rows, columns), any strides (a broadcast input has stride 0),
and writes into a C-contiguous `out` passed last. The caller folds N-d tensors into that form.
"""

import math

from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import parallel_cpu_kernel

# ----------------------------------------------------------------------------------------------- unary


@parallel_cpu_kernel
def neg(x, out):
    """out = -x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = -x[row, column]


@parallel_cpu_kernel
def absolute(x, out):
    """out = |x|."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = abs(x[row, column])


@parallel_cpu_kernel
def exp(x, out):
    """out = e ** x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = scalar.exp(x[row, column])


@parallel_cpu_kernel
def log(x, out):
    """out = ln x (-inf at 0, NaN below)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = math.log(x[row, column])


@parallel_cpu_kernel
def sqrt(x, out):
    """out = sqrt(x) (NaN below 0)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = math.sqrt(x[row, column])


@parallel_cpu_kernel
def rsqrt(x, out):
    """out = 1 / sqrt(x) (inf at 0, NaN below)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = 1.0 / math.sqrt(x[row, column])


@parallel_cpu_kernel
def sin(x, out):
    """out = sin x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = math.sin(x[row, column])


@parallel_cpu_kernel
def cos(x, out):
    """out = cos x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = math.cos(x[row, column])


@parallel_cpu_kernel
def tanh(x, out):
    """out = tanh x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = math.tanh(x[row, column])


@parallel_cpu_kernel
def sigmoid(x, out):
    """out = 1 / (1 + e ** -x), finite for any x."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = scalar.sigmoid(x[row, column])


@parallel_cpu_kernel
def relu(x, out):
    """out = max(x, 0) (NaN stays NaN)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = 0.0 if value <= 0 else value


@parallel_cpu_kernel
def clamp(x, low, high, out):
    """out = min(max(x, low), high); pass -inf / inf for a missing bound; NaN stays NaN."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            if value < low:
                value = low
            if value > high:
                value = high
            out[row, column] = value


# ---------------------------------------------------------------------------------------------- binary


@parallel_cpu_kernel
def add(a, b, out):
    """out = a + b."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] + b[row, column]


@parallel_cpu_kernel
def sub(a, b, out):
    """out = a - b."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] - b[row, column]


@parallel_cpu_kernel
def mul(a, b, out):
    """out = a * b."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] * b[row, column]


@parallel_cpu_kernel
def div(a, b, out):
    """out = a / b (IEEE: x / 0 is +-inf, 0 / 0 NaN)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] / b[row, column]


@parallel_cpu_kernel
def power(a, b, out):
    """out = a ** b."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = scalar.power(a[row, column], b[row, column])


@parallel_cpu_kernel
def maximum(a, b, out):
    """out = max(a, b), NaN if either is NaN."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = scalar.maximum(a[row, column], b[row, column])


@parallel_cpu_kernel
def minimum(a, b, out):
    """out = min(a, b), NaN if either is NaN."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = scalar.minimum(a[row, column], b[row, column])


@parallel_cpu_kernel
def where(condition, a, b, out):
    """out = a where condition else b."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] if condition[row, column] else b[row, column]


# ----------------------------------------------------------------------------------------- comparisons


@parallel_cpu_kernel
def equal(a, b, out):
    """out = a == b (bool)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] == b[row, column]


@parallel_cpu_kernel
def not_equal(a, b, out):
    """out = a != b (bool)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] != b[row, column]


@parallel_cpu_kernel
def less(a, b, out):
    """out = a < b (bool)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] < b[row, column]


@parallel_cpu_kernel
def less_equal(a, b, out):
    """out = a <= b (bool)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] <= b[row, column]


@parallel_cpu_kernel
def greater(a, b, out):
    """out = a > b (bool)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] > b[row, column]


@parallel_cpu_kernel
def greater_equal(a, b, out):
    """out = a >= b (bool)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = a[row, column] >= b[row, column]
