"""Sorting kernels: stable sort and top-k of every line of an (outer, size, inner) array along axis 1.

The order is PyTorch's stable one: ascending (or descending) values, NaN as the largest value, equal values
(and NaNs among themselves, and -0.0 with 0.0) in increasing position. With ties broken by position the order
is strict, so a full merge sort and a heap selection of the first k give the same positions.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel, scalar_function

# Runs sorted by insertion before merging.
_RUN = 16
# Lines handled by one work item hold about this many elements, so that its scratch is allocated once.
_GROUP_ELEMENTS = 4096
# A heap selection of the first k beats a full sort when k is this many times smaller than the line.
_SELECT_RATIO = 8


@scalar_function
def before(a, b, descending):
    """Whether value a sorts strictly before value b: ascending with NaN last, or descending with NaN first."""
    if descending:
        return a > b or (a != a and b == b)
    return a < b or (b != b and a == a)


@scalar_function
def _after(keys, p, q, descending):
    """Whether position p sorts after position q in the stable order (equal values by position)."""
    if before(keys[q], keys[p], descending):
        return True
    if before(keys[p], keys[q], descending):
        return False
    return p > q


@cpu_kernel
def stable_sort_pairs(keys, order, descending, scratch_keys, scratch_order):
    """Sort `keys` in place in stable order, permuting `order` (the positions, 0..n-1 on entry) with them:
    insertion-sorted runs, then bottom-up merges of (key, position) pairs (no indirect loads in the loops).

    keys: (n,); order: (n,) int64; the scratch arrays: (n,) of the same dtypes, overwritten.
    """
    count = keys.shape[0]
    for start in range(0, count, _RUN):
        stop = min(start + _RUN, count)
        for position in range(start + 1, stop):
            key = keys[position]
            item = order[position]
            slot = position
            while slot > start and before(key, keys[slot - 1], descending):
                keys[slot] = keys[slot - 1]
                order[slot] = order[slot - 1]
                slot -= 1
            keys[slot] = key
            order[slot] = item
    width = _RUN
    source_keys, source_order, target_keys, target_order = keys, order, scratch_keys, scratch_order
    in_scratch = False
    while width < count:
        for left in range(0, count, 2 * width):
            middle = min(left + width, count)
            right = min(left + 2 * width, count)
            i, j, k = left, middle, left
            # Take from the right run only when strictly before: equal values keep their order.
            while i < middle and j < right:
                if before(source_keys[j], source_keys[i], descending):
                    target_keys[k] = source_keys[j]
                    target_order[k] = source_order[j]
                    j += 1
                else:
                    target_keys[k] = source_keys[i]
                    target_order[k] = source_order[i]
                    i += 1
                k += 1
            for rest in range(i, middle):
                target_keys[k] = source_keys[rest]
                target_order[k] = source_order[rest]
                k += 1
            for rest in range(j, right):
                target_keys[k] = source_keys[rest]
                target_order[k] = source_order[rest]
                k += 1
        source_keys, target_keys = target_keys, source_keys
        source_order, target_order = target_order, source_order
        in_scratch = not in_scratch
        width *= 2
    if in_scratch:
        for position in range(count):
            keys[position] = scratch_keys[position]
            order[position] = scratch_order[position]


@scalar_function
def _sift_down(heap, count, keys, descending, start):
    """Restore the heap below `start`: every parent sorts after its children (the root sorts last)."""
    parent = start
    while True:
        child = 2 * parent + 1
        if child >= count:
            return
        if child + 1 < count and _after(keys, heap[child + 1], heap[child], descending):
            child += 1
        if not _after(keys, heap[child], heap[parent], descending):
            return
        heap[parent], heap[child] = heap[child], heap[parent]
        parent = child


@cpu_kernel
def stable_select(keys, descending, k, order):
    """order[:k] = the positions of the first k of `keys` in stable sorted order, sorted; O(n log k).

    keys: (n,); 1 <= k <= n; order: (>= k,) int64. A later position enters the kept k only if its value sorts
    strictly before the last kept one's (on a tie the earlier position stays), so one comparison with a
    cached value rejects most elements.
    """
    for position in range(k):
        order[position] = position
    for start in range(k // 2 - 1, -1, -1):
        _sift_down(order, k, keys, descending, start)
    last_kept = keys[order[0]]
    for position in range(k, keys.shape[0]):
        if before(keys[position], last_kept, descending):
            order[0] = position
            _sift_down(order, k, keys, descending, 0)
            last_kept = keys[order[0]]
    for end in range(k - 1, 0, -1):
        order[0], order[end] = order[end], order[0]
        _sift_down(order, end, keys, descending, 0)


@parallel_cpu_kernel
def sort_lines(x, descending, values, indices):
    """values[o, :, i] and indices[o, :, i] = the first k values of the line x[o, :, i] in stable sorted order
    (descending or ascending, NaN largest) and their positions; k = values.shape[1] (the whole line for sort).

    x: (outer, n, inner) float32/float64/int64/bool C-contiguous; values (outer, k, inner) x's dtype, indices
    (outer, k, inner) int64, k <= n. Lines are independent outputs: a work item sorts a group of lines.
    """
    count, inner = x.shape[1], x.shape[2]
    k = values.shape[1]
    lines = x.shape[0] * inner
    group = max(1, _GROUP_ELEMENTS // max(count, 1))
    groups = (lines + group - 1) // group
    select = k > 0 and k * _SELECT_RATIO <= count
    for group_index in prange(groups):
        keys = np.empty(count, x.dtype)
        order = np.empty(count, np.int64)
        scratch_keys = np.empty(count, x.dtype)
        scratch_order = np.empty(count, np.int64)
        for line in range(group_index * group, min((group_index + 1) * group, lines)):
            o = line // inner
            i = line - o * inner
            for j in range(count):
                keys[j] = x[o, j, i]
            if select:
                stable_select(keys, descending, k, order)
                for j in range(k):
                    values[o, j, i] = keys[order[j]]
                    indices[o, j, i] = order[j]
                continue
            for j in range(count):
                order[j] = j
            stable_sort_pairs(keys, order, descending, scratch_keys, scratch_order)
            for j in range(k):
                values[o, j, i] = keys[j]
                indices[o, j, i] = order[j]
