"""Gather and scatter kernels along one dimension (gather, scatter, scatter_add, index_select, their gradients).

A tensor is folded to a C-contiguous (outer, size, inner) array around the indexed dimension. An index tensor
may be smaller than the tensors it addresses in every other dimension, so its (outer, inner) positions are
mapped to theirs through position maps made by `fold_positions` (identity maps when the shapes agree).

Every index read from data is checked: `check_indices` finds the first one out of range before a kernel runs
(the frontend raises), and the kernels clamp every index into range anyway (branch-free, so the loops stay
fast), so no index can read or write outside an array, even one changed while a kernel runs. Kernels that
write by index own whole output lines per work item (never one element from two threads) and add in
increasing index order, so the serial and threaded variants give the same bits.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel, scalar_function
from nbprop.kernels.reduce import BLOCK, block_count

# Indices checked per work item of `check_indices`; elements per work item of the gathers.
_CHECK_BLOCK = 4096
_ITEM_ELEMENTS = 2048


@parallel_cpu_kernel
def fold_positions(index_sizes, target_sizes, out):
    """out[p] = the row-major position, in a tensor of `target_sizes`, of the point at row-major position p of a
    tensor of `index_sizes` (same rank, index_sizes[d] <= target_sizes[d]).

    index_sizes, target_sizes: (rank,) int64; out: (product of index_sizes,) int64.
    """
    rank = index_sizes.shape[0]
    for position in prange(out.shape[0]):
        offset = 0
        divisor = 1
        stride = 1
        for axis in range(rank - 1, -1, -1):
            offset += (position // divisor) % index_sizes[axis] * stride
            divisor *= index_sizes[axis]
            stride *= target_sizes[axis]
        out[position] = offset


@parallel_cpu_kernel
def check_indices(index, size, found):
    """found[0] = the first position p with index[p] outside [0, size), or -1 if none; found[1] = index[p].

    index: (n,) int64; found: (2,) int64. Blocks are checked in parallel (a branch-free pass first, which
    vectorizes) and the first bad block wins, so the answer is the same on any thread count.
    """
    count = index.shape[0]
    blocks = (count + _CHECK_BLOCK - 1) // _CHECK_BLOCK
    first_bad = np.full(blocks, count, np.int64)
    for block in prange(blocks):
        start = block * _CHECK_BLOCK
        stop = min(start + _CHECK_BLOCK, count)
        bad = False
        for position in range(start, stop):
            value = index[position]
            bad |= (value < 0) | (value >= size)
        if bad:
            for position in range(start, stop):
                value = index[position]
                if value < 0 or value >= size:
                    first_bad[block] = position
                    break
    found[0] = -1
    found[1] = 0
    for block in range(blocks):
        if first_bad[block] < count:
            found[0] = first_bad[block]
            found[1] = index[first_bad[block]]
            break


@scalar_function
def clamp_index(position, last):
    """`position` clamped into [0, last]: a no-op for checked indices, a guarantee against the rest."""
    return min(max(position, 0), last)


@parallel_cpu_kernel
def gather_lines(source, source_outer, source_inner, index, out_outer, out_inner, out):
    """out[out_outer[o], j, out_inner[i]] = source[source_outer[o], index[o, j, i], source_inner[i]].

    source: (outer_s, size >= 1, inner_s) of any dtype; index: (outer, n, inner >= 1) int64; the maps: int64 of
    lengths outer and inner, from `fold_positions`; out: (outer_o, n_o >= n, inner_o) of source's dtype. d out /
    d source is 1 at the gathered element; the adjoint is `scatter_lines` with accumulate. A work item is a run
    of rows j of one outer index (each row written once).
    """
    count, inner = index.shape[1], index.shape[2]
    last = source.shape[1] - 1
    if last < 0:
        return  # nothing to gather from (the frontend has raised for any index)
    rows = max(1, _ITEM_ELEMENTS // max(inner, 1))
    chunks = (count + rows - 1) // rows
    for item in prange(index.shape[0] * chunks):
        o = item // chunks
        start = (item - o * chunks) * rows
        stop = min(start + rows, count)
        if inner == 1:
            # 1-D views: indexing 3-D arrays per element, or a view per element, was 2-5x slower (measured).
            origin = source[source_outer[o], :, source_inner[0]]
            positions = index[o, start:stop, 0]
            target = out[out_outer[o], start:stop, out_inner[0]]
            for j in range(stop - start):
                target[j] = origin[clamp_index(positions[j], last)]
            continue
        block = source[source_outer[o]]
        for j in range(start, stop):
            positions = index[o, j]
            target = out[out_outer[o], j]
            for i in range(inner):
                target[out_inner[i]] = block[clamp_index(positions[i], last), source_inner[i]]


@parallel_cpu_kernel
def scatter_lines(source, source_outer, source_inner, index, out_outer, out_inner, accumulate, out):
    """out[out_outer[o], index[o, j, i], out_inner[i]] = source[source_outer[o], j, source_inner[i]], or += where
    `accumulate`, in increasing j: the last write to an element wins, and sums add in increasing j.

    source: (outer_s, n_s >= n, inner_s); index: (outer, n, inner >= 1) int64; the maps as in `gather_lines`;
    out: (outer_o, size >= 1, inner_o) of source's dtype, holding the values that are not written. A work item
    owns the output elements of one outer index and a block of columns (the maps are one-to-one), so no two
    threads write one element.
    """
    count, inner = index.shape[1], index.shape[2]
    last = out.shape[1] - 1
    if last < 0:
        return
    blocks = block_count(inner)
    for item in prange(index.shape[0] * blocks):
        o = item // blocks
        first = (item - o * blocks) * BLOCK
        stop = min(first + BLOCK, inner)
        if inner == 1:
            values = source[source_outer[o], :, source_inner[0]]
            positions = index[o, :, 0]
            target = out[out_outer[o], :, out_inner[0]]
            for j in range(count):
                if accumulate:
                    target[clamp_index(positions[j], last)] += values[j]
                else:
                    target[clamp_index(positions[j], last)] = values[j]
            continue
        block = out[out_outer[o]]
        for j in range(count):
            positions = index[o, j]
            values = source[source_outer[o], j]
            for i in range(first, stop):
                if accumulate:
                    block[clamp_index(positions[i], last), out_inner[i]] += values[source_inner[i]]
                else:
                    block[clamp_index(positions[i], last), out_inner[i]] = values[source_inner[i]]


@parallel_cpu_kernel
def index_select_rows(source, index, out):
    """out[o, j, :] = source[o, index[j], :].

    source: (outer, size >= 1, inner) of any dtype; index: (m,) int64; out: (outer, m, inner) of source's dtype.
    The adjoint is `index_add_rows`. A work item is a run of rows j of one outer index.
    """
    count = index.shape[0]
    inner = out.shape[2]
    last = source.shape[1] - 1
    if last < 0:
        return
    rows = max(1, _ITEM_ELEMENTS // max(inner, 1))
    chunks = (count + rows - 1) // rows
    for item in prange(out.shape[0] * chunks):
        o = item // chunks
        start = (item - o * chunks) * rows
        stop = min(start + rows, count)
        if inner == 1:
            origin = source[o, :, 0]
            target = out[o, :, 0]
            for j in range(start, stop):
                target[j] = origin[clamp_index(index[j], last)]
            continue
        for j in range(start, stop):
            origin = source[o, clamp_index(index[j], last)]
            target = out[o, j]
            for k in range(inner):
                target[k] = origin[k]


@parallel_cpu_kernel
def index_add_rows(grad_output, index, out):
    """out[o, index[j], :] += grad_output[o, j, :], in increasing j.

    grad_output: (outer, m, inner) float; index: (m,) int64; out: (outer, size >= 1, inner) float, zero-filled
    by the caller. A work item owns one outer index and a block of columns.
    """
    count = index.shape[0]
    inner = out.shape[2]
    last = out.shape[1] - 1
    if last < 0:
        return
    blocks = block_count(inner)
    for item in prange(out.shape[0] * blocks):
        o = item // blocks
        first = (item - o * blocks) * BLOCK
        width = min(BLOCK, inner - first)
        if inner == 1:
            origin = grad_output[o, :, 0]
            target = out[o, :, 0]
            for j in range(count):
                target[clamp_index(index[j], last)] += origin[j]
            continue
        for j in range(count):
            target = out[o, clamp_index(index[j], last), first:first + width]
            origin = grad_output[o, j, first:first + width]
            for k in range(width):
                target[k] += origin[k]
