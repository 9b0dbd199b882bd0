"""Extreme-value kernels: max/min over chunks, max/min with indices and the gradient at an index."""

import numpy as np
from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import parallel_cpu_kernel, scalar_function
from nbprop.kernels.reduce import block_count, chunk_item, chunk_item_count, item_position

# Arrays are folded to (outer, reduced, inner) and work is split into items as in kernels/reduce.py.


# Independent running extremes kept along a run, combined at its end: the loop over them vectorizes where
# one running extreme (a chain of dependent selects) cannot.
_LANES = 16


@scalar_function
def _extreme_of_run(block, largest):
    """The max (largest) or min of block[:, 0] (at least one row), NaN if any is NaN."""
    rows = block.shape[0]
    if rows < 2 * _LANES:
        best = block[0, 0]
        for j in range(1, rows):
            value = block[j, 0]
            best = value if scalar.improves(value, best, largest) else best
        return best
    lanes = np.empty(_LANES, block.dtype)
    for lane in range(_LANES):
        lanes[lane] = block[lane, 0]
    whole = rows - rows % _LANES
    for start in range(_LANES, whole, _LANES):
        for lane in range(_LANES):
            value = block[start + lane, 0]
            lanes[lane] = value if scalar.improves(value, lanes[lane], largest) else lanes[lane]
    best = lanes[0]
    for lane in range(1, _LANES):
        best = lanes[lane] if scalar.improves(lanes[lane], best, largest) else best
    for j in range(whole, rows):
        value = block[j, 0]
        best = value if scalar.improves(value, best, largest) else best
    return best


@scalar_function
def extreme_chunks(x, chunk, largest, out):
    """out[o, c, i] = max (largest) or min of x[o, c * chunk:(c + 1) * chunk, i], NaN if any is NaN.

    The body of amax_chunks and amin_chunks (inlined: its prange runs in parallel in their parallel variant).
    """
    for item in prange(chunk_item_count(x, out)):
        o, c, first, width, block = chunk_item(x, chunk, out, item)
        if x.shape[2] == 1:
            out[o, c, 0] = _extreme_of_run(block, largest)
            continue
        # A local running extreme updated by selects: a conditional store into `out` (which may alias x as
        # far as the compiler knows) kept the loop scalar, 2-5x slower.
        # Loops over 0-based views (so that they vectorize), not slice copies or slice assignment, which
        # cost much compile time.
        best = np.empty(width, x.dtype)
        source = block[0, first:first + width]
        for k in range(width):
            best[k] = source[k]
        for j in range(1, block.shape[0]):
            row = block[j, first:first + width]
            for k in range(width):
                value = row[k]
                best[k] = value if scalar.improves(value, best[k], largest) else best[k]
        target = out[o, c, first:first + width]
        for k in range(width):
            target[k] = best[k]


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
