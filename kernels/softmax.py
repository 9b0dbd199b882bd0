"""Fused, max-subtracted softmax, log-softmax and logsumexp over the last axis, and their backward kernels.

Every kernel takes C-contiguous float32/float64 arrays of shape (rows, n) (the frontend moves the reduced
dimension last) and writes into an output passed last; the parallel variant splits the rows. Each row is
reduced in one fixed order by a row function compiled once and called by both variants (inlined into a
prange body, fast-math vectorises a row's sum differently), so results are bit-identical on reruns and
between the serial and parallel variants. Sums accumulate in float64 even for float32 data, but the row max,
x - max and its exp stay in the row's dtype: a float64 max made every float32 row call the float64 exp
(degree 11, 8 lanes, conversions), 2x the float32 one's cost.
"""

import math

from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel
from nbprop.kernels.scalar_bits import maximum_number

# ------------------------------------------------------------------------------------------- one row


@cpu_kernel
def _row_max(x):
    """The largest element of a row, in its dtype (-inf for an empty row); NaNs are skipped, they spread
    through exp. Vectorised through maximum_number (a compare-and-select max reduction needs nnan)."""
    largest = x.dtype.type(-math.inf)
    for column in range(x.shape[0]):
        largest = maximum_number(largest, x[column])
    return largest


@cpu_kernel
def _softmax_row(x, out):
    largest = _row_max(x)
    total = 0.0
    for column in range(x.shape[0]):
        value = scalar.exp(x[column] - largest)
        out[column] = value
        total += value
    scale = 1.0 / total
    for column in range(x.shape[0]):
        out[column] *= scale


@cpu_kernel
def _log_softmax_row(x, out):
    largest = _row_max(x)
    total = 0.0
    for column in range(x.shape[0]):
        shifted = x[column] - largest
        out[column] = shifted
        total += scalar.exp(shifted)
    # (x - max) - log(total), through memory: at |x| ~ 1e30, x - (max + log(total)) (which fast-math's
    # reassociation could make of a single expression) would round log(total) away.
    log_total = math.log(total)
    for column in range(x.shape[0]):
        out[column] -= log_total


@cpu_kernel
def _logsumexp_row(x):
    largest = _row_max(x)
    if math.isinf(largest):
        largest = x.dtype.type(0.0)
    total = 0.0
    for column in range(x.shape[0]):
        total += scalar.exp(x[column] - largest)
    return largest + math.log(total)


@cpu_kernel
def _softmax_backward_row(grad_output, result, out):
    total = 0.0
    for column in range(result.shape[0]):
        total += grad_output[column] * result[column]
    for column in range(result.shape[0]):
        out[column] = result[column] * (grad_output[column] - total)


@cpu_kernel
def _log_softmax_backward_row(grad_output, result, out):
    total = 0.0
    for column in range(result.shape[0]):
        total += grad_output[column]
    for column in range(result.shape[0]):
        out[column] = grad_output[column] - scalar.exp(result[column]) * total


# ------------------------------------------------------------------------------------------- kernels


@parallel_cpu_kernel
def softmax_rows(x, out):
    """out[r] = exp(x[r] - max x[r]) / sum exp(x[r] - max x[r]), shape (rows, n).

    A row of all -inf, or one holding +inf or NaN, gives NaN throughout, as in PyTorch.
    """
    for row in prange(x.shape[0]):
        _softmax_row(x[row], out[row])


@parallel_cpu_kernel
def log_softmax_rows(x, out):
    """out[r] = (x[r] - max x[r]) - log sum exp(x[r] - max x[r]), shape (rows, n); finite for finite x."""
    for row in prange(x.shape[0]):
        _log_softmax_row(x[row], out[row])


@parallel_cpu_kernel
def logsumexp_rows(x, out):
    """out[r] = log sum exp(x[r]) for x (rows, n), out (rows,).

    The shift is max x[r], or 0 where that max is infinite (PyTorch's rule): a row of -inf (or an empty row)
    gives -inf, a row holding +inf gives +inf.
    """
    for row in prange(x.shape[0]):
        out[row] = _logsumexp_row(x[row])


@parallel_cpu_kernel
def softmax_rows_backward(grad_output, result, out):
    """d softmax: out[r] = y[r] * (g[r] - sum(g[r] * y[r])), from the forward result y; shapes (rows, n)."""
    for row in prange(result.shape[0]):
        _softmax_backward_row(grad_output[row], result[row], out[row])


@parallel_cpu_kernel
def log_softmax_rows_backward(grad_output, result, out):
    """d log_softmax: out[r] = g[r] - exp(y[r]) * sum(g[r]), from the forward result y; shapes (rows, n)."""
    for row in prange(result.shape[0]):
        _log_softmax_backward_row(grad_output[row], result[row], out[row])


@parallel_cpu_kernel
def logsumexp_rows_backward(grad_output, x, result, out):
    """d logsumexp: out[r] = g[r] * exp(x[r] - lse[r]) (the softmax of the row); x, out (rows, n), g and
    lse (rows,). NaN where x and lse are the same infinity, as in PyTorch."""
    for row in prange(x.shape[0]):
        for column in range(x.shape[1]):
            out[row, column] = grad_output[row] * scalar.exp(x[row, column] - result[row])
