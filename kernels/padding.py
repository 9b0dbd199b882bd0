"""Padding kernels: the gathers of reflect, replicate and circular padding and their deterministic adjoints."""

from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel

# A padded tensor is viewed as (batch, depth, height, width) with up to three padded dimensions; each padded
# dimension has an index map `output position -> input position`, so the forward is a gather and the
# backward sums, per input element, the gradient of every output element that read it.


@parallel_cpu_kernel
def pad_gather(source, depth_map, height_map, width_map, out):
    """out[b, i, j, k] = source[b, depth_map[i], height_map[j], width_map[k]].

    source: (batch, depth, height, width); the maps: int64 of lengths out.shape[1:]; out: (batch,
    out_depth, out_height, out_width), C-contiguous.
    """
    out_depth = out.shape[1]
    for row in prange(out.shape[0] * out_depth):
        batch = row // out_depth
        depth = depth_map[row % out_depth]
        out_row = out[batch, row % out_depth]
        for i in range(out.shape[2]):
            height = height_map[i]
            for j in range(out.shape[3]):
                out_row[i, j] = source[batch, depth, height, width_map[j]]


@cpu_kernel
def pad_inverse_map(index_map, offsets, positions):
    """Invert an index map: the output positions reading input position p are
    positions[offsets[p]:offsets[p + 1]], in increasing order.

    index_map: (out_size,) int64 in [0, size); offsets: (size + 1,) int64 out; positions: (out_size,) int64
    out. A counting sort, so the order is fixed and the cost linear.
    """
    for position in range(offsets.shape[0]):
        offsets[position] = 0
    for position in range(index_map.shape[0]):
        offsets[index_map[position] + 1] += 1
    for position in range(1, offsets.shape[0]):
        offsets[position] += offsets[position - 1]
    for position in range(index_map.shape[0]):
        source = index_map[position]
        # offsets[source] is advanced past each filled slot, then restored below.
        positions[offsets[source]] = position
        offsets[source] += 1
    for position in range(offsets.shape[0] - 1, 0, -1):
        offsets[position] = offsets[position - 1]
    offsets[0] = 0


@parallel_cpu_kernel
def pad_gather_backward(grad_output, depth_offsets, depth_positions, height_offsets, height_positions,
                        width_offsets, width_positions, out):
    """The adjoint of `pad_gather`: out[b, i, j, k] = sum of grad_output[b, p, q, r] over the output
    positions p, q, r that read depth i, height j and width k (from `pad_inverse_map` of each map).

    d out[b, p, q, r] / d source[b, i, j, k] is 1 where the maps send (p, q, r) to (i, j, k), so each input
    element gathers its own sum: no two threads write one element, and the summation order is fixed.
    grad_output: (batch, out_depth, out_height, out_width); out: (batch, depth, height, width), C-contiguous.
    """
    depth = out.shape[1]
    for row in prange(out.shape[0] * depth):
        batch = row // depth
        i = row % depth
        for j in range(out.shape[2]):
            for k in range(out.shape[3]):
                total = 0.0
                for p_index in range(depth_offsets[i], depth_offsets[i + 1]):
                    p = depth_positions[p_index]
                    for q_index in range(height_offsets[j], height_offsets[j + 1]):
                        q = height_positions[q_index]
                        for r_index in range(width_offsets[k], width_offsets[k + 1]):
                            total += grad_output[batch, p, q, width_positions[r_index]]
                out[batch, i, j, k] = total
