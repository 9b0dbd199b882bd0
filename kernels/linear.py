"""Kernels of the dense layers: the bias epilogue of linear and its gradient, and dropout's scaled mask.

The matrix products of linear go through BLAS (`matmul_2d` in matmul.py); these kernels do the passes
around them. The bias gradient is a column sum in which every thread owns a block of columns and adds the
rows in order, so serial and parallel runs give bit-identical sums.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel

# Columns per thread-owned block of the bias gradient: contiguous enough to vectorise, small enough to
# split 512 columns between threads.
_COLUMN_BLOCK = 64


@parallel_cpu_kernel
def linear_bias_add(bias, out):
    """out[i, j] += bias[j], in place.

    bias: (m,) float; out: (n, m) float of the same dtype, C-contiguous (the matrix product x @ W^T).
    """
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] += bias[column]


@parallel_cpu_kernel
def linear_bias_grad(grad_output, out):
    """out[j] = sum_i grad_output[i, j]: the gradient of the bias, d(x @ W^T + b)[i, j] / d b[j] = 1.

    grad_output: (n, m) float, C-contiguous; out: (m,) float, overwritten. Rows are added in increasing i
    for every column, whichever variant runs. Pass the work (n * m) to choose the variant.
    """
    rows, columns = grad_output.shape
    block_count = (columns + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK
    # Separate totals: adding into `out` directly, which may alias grad_output as far as the compiler knows,
    # kept every sum in memory and ran 10x slower.
    totals = np.zeros((block_count, _COLUMN_BLOCK), out.dtype)
    for block in prange(block_count):
        start = block * _COLUMN_BLOCK
        width = min(_COLUMN_BLOCK, columns - start)
        total = totals[block]
        for row in range(rows):
            line = grad_output[row]
            for offset in range(width):
                total[offset] += line[start + offset]
        # Element by element: slice assignment compiled 10x slower (2.3 s of a cold start).
        for offset in range(width):
            out[start + offset] = total[offset]


@parallel_cpu_kernel
def dropout_apply(x, uniform, p, scale, out):
    """out = x * scale where uniform >= p, else x * 0 (NaN and inf stay visible, as in PyTorch's x * mask).

    x, uniform, out: (rows, columns), one float dtype, `uniform` holding draws in [0, 1); p in [0, 1) the drop
    probability, scale = 1 / (1 - p). The same kernel is the backward: d out / d x = scale or 0 by the mask.
    """
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            keep = scale if uniform[row, column] >= p else 0.0
            out[row, column] = x[row, column] * keep
