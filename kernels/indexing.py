"""Indexing kernels: the deterministic scatter-add behind the backward of advanced indexing.

The gradient of `x[index]` adds each element of the gradient into the position of `x` it was read from;
repeated positions accumulate. Instead of a racy parallel scatter, the positions are sorted once (stably,
so equal positions keep the order of the gradient's elements) and each distinct destination then gathers
and sums its own run of the gradient: every thread owns whole destinations, and the summation order is
the same serially and in parallel, so results are bit-identical on any thread count.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel


@cpu_kernel
def index_sort(destinations, order, segment_starts, segment_count):
    """Group equal destinations for `index_add_segments`.

    destinations: (n,) int64, the flat position in the target of each gradient element.
    order: (n,) int64 out, a stable argsort of `destinations`.
    segment_starts: (n + 1,) int64 out; segment s covers order[segment_starts[s]:segment_starts[s + 1]].
    segment_count: (1,) int64 out, the number of distinct destinations.
    """
    size = destinations.shape[0]
    sorted_order = np.argsort(destinations, kind="mergesort")
    count = 0
    for position in range(size):
        order[position] = sorted_order[position]
        if position == 0 or destinations[sorted_order[position]] != destinations[sorted_order[position - 1]]:
            segment_starts[count] = position
            count += 1
    segment_starts[count] = size
    segment_count[0] = count


@parallel_cpu_kernel
def index_add_segments(grad_output, order, destinations, segment_starts, segment_count, out):
    """out[d, :] = sum of grad_output[r, :] over every r with destinations[r] == d, summed in increasing r.

    grad_output: (n, inner) float (rows of the gradient); order, segment_starts, segment_count: from
    `index_sort`; out: (size, inner) float, zero-filled by the caller (rows that receive nothing stay zero).
    d out[d, c] / d grad_output[r, c] is 1 where destinations[r] == d: the adjoint of the row gather
    out[r, :] = x[destinations[r], :].
    """
    for segment in prange(segment_count[0]):
        start = segment_starts[segment]
        stop = segment_starts[segment + 1]
        source = order[start]
        row = destinations[source]
        for column in range(out.shape[1]):
            out[row, column] = grad_output[source, column]
        position = start + 1
        # The second, data-dependent exit (never taken) keeps the compiler from reordering the sum under
        # fast-math reassociation, so the serial and parallel variants add in the same order.
        while position < stop and order[position] >= 0:
            source = order[position]
            for column in range(out.shape[1]):
                out[row, column] += grad_output[source, column]
            position += 1
