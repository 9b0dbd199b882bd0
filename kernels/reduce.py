"""Reduction kernels: sum, prod, variance over axis 1 of an (outer, reduced, inner) array.

The frontend folds a tensor into a C-contiguous (outer, reduced, inner) array whose axis 1 holds the reduced
dimensions. Work is split into items of one outer index and a block of up to BLOCK inner columns, so that
every pass over the reduced axis reads whole rows of a block contiguously (column sums of an (N, M) matrix
read memory in order), and items are independent outputs for prange.

Innermost loops run over 0-based ranges on views (`x[o, start:stop]`, `out[o, c, first:first + width]`):
Numba then knows the indices are non-negative, skips wraparound code and vectorizes (4x faster, measured).
"""

import numpy as np
from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel, scalar_function

# Inner columns handled by one work item: long enough for contiguous vector loads, short enough to share.
BLOCK = 128


@scalar_function
def item_position(item, chunks, blocks, chunk, reduced, inner):
    """The outer index, chunk index, reduced range [start, stop) and column range of work item `item`."""
    outer_index = item // (chunks * blocks)
    rest = item - outer_index * (chunks * blocks)
    chunk_index = rest // blocks
    first_column = (rest - chunk_index * blocks) * BLOCK
    start = chunk_index * chunk
    stop = min(start + chunk, reduced)
    width = min(BLOCK, inner - first_column)
    return outer_index, chunk_index, start, stop, first_column, width


@scalar_function
def block_count(inner):
    """The number of blocks of up to BLOCK columns that `inner` columns are cut into."""
    return (inner + BLOCK - 1) // BLOCK


@scalar_function
def chunk_item_count(x, out):
    """The number of work items of a chunk kernel: outer indices x chunks (out.shape[1]) x column blocks."""
    return x.shape[0] * out.shape[1] * block_count(x.shape[2])


@scalar_function
def chunk_item(x, chunk, out, item):
    """Work item `item` of a chunk kernel: its outer index, chunk index, first column and width, and its rows
    x[o, c * chunk:(c + 1) * chunk]."""
    blocks = block_count(x.shape[2])
    o, c, start, stop, first, width = item_position(item, out.shape[1], blocks, chunk, x.shape[1], x.shape[2])
    return o, c, first, width, x[o, start:stop]


@scalar_function
def accumulate_chunks(x, chunk, product, out):
    """out[o, c, i] = product (where `product`) or sum of x[o, c * chunk:(c + 1) * chunk, i]; empty: 1 or 0.

    The body of sum_chunks and prod_chunks (inlined: its prange runs in parallel in their parallel variant).
    """
    for item in prange(chunk_item_count(x, out)):
        o, c, first, width, block = chunk_item(x, chunk, out, item)
        if x.shape[2] == 1:
            total = out.dtype.type(1 if product else 0)
            for j in range(block.shape[0]):
                total = scalar.accumulate(total, block[j, 0], product)
            out[o, c, 0] = total
            continue
        target = out[o, c, first:first + width]
        for k in range(width):
            target[k] = 1 if product else 0
        for j in range(block.shape[0]):
            row = block[j, first:first + width]
            for k in range(width):
                target[k] = scalar.accumulate(target[k], row[k], product)


@parallel_cpu_kernel
def sum_chunks(x, chunk, out):
    """out[o, c, i] = sum of x[o, c * chunk:(c + 1) * chunk, i].

    x: (outer, reduced, inner) float32/float64/int64, C-contiguous. out: (outer, ceil(reduced / chunk) or 1,
    inner) float64 (for float x: float32 sums accumulate in float64) or int64. An empty range sums to 0.
    """
    accumulate_chunks(x, chunk, False, out)


