"""Scan kernels: the running sum along axis 1 of an (outer, size, inner) array (cumsum and its gradient).

Work is split as in kernels/reduce.py: an item is one outer index and a block of up to BLOCK inner columns, and
runs the whole scan of its columns in order, so every item is an independent output and the serial and
threaded variants add in the same order. A single long line is scanned serially: a parallel scan would add in
another order than PyTorch's.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel
from nbprop.kernels.reduce import BLOCK, block_count


@parallel_cpu_kernel
def cumulative_sum(x, reverse, zero, out):
    """out[o, j, i] = sum of x[o, :j + 1, i] (or of x[o, j:, i] where `reverse`), each output rounded from a
    running total of zero's type.

    x: (outer, n, inner) float32/float64/int64/bool C-contiguous; zero: 0.0 for floating x (the total is
    float64, as PyTorch accumulates float32 on the CPU) or 0 for integer and bool x (int64); out: (outer, n,
    inner) x's floating dtype or int64. d out[j] / d x[m] = 1 for m <= j (m >= j where reverse), so the gradient
    of a scan is the reverse scan of the gradient.
    """
    count, inner = x.shape[1], x.shape[2]
    blocks = block_count(inner)
    for item in prange(x.shape[0] * blocks):
        o = item // blocks
        first = (item - o * blocks) * BLOCK
        width = min(BLOCK, inner - first)
        if inner == 1:
            total = zero
            for step in range(count):
                j = count - 1 - step if reverse else step
                total += x[o, j, 0]
                out[o, j, 0] = total
            continue
        totals = np.full(width, zero)
        for step in range(count):
            j = count - 1 - step if reverse else step
            row = x[o, j, first:first + width]
            target = out[o, j, first:first + width]
            for k in range(width):
                totals[k] += row[k]
                target[k] = totals[k]
