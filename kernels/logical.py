"""Logical reductions (all, any) over chunks of axis 1 of an (outer, reduced, inner) array, as in kernels/reduce.py."""

from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel, scalar_function
from nbprop.kernels.reduce import chunk_item, chunk_item_count


@scalar_function
def truth_chunks(x, chunk, every, out):
    """out[o, c, i] = whether every (or, not `every`, any) element of x[o, c * chunk:(c + 1) * chunk, i] is
    nonzero (NaN is nonzero); an empty range gives `every`.

    The body of all_chunks and any_chunks (inlined: its prange runs in parallel in their parallel variant).
    """
    for item in prange(chunk_item_count(x, out)):
        o, c, first, width, block = chunk_item(x, chunk, out, item)
        if x.shape[2] == 1:
            result = every
            for j in range(block.shape[0]):
                if (block[j, 0] != 0) != every:
                    result = not every
                    break
            out[o, c, 0] = result
            continue
        target = out[o, c, first:first + width]
        for k in range(width):
            target[k] = every
        for j in range(block.shape[0]):
            row = block[j, first:first + width]
            for k in range(width):
                if every:
                    target[k] = target[k] & (row[k] != 0)
                else:
                    target[k] = target[k] | (row[k] != 0)


@parallel_cpu_kernel
def all_chunks(x, chunk, out):
    """out[o, c, i] = whether every element of x[o, c * chunk:(c + 1) * chunk, i] is nonzero; empty: True.

    x: (outer, reduced, inner) float32/float64/int64/bool C-contiguous; out: (outer, chunks or 1, inner) bool.
    """
    truth_chunks(x, chunk, True, out)


@parallel_cpu_kernel
def any_chunks(x, chunk, out):
    """out[o, c, i] = whether any element of x[o, c * chunk:(c + 1) * chunk, i] is nonzero; as `all_chunks`;
    empty: False."""
    truth_chunks(x, chunk, False, out)
