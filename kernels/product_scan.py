"""Product scan kernels: the running product along axis 1 of an (outer, size, inner) array (cumprod), its
gradient without division (right with zeros), and the first-order linear recurrence its recorded gradient uses.

Work is split as in kernels/scan.py: an item is one outer index and a block of up to BLOCK inner columns, and
runs its whole line in order, so every item is an independent output and serial and threaded variants agree.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel
from nbprop.kernels.reduce import BLOCK, block_count


@parallel_cpu_kernel
def cumulative_product(x, one, out):
    """out[o, j, i] = the product of x[o, :j + 1, i], each output rounded from a running product of one's type.

    x: (outer, n, inner) float32/float64/int64 C-contiguous; one: 1.0 for floating x (float64, as PyTorch
    accumulates float32 on the CPU) or 1 for int64 x; out: (outer, n, inner) x's dtype.
    """
    count, inner = x.shape[1], x.shape[2]
    blocks = block_count(inner)
    for item in prange(x.shape[0] * blocks):
        o = item // blocks
        first = (item - o * blocks) * BLOCK
        width = min(BLOCK, inner - first)
        totals = np.full(width, one)
        for j in range(count):
            for k in range(width):
                totals[k] *= x[o, j, first + k]
                out[o, j, first + k] = totals[k]


@parallel_cpu_kernel
def cumulative_product_backward(grad, x, out):
    """The gradient of cumprod: out[m] = prod(x[:m]) * sum over j >= m of grad[j] * prod(x[m + 1:j + 1]), along
    axis 1 of (outer, n, inner) float32/float64 arrays.

    The sum is the reverse recurrence b[m] = grad[m] + x[m + 1] * b[m + 1], the prefix a running product: no
    division, so one or several zeros in x give the exact gradient (PyTorch's cumprod_backward).
    """
    count, inner = x.shape[1], x.shape[2]
    blocks = block_count(inner)
    for item in prange(x.shape[0] * blocks):
        o = item // blocks
        first = (item - o * blocks) * BLOCK
        width = min(BLOCK, inner - first)
            # The sums in float64 (float32 gradients round once, at the end).
        sums = np.empty((count, width))
        running = np.zeros(width)
        for step in range(count):
            m = count - 1 - step
            for k in range(width):
                weight = x[o, m + 1, first + k] if m + 1 < count else 0.0
                running[k] = grad[o, m, first + k] + weight * running[k]
                sums[m, k] = running[k]
        prefixes = np.ones(width)
        for m in range(count):
            for k in range(width):
                out[o, m, first + k] = prefixes[k] * sums[m, k]
                prefixes[k] *= x[o, m, first + k]


@parallel_cpu_kernel
def linear_recurrence(source, weights, reverse, out):
    """out[j] = source[j] + weights[j] * out[j - 1] (out[-1] = 0), or where `reverse`
    out[j] = source[j] + weights[j + 1] * out[j + 1] (out[n] = 0), along axis 1 of (outer, n, inner) float32/float64
    arrays: weights[j] links positions j - 1 and j in both directions, and weights[0] is never read.

    Linear in source; the adjoint of one direction is the other with the same weights (see ops/scan.py).
    """
    count, inner = source.shape[1], source.shape[2]
    blocks = block_count(inner)
    for item in prange(source.shape[0] * blocks):
        o = item // blocks
        first = (item - o * blocks) * BLOCK
        width = min(BLOCK, inner - first)
        running = np.zeros(width)
        for step in range(count):
            j = count - 1 - step if reverse else step
            link = j + 1 if reverse else j
            for k in range(width):
                weight = weights[o, link, first + k] if 0 < link < count else 0.0
                running[k] = source[o, j, first + k] + weight * running[k]
                out[o, j, first + k] = running[k]