@cpu_kernel
def sum_whole(x, divisor, out):
    """out[0] = the sum of x, (1, size, 1) float32/float64 C-contiguous, accumulated in float64 as sum_chunks
    does over one chunk, divided by divisor, in out's dtype: a whole small tensor's sum or mean in one call."""
    total = np.zeros((1, 1, 1))
    accumulate_chunks(x, x.shape[1], False, total)
    out[0] = total[0, 0, 0] / divisor


@parallel_cpu_kernel
def prod_chunks(x, chunk, out):
    """out[o, c, i] = product of x[o, c * chunk:(c + 1) * chunk, i]; shapes and dtypes as `sum_chunks`; empty: 1."""
    accumulate_chunks(x, chunk, True, out)


@parallel_cpu_kernel
def variance(x, correction, mean, out):
    """out[o, i] = sum over j of (x[o, j, i] - mean[o, i]) ** 2 / max(0, reduced - correction).

    x: (outer, reduced, inner) float32/float64 C-contiguous; mean and out (outer, inner) of x's dtype. Two
    passes in float64, the mean refined by the mean deviation, so constant data gives exactly 0.
    """
    reduced, inner = x.shape[1], x.shape[2]
    blocks = block_count(inner)
    degrees = max(0.0, reduced - correction)
    for item in prange(x.shape[0] * blocks):
        o, _, _, _, first, width = item_position(item, 1, blocks, reduced, reduced, inner)
        block = x[o]
        if inner == 1:
            total = 0.0
            for j in range(reduced):
                total += block[j, 0]
            average = total / reduced
            total = 0.0
            for j in range(reduced):
                total += block[j, 0] - average
            # The rounding error of the first mean, removed: sum(x - mean) / n is exactly 0 for exact means.
            average += total / reduced
            total = 0.0
            for j in range(reduced):
                difference = block[j, 0] - average
                total += difference * difference
            mean[o, 0] = average
            out[o, 0] = total / degrees
            continue
        center = np.zeros(width)
        deviation = np.zeros(width)
        for j in range(reduced):
            row = block[j, first:first + width]
            for k in range(width):
                center[k] += row[k]
        for k in range(width):
            center[k] /= reduced
        for j in range(reduced):
            row = block[j, first:first + width]
            for k in range(width):
                deviation[k] += row[k] - center[k]
        for k in range(width):
            center[k] += deviation[k] / reduced
            deviation[k] = 0.0
        for j in range(reduced):
            row = block[j, first:first + width]
            for k in range(width):
                difference = row[k] - center[k]
                deviation[k] += difference * difference
        mean_row = mean[o, first:first + width]
        out_row = out[o, first:first + width]
        for k in range(width):
            mean_row[k] = center[k]
            out_row[k] = deviation[k] / degrees


@parallel_cpu_kernel
def prod_backward(grad_output, x, result, grad_input):
    """d prod(x) / dx_j = product of the other elements: result / x_j without zeros; with one zero, the
    product of the others at the zero and 0 elsewhere; with two or more zeros 0 everywhere.

    grad_output, result: (outer, inner); x, grad_input: (outer, reduced, inner) C-contiguous float.
    """
    reduced, inner = x.shape[1], x.shape[2]
    for slot in prange(x.shape[0] * inner):
        o = slot // inner
        i = slot - o * inner
        block = x[o]
        target = grad_input[o]
        zeros = 0
        others = 1.0
        for j in range(reduced):
            value = block[j, i]
            if value == 0:
                zeros += 1
            else:
                others *= value
        gradient = grad_output[o, i]
        total = result[o, i]
        for j in range(reduced):
            value = block[j, i]
            if zeros == 0:
                target[j, i] = gradient * (total / value)
            elif zeros == 1 and value == 0:
                target[j, i] = gradient * others
            else:
                target[j, i] = 0.0


@parallel_cpu_kernel
def divide_into(accumulator, divisor, out):
    """out = accumulator / divisor, cast to out's dtype (finishes float32 sums and means); 1-D arrays."""
    for index in prange(out.shape[0]):
        out[index] = accumulator[index] / divisor
