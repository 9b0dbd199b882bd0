"""Multi-array kernels for gradient clipping: one norm over many arrays, in-place scaling and clamping.

The arrays come as a Numba typed List of 1-D C-contiguous arrays of one dtype (`array_list` builds it), so
that one call covers every parameter. Work is cut into blocks of `block_size` elements (never crossing an
array), indexed in array order; `block_offsets` (int64, len(arrays) + 1) receives the first block of each
array. Each block is reduced serially in float64 and the blocks are combined serially in order, so a result
does not depend on the thread count or on the serial/parallel variant.
"""

import math

import numpy as np
from numba import prange, typed

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel

# The reduction of `vector_norm_partials`, chosen from the norm's order p.
COUNT_NONZERO = 0  # p = 0
SUM_ABSOLUTE = 1  # p = 1
SUM_SQUARES = 2  # p = 2
SUM_POWERS = 3  # any other finite p
MAX_ABSOLUTE = 4  # p = inf
MIN_ABSOLUTE = 5  # p = -inf


def array_list(arrays):
    """A Numba typed List of the given 1-D C-contiguous arrays (all of one dtype, at least one array)."""
    return typed.List(arrays)


@cpu_kernel
def fill_block_offsets(arrays, block_size, block_offsets):
    """block_offsets[i] = index of array i's first block; block_offsets[-1] = the number of blocks."""
    block_offsets[0] = 0
    for index in range(len(arrays)):
        block_offsets[index + 1] = block_offsets[index] + (arrays[index].shape[0] + block_size - 1) // block_size


@parallel_cpu_kernel
def vector_norm_partials(arrays, power, inverse_scale, block_size, block_offsets, partials, out):
    """Reduce all elements of `arrays` (float32 or float64) for a vector norm of order `power`, in float64.

    The order picks the reduction of the elements x (scaled: y = |x| * inverse_scale, a power of two so that
    the scaling is exact): p = 0 out[0] = the number of arrays with an element != 0 (PyTorch's order-0
    norm of per-array norms); p = 1 sum y; p = 2 sum y^2; other finite p sum y^p; p = inf max |x|;
    p = -inf min |x| (+inf over no elements). NaN propagates through every reduction. `partials` (float64,
    at least block_offsets[-1] long) is scratch, one slot per block; `block_offsets` is filled as
    `fill_block_offsets` does.
    """
    if power == 0.0:
        mode = COUNT_NONZERO
    elif power == 1.0:
        mode = SUM_ABSOLUTE
    elif power == 2.0:
        mode = SUM_SQUARES
    elif power == math.inf:
        mode = MAX_ABSOLUTE
    elif power == -math.inf:
        mode = MIN_ABSOLUTE
    else:
        mode = SUM_POWERS
    block_offsets[0] = 0
    for index in range(len(arrays)):
        block_offsets[index + 1] = block_offsets[index] + (arrays[index].shape[0] + block_size - 1) // block_size
    for block in prange(block_offsets[len(arrays)]):
        index = np.searchsorted(block_offsets, block, side="right") - 1
        array = arrays[index]
        start = (block - block_offsets[index]) * block_size
        stop = min(start + block_size, array.shape[0])
        # One loop per reduction, so that the sums vectorize.
        accumulator = 0.0
        if mode == SUM_SQUARES:
            for position in range(start, stop):
                scaled = np.float64(array[position]) * inverse_scale
                accumulator += scaled * scaled
        elif mode == SUM_ABSOLUTE:
            for position in range(start, stop):
                accumulator += abs(np.float64(array[position])) * inverse_scale
        elif mode == SUM_POWERS:
            for position in range(start, stop):
                accumulator += (abs(np.float64(array[position])) * inverse_scale) ** power
        elif mode == COUNT_NONZERO:
            for position in range(start, stop):
                if array[position] != 0:
                    accumulator += 1.0
        elif mode == MAX_ABSOLUTE:
            for position in range(start, stop):
                magnitude = abs(np.float64(array[position]))
                if magnitude > accumulator or magnitude != magnitude:
                    accumulator = magnitude
                    if magnitude != magnitude:
                        break
        else:
            accumulator = math.inf
            for position in range(start, stop):
                magnitude = abs(np.float64(array[position]))
                if magnitude < accumulator or magnitude != magnitude:
                    accumulator = magnitude
                    if magnitude != magnitude:
                        break
        partials[block] = accumulator
    # Serial combination in block order: deterministic.
    total = math.inf if mode == MIN_ABSOLUTE else 0.0
    for index in range(len(arrays)):
        array_total = 0.0
        for block in range(block_offsets[index], block_offsets[index + 1]):
            value = partials[block]
            if mode == MAX_ABSOLUTE:
                if value > total or value != value:
                    total = value
            elif mode == MIN_ABSOLUTE:
                if value < total or value != value:
                    total = value
            else:
                array_total += value
        if mode == COUNT_NONZERO:
            if array_total > 0.0:
                total += 1.0
        elif mode != MAX_ABSOLUTE and mode != MIN_ABSOLUTE:
            total += array_total
    out[0] = total


@parallel_cpu_kernel
def scale_arrays_(arrays, coefficient, block_size, block_offsets):
    """x *= coefficient in place for every element of every array (the product rounded once to the arrays'
    dtype). `block_offsets` as filled by `fill_block_offsets`."""
    for block in prange(block_offsets[len(arrays)]):
        index = np.searchsorted(block_offsets, block, side="right") - 1
        array = arrays[index]
        start = (block - block_offsets[index]) * block_size
        for position in range(start, min(start + block_size, array.shape[0])):
            array[position] = array[position] * coefficient


@parallel_cpu_kernel
def clamp_arrays_(arrays, low, high, block_size, block_offsets):
    """x = min(max(x, low), high) in place for every element of every array (NaN stays NaN; with low > high
    every element becomes high, as clamp_min then clamp_max do). `block_offsets` as `fill_block_offsets`."""
    for block in prange(block_offsets[len(arrays)]):
        index = np.searchsorted(block_offsets, block, side="right") - 1
        array = arrays[index]
        start = (block - block_offsets[index]) * block_size
        for position in range(start, min(start + block_size, array.shape[0])):
            value = array[position]
            if value < low:
                value = low
            if value > high:
                value = high
            array[position] = value
