"""Indexing kernels: the deterministic scatter-add behind the backward of advanced indexing.

The gradient of `x[index]` adds each element of the gradient into the position of `x` it was read from;
repeated positions accumulate. Instead of a racy parallel scatter, the positions are sorted once (stably,
so equal positions keep the order of the gradient's elements) and each distinct destination then gathers
and sums its own run of the gradient: every thread owns whole destinations, and the summation order is
the same serially and in parallel, so results are bit-identical on any thread count. The destinations are
bounds-checked as they are sorted, and the scatter reads only the checked copy.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel


@cpu_kernel
def index_sort(destinations, rows, order, segment_starts, segment_rows, status):
    """Group equal destinations for `index_add_segments`, checking each against [0, rows).

    destinations: (n,) int64, the row of the target that each row of the gradient is added to; rows: the
    target's number of rows. Out: order (n,) int64, a stable argsort of `destinations`; segment_starts
    (n + 1,) int64, segment s covering order[segment_starts[s]:segment_starts[s + 1]]; segment_rows (n,)
    int64, the destination of segment s; status (3,) int64: [number of segments, -1, 0], or [0, position,
    value] for a destination out of range (then nothing is to be added). Each destination is read once, here:
    the scatter reads only `segment_rows`, so a caller's index memory changed meanwhile (writes through
    .numpy() bypass version counters) cannot send it out of bounds.
    """
    size = destinations.shape[0]
    sorted_order = np.argsort(destinations, kind="mergesort")
    count = 0
    previous = 0
    for position in range(size):
        source = sorted_order[position]
        destination = destinations[source]
        if destination < 0 or destination >= rows:
            status[0], status[1], status[2] = 0, source, destination
            return
        order[position] = source
        if position == 0 or destination != previous:
            segment_starts[count] = position
            segment_rows[count] = destination
            count += 1
        previous = destination
    segment_starts[count] = size
    status[0], status[1], status[2] = count, -1, 0


@parallel_cpu_kernel
def index_add_segments(grad_output, order, segment_starts, segment_rows, status, out):
    """out[d, :] = sum of grad_output[r, :] over every r with destinations[r] == d, summed in increasing r.

    grad_output: (n, inner) float (rows of the gradient); order, segment_starts, segment_rows, status: from
    `index_sort` (status[0] segments; none when a destination was out of range); out: (rows, inner) float,
    zero-filled by the caller (rows that receive nothing stay zero).
    d out[d, c] / d grad_output[r, c] is 1 where destinations[r] == d: the adjoint of the row gather
    out[r, :] = x[destinations[r], :].
    """
    for segment in prange(status[0]):
        start = segment_starts[segment]
        stop = segment_starts[segment + 1]
        source = order[start]
        row = segment_rows[segment]
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
