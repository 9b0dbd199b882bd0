"""Extreme-value kernels: max/min over chunks, max/min with indices and the gradient at an index."""

import numpy as np
from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import parallel_cpu_kernel, scalar_function
from nbprop.kernels.reduce import block_count, item_position

# Arrays are folded to (outer, reduced, inner) as in kernels/reduce.py; extreme_with_indices splits its work into
# items as reduce.py does.


# Independent running extremes kept along a run of contiguous values (inner == 1), in a local array of 128
# bytes (two 512-bit vectors), each updated by four consecutive groups per pass: one store per four selects
# (with one select per store LLVM emits a masked store, which the next pass's load waits for) and a loop that
# the vectorizer keeps (16 lanes of one group were fully unrolled into scalar selects: 1.27 ms against 0.50 ms
# for the 2048 rows of 2048 float32, NumPy 0.42 ms). The lanes are then folded pairwise and the tail follows.
_LANE_BYTES = 128
_GROUPS = 4

# A reduction over rows (inner > 1) streams whole rows: a block of 128 or 1024 columns of a 2048 x 2048 float32
# matrix (512 bytes or 4 KB of every 8 KB row) took 2.4 or 1.2 ms against 0.34 ms for whole rows, as the
# hardware prefetcher restarts at every row. With fewer than _SPLIT_ITEMS (outer, chunk) items, the rows are cut
# into parts of at least _MIN_PART_ROWS for the threads, and the parts' extremes folded in order.
_SPLIT_ITEMS = 8
_MIN_PART_ROWS = 64


@scalar_function
def _pick(value, best, largest):
    """`value` if it replaces `best` as the running max (largest) or min, else `best` (see scalar.improves)."""
    return value if scalar.improves(value, best, largest) else best


@scalar_function
def _extreme_of_run(run, largest):
    """The max (largest) or min of the 1-D C-contiguous run (at least one value), NaN if any is NaN.

    Exact: the extreme of a set, whatever the order of comparisons. The order decides only which of equal
    values (-0.0 and +0.0) or which NaN is returned.
    """
    lanes_count = _LANE_BYTES // run.itemsize
    stride = lanes_count * _GROUPS
    rows = run.shape[0]
    if rows < 2 * stride:
        best = run[0]
        for j in range(1, rows):
            best = _pick(run[j], best, largest)
        return best
    lanes = np.empty(lanes_count, run.dtype)
    for lane in range(lanes_count):
        best = _pick(run[lanes_count + lane], run[lane], largest)
        best = _pick(run[2 * lanes_count + lane], best, largest)
        lanes[lane] = _pick(run[3 * lanes_count + lane], best, largest)
    whole = rows - rows % stride
    for start in range(stride, whole, stride):
        groups = run[start:start + stride]
        for lane in range(lanes_count):
            best = _pick(groups[lane], lanes[lane], largest)
            best = _pick(groups[lanes_count + lane], best, largest)
            best = _pick(groups[2 * lanes_count + lane], best, largest)
            lanes[lane] = _pick(groups[3 * lanes_count + lane], best, largest)
    half = lanes_count // 2
    while half >= 1:
        for lane in range(half):
            lanes[lane] = _pick(lanes[half + lane], lanes[lane], largest)
        half //= 2
    best = lanes[0]
    for j in range(whole, rows):
        best = _pick(run[j], best, largest)
    return best


@scalar_function
def _extreme_of_rows(block, largest, target):
    """target[k] = the max (largest) or min over the rows of block[:, k] (at least one row), NaN if any is NaN;
    row after row, so that memory is read in order. A local running extreme updated by selects: a conditional
    store into `target` (which may alias `block` as far as the compiler knows) kept the loop scalar, 2-5x slower."""
    width = block.shape[1]
    best = np.empty(width, block.dtype)
    source = block[0]
    for k in range(width):
        best[k] = source[k]
    for j in range(1, block.shape[0]):
        row = block[j]
        for k in range(width):
            best[k] = _pick(row[k], best[k], largest)
    for k in range(width):
        target[k] = best[k]


