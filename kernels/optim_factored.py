"""Fused update of torch.optim.Adafactor: second moments factored over the last two axes, in place.

The layout is kernels/optim.py's: flat 1-D arrays cut into chunks `chunk_start[c]:chunk_end[c]` inside the
parameter `chunk_segment[c]`; `active[s]` says whether parameter s has a gradient this step. A parameter of
two or more dimensions is seen as (B, M, N), B the product of its leading dimensions, with row variances
(B, M) and column variances (B, N): each of its B matrices is one independent unit of the first pass.
Per-parameter norms sum each chunk serially and then the chunks of a parameter in order: bit-identical on
reruns.
"""

import math

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, parallel_cpu_kernel
from nbprop.kernels.optim_common import _chunk_partials, _lerp, _signed_gradient
from nbprop.kernels.optim_layerwise import _segment_sums


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adafactor_torch_step(param, grad, update_buffer, variance, row_var, col_var, offsets, variance_offsets,
                         row_offsets, column_offsets, factored, rows, columns, unit_start, unit_segment, unit_batch,
                         chunk_start, chunk_end, chunk_segment, active, weights, relative_steps, decay, eps1,
                         eps1_squared, eps2, clipping_threshold, maximize):
    """torch.optim.Adafactor (single-tensor form) for every active parameter s, with w = weights[s] = t^beta2_decay
    and rho = relative_steps[s] = min(lr, t^-1/2):

    - factored (`factored[s]`, a (B, M, N) view): row_var = lerp(row_var, mean of g^2 over N, w) and
      col_var = lerp(col_var, mean of g^2 over M, w); v = row_var col_var / max(mean of row_var over M, eps1);
      otherwise variance = lerp(variance, g^2, w) and v = variance.
    - u = g / sqrt(max(v, eps1^2)); alpha = max(eps2, rms(p)) rho with p before weight decay;
      p = p decay + u (-alpha / max(1, rms(u) / clipping_threshold)), decay = 1 - lr weight_decay.

    Parameter s keeps its variance at variance[variance_offsets[s]:], its row variances at row_var[row_offsets[s]:]
    and its column variances at col_var[column_offsets[s]:] (the arrays it does not use may be empty); unit u is
    matrix unit_batch[u] of parameter unit_segment[u], and parameter s's units start at unit_start[s].
    eps1 and eps1_squared come in the parameters' dtype, as torch's clamps take them (in float32, an eps1
    of 1e-30 squares to 0). `update_buffer` (the layout of param) is scratch. Shapes: per element (param,
    grad, update_buffer), per parameter (offsets and variance_offsets with one more entry; the others), per
    unit, per chunk.
    """
    units = unit_segment.size
    clamped_row_means = np.zeros(units, np.float64)
    for unit in prange(units):
        segment = unit_segment[unit]
        row_count = rows[segment]
        column_count = columns[segment]
        # An empty matrix has no means to take: its state stays as it is (torch fails on it, see Adafactor).
        if not active[segment] or row_count == 0 or column_count == 0:
            continue
        weight = weights[segment]
        batch = unit_batch[unit]
        base = offsets[segment] + batch * row_count * column_count
        row_base = row_offsets[segment] + batch * row_count
        column_base = column_offsets[segment] + batch * column_count
        # One row-major pass gathers both means (the sign of g does not matter for g^2).
        column_sums = np.zeros(column_count, np.float64)
        row_total = 0.0
        for row in range(row_count):
            row_sum = 0.0
            start = base + row * column_count
            for column in range(column_count):
                square = grad[start + column] * grad[start + column]
                row_sum += square
                column_sums[column] += square
            row_var[row_base + row] = _lerp(row_var[row_base + row], row_sum / column_count, weight)
            # The stored value, rounded to the state's dtype, is what torch's row_var.mean() sees.
            row_total += row_var[row_base + row]
        for column in range(column_count):
            column_mean = column_sums[column] / row_count
            col_var[column_base + column] = _lerp(col_var[column_base + column], column_mean, weight)
        row_mean = row_total / row_count
        # torch's clamp_(min=eps1): a NaN mean (from NaN gradients) stays NaN.
        clamped_row_means[unit] = eps1 if row_mean < eps1 else row_mean

    chunks = chunk_start.size
    param_squares, update_squares = _chunk_partials(chunks)
    for chunk in prange(chunks):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        is_factored = factored[segment]
        weight = weights[segment]
        offset = offsets[segment]
        column_count = columns[segment]
        row_count = rows[segment]
        variance_shift = variance_offsets[segment] - offset
        param_square = 0.0
        update_square = 0.0
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _signed_gradient(grad, index, maximize)
            if is_factored:
                position = index - offset
                # Row (b, i) of the (B, M, N) view, flattened as b M + i, and its matrix b.
                row = position // column_count
                batch = row // row_count
                column = batch * column_count + position - row * column_count
                estimate = (row_var[row_offsets[segment] + row] * col_var[column_offsets[segment] + column]
                            / clamped_row_means[unit_start[segment] + batch])
            else:
                at = index + variance_shift
                variance[at] = _lerp(variance[at], gradient * gradient, weight)
                estimate = variance[at]
            # Rounded to the dtype as torch's var_estimate tensor is, so that it underflows to 0 where torch's does.
            update_buffer[index] = estimate
            estimate = update_buffer[index]
            # torch's clamp_(min=eps1^2).rsqrt_(): NaN stays NaN, and v = 0 over a zero floor gives 0 * inf = NaN.
            if estimate < eps1_squared:
                estimate = eps1_squared
            update_buffer[index] = gradient * (1.0 / math.sqrt(estimate))
            update = update_buffer[index]
            update_square += update * update
            param_square += param[index] * param[index]
        param_squares[chunk] = param_square
        update_squares[chunk] = update_square

    segments = offsets.size - 1
    param_sums = _segment_sums(param_squares, chunk_segment, active, segments)
    update_sums = _segment_sums(update_squares, chunk_segment, active, segments)
    scales = np.zeros(segments, np.float64)
    for segment in range(segments):
        count = offsets[segment + 1] - offsets[segment]
        if not active[segment] or count == 0:
            continue
        root_count = math.sqrt(count)
        param_rms = math.sqrt(param_sums[segment]) / root_count
        # Python's max(eps2, rms) and max(1.0, ratio) as torch calls them: the first argument unless the second
        # is larger, so a NaN rms gives eps2 and a NaN ratio (from NaN gradients) gives 1.
        alpha = (param_rms if param_rms > eps2 else eps2) * relative_steps[segment]
        ratio = math.sqrt(update_sums[segment]) / (root_count * clipping_threshold)
        scales[segment] = -alpha / (ratio if ratio > 1.0 else 1.0)

    for chunk in prange(chunks):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        scale = scales[segment]
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            value = param[index]
            if decay != 1.0:
                value = value * decay
            param[index] = value + scale * update_buffer[index]