@scalar_function
def extreme_chunks(x, chunk, largest, out):
    """out[o, c, i] = max (largest) or min of x[o, c * chunk:(c + 1) * chunk, i], NaN if any is NaN.

    The body of amax_chunks and amin_chunks (inlined: its prange runs in parallel in their parallel variant).
    Every part of the work compares the values of one output in their order, so the result does not depend on
    how the work is cut, and the serial and parallel variants agree bit for bit.
    """
    outer, reduced, inner = x.shape
    chunks = out.shape[1]
    items = outer * chunks
    if inner == 1:
        runs = x.reshape((outer, reduced))
        for item in prange(items):
            o = item // chunks
            c = item - o * chunks
            out[o, c, 0] = _extreme_of_run(runs[o, c * chunk:min(c * chunk + chunk, reduced)], largest)
        return
    parts = 1
    if items < _SPLIT_ITEMS and chunks == 1:
        parts = max(1, min(_SPLIT_ITEMS // items, reduced // _MIN_PART_ROWS))
    if parts == 1:
        for item in prange(items):
            o = item // chunks
            c = item - o * chunks
            _extreme_of_rows(x[o, c * chunk:min(c * chunk + chunk, reduced)], largest, out[o, c])
        return
    step = -(-reduced // parts)
    parts = -(-reduced // step)  # every part non-empty
    partial = np.empty((outer, parts, inner), x.dtype)
    for item in prange(outer * parts):
        o = item // parts
        p = item - o * parts
        _extreme_of_rows(x[o, p * step:min(p * step + step, reduced)], largest, partial[o, p])
    for o in prange(outer):
        _extreme_of_rows(partial[o], largest, out[o, 0])


@parallel_cpu_kernel
def amax_chunks(x, chunk, out):
    """out[o, c, i] = max of x[o, c * chunk:(c + 1) * chunk, i], NaN if any is NaN; out has x's dtype.

    Every range must be non-empty (reduced >= 1).
    """
    extreme_chunks(x, chunk, True, out)


@parallel_cpu_kernel
def amin_chunks(x, chunk, out):
    """out[o, c, i] = min of x[o, c * chunk:(c + 1) * chunk, i], NaN if any is NaN; as `amax_chunks`."""
    extreme_chunks(x, chunk, False, out)


@parallel_cpu_kernel
def extreme_with_indices(x, largest, values, indices):
    """values[o, i] = max (largest) or min over j of x[o, j, i] and indices[o, i] its first j; a NaN wins
    (the first NaN).

    x: (outer, reduced >= 1, inner) float32/float64/int64 C-contiguous; largest: bool; values (outer, inner)
    x's dtype; indices (outer, inner) int64.
    """
    reduced, inner = x.shape[1], x.shape[2]
    blocks = block_count(inner)
    for item in prange(x.shape[0] * blocks):
        o, _, _, _, first, width = item_position(item, 1, blocks, reduced, reduced, inner)
        block = x[o]
        if inner == 1:
            best = block[0, 0]
            chosen = 0
            for j in range(1, reduced):
                value = block[j, 0]
                # Once best is NaN it stays, so the index is the first NaN's. `best == best` rather than
                # not math.isnan(best): the parallel variant ran 10% slower with isnan (measured).
                if scalar.improves(value, best, largest) and best == best:
                    best = value
                    chosen = j
            values[o, 0] = best
            indices[o, 0] = chosen
            continue
        best_values = values[o, first:first + width]
        chosen = indices[o, first:first + width]
        best_values[:] = block[0, first:first + width]
        chosen[:] = 0
        for j in range(1, reduced):
            row = block[j, first:first + width]
            for k in range(width):
                if scalar.improves(row[k], best_values[k], largest) and best_values[k] == best_values[k]:
                    best_values[k] = row[k]
                    chosen[k] = j


@parallel_cpu_kernel
def index_backward(grad_output, indices, grad_input):
    """grad_input[o, j, i] = grad_output[o, i] where j == indices[o, i], else 0 (max/min along a dim).

    grad_output (outer, inner) and indices (outer, inner) int64; grad_input (outer, reduced, inner)
    C-contiguous. Each output row is gathered independently.
    """
    reduced = grad_input.shape[1]
    for row in prange(grad_input.shape[0] * reduced):
        o = row // reduced
        j = row - o * reduced
        target = grad_input[o, j]
        gradient = grad_output[o]
        chosen = indices[o]
        for i in range(target.shape[0]):
            target[i] = gradient[i] if chosen[i] == j else 0.0
