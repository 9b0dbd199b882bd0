"""Fused optimizer updates with per-parameter scalars or norms (ASGD, LAMB, Adafactor), in place.

The layout is kernels/optim.py's: flat 1-D arrays cut into chunks `chunk_start[c]:chunk_end[c]` inside the
parameter `chunk_segment[c]` (the chunks of one parameter are consecutive); `active[s]` says whether
parameter s has a gradient this step and `steps[s]` is its step count, already incremented. Per-parameter
norms sum each chunk serially and then the chunks of a parameter in order: bit-identical on reruns.
"""

import math

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, parallel_cpu_kernel
from nbprop.kernels.optim_common import _chunk_partials, _coupled_gradient, _signed_gradient


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def asgd_step(param, grad, ax, eta, mu, chunk_start, chunk_end, chunk_segment, active, lambd, weight_decay,
              maximize):
    """PyTorch ASGD with each parameter's eta[s] and mu[s]: g += wd p; p = p (1 - lambd eta) - eta g;
    ax = p where mu == 1, else ax += (p - ax) mu."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        rate = np.float64(eta[segment])
        average_rate = np.float64(mu[segment])
        decay = 1.0 - lambd * rate
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _coupled_gradient(param, grad, index, weight_decay, maximize)
            value = param[index] * decay
            value = value - rate * gradient
            param[index] = value
            if average_rate != 1.0:
                ax[index] = ax[index] + (value - ax[index]) * average_rate
            else:
                ax[index] = value


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def _segment_sums(chunk_sums, chunk_segment, active, segments):
    """Per-parameter sums of the chunks' partial sums, in chunk order."""
    totals = np.zeros(segments, np.float64)
    for chunk in range(chunk_segment.size):
        if active[chunk_segment[chunk]]:
            totals[chunk_segment[chunk]] += chunk_sums[chunk]
    return totals


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def lamb_step(param, grad, update_buffer, exp_avg, exp_avg_sq, chunk_start, chunk_end, chunk_segment, active, steps,
              lr, beta1, beta2, eps, eps_root, weight_decay, maximize):
    """LAMB (optax.lamb): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t) + eps_root) + eps) + wd p; r = ||p|| / ||u|| per parameter
    (1 where either norm is 0); p -= lr r u. `update_buffer` (the layout of param) is scratch."""
    chunks = chunk_start.size
    param_squares, update_squares = _chunk_partials(chunks)
    for chunk in prange(chunks):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        bias_correction1 = 1.0 - beta1 ** steps[segment]
        bias_correction2 = 1.0 - beta2 ** steps[segment]
        param_square = 0.0
        update_square = 0.0
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _signed_gradient(grad, index, maximize)
            average = (1.0 - beta1) * gradient + beta1 * exp_avg[index]
            square = (1.0 - beta2) * gradient * gradient + beta2 * exp_avg_sq[index]
            exp_avg[index] = average
            exp_avg_sq[index] = square
            value = param[index]
            update = (average / bias_correction1) / (math.sqrt(square / bias_correction2 + eps_root) + eps)
            update = update + weight_decay * value
            update_buffer[index] = update
            param_square += value * value
            update_square += update * update
        param_squares[chunk] = param_square
        update_squares[chunk] = update_square
    param_norms = np.sqrt(_segment_sums(param_squares, chunk_segment, active, steps.size))
    update_norms = np.sqrt(_segment_sums(update_squares, chunk_segment, active, steps.size))
    for chunk in prange(chunks):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        param_norm = param_norms[segment]
        update_norm = update_norms[segment]
        ratio = 1.0 if param_norm == 0.0 or update_norm == 0.0 else param_norm / update_norm
        scale = lr * ratio
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            param[index] = param[index] - scale * update_buffer[index]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adafactor_step(param, grad, update_buffer, second_moment, row_moment, col_moment, exp_avg, offsets,
                   moment_offsets, factored, factor_info, unit_factor, unit_outer, chunk_start, chunk_end,
                   chunk_segment, active, steps, lr, decay_rate, decay_offset, eps, clipping_threshold,
                   min_scale, momentum, weight_decay, maximize):
    """Adafactor (optax.adafactor): d = 1 - (t - decay_offset)^-decay_rate; with s = g^2 + eps, a factored
    parameter keeps row and column means of s (decayed by d) and takes u = g (row / mean(row))^-1/2 col^-1/2,
    any other keeps v = d v + (1 - d) s and takes u = g v^-1/2. Then per parameter u /= max(1, rms(u) /
    clipping_threshold) (if clipping_threshold > 0), u *= lr, u *= max(rms(p), min_scale) (if min_scale > 0),
    m = momentum m + (1 - momentum) u and u = m (unless momentum < 0: none), u += weight_decay p, p -= u.

    A factored parameter, seen as (P, A, Q, B, R) with its two factored axes A and B, is described by
    factor_info[f] = (segment, P, A, Q, B, R, row offset, column offset, whether the row axis is A); its
    row moments drop the largest axis and its column moments the other. Each (P, Q, R) position is one
    independent unit (`unit_factor`, `unit_outer`). Unfactored parameter s keeps v at
    second_moment[moment_offsets[s]:]. `exp_avg` is empty without momentum.
    """
    for unit in prange(unit_factor.size):
        info = factor_info[unit_factor[unit]]
        segment = info[0]
        if not active[segment]:
            continue
        size_a, size_q, size_b, size_r = info[2], info[3], info[4], info[5]
        outer = unit_outer[unit]
        position_r = outer % size_r
        position_q = (outer // size_r) % size_q
        position_p = outer // (size_r * size_q)
        decay = 1.0 - (steps[segment] - decay_offset) ** -decay_rate
        base = offsets[segment]
        sums_a = np.zeros(size_a, np.float64)
        sums_b = np.zeros(size_b, np.float64)
        for i in range(size_a):
            for j in range(size_b):
                gradient = grad[base + (((position_p * size_a + i) * size_q + position_q) * size_b + j) * size_r
                                + position_r]
                square = gradient * gradient + eps
                sums_a[i] += square
                sums_b[j] += square
        # Offsets of the moments that keep axis A (they drop B) and of those that keep axis B.
        row_is_a = info[8] != 0
        keep_a = info[6] if row_is_a else info[7]
        keep_b = info[7] if row_is_a else info[6]
        for i in range(size_a):
            at = keep_a + ((position_p * size_a + i) * size_q + position_q) * size_r + position_r
            sums_a[i] = decay * (row_moment[at] if row_is_a else col_moment[at]) + (1.0 - decay) * sums_a[i] / size_b
            if row_is_a:
                row_moment[at] = sums_a[i]
            else:
                col_moment[at] = sums_a[i]
        for j in range(size_b):
            at = keep_b + ((position_p * size_q + position_q) * size_b + j) * size_r + position_r
            sums_b[j] = decay * (col_moment[at] if row_is_a else row_moment[at]) + (1.0 - decay) * sums_b[j] / size_a
            if row_is_a:
                col_moment[at] = sums_b[j]
            else:
                row_moment[at] = sums_b[j]
        rows = sums_a if row_is_a else sums_b
        row_mean = rows.sum() / rows.size
        for i in range(size_a):
            for j in range(size_b):
                at = base + (((position_p * size_a + i) * size_q + position_q) * size_b + j) * size_r + position_r
                if row_is_a:
                    factor = (sums_a[i] / row_mean) ** -0.5 * sums_b[j] ** -0.5
                else:
                    factor = (sums_b[j] / row_mean) ** -0.5 * sums_a[i] ** -0.5
                gradient = _signed_gradient(grad, at, maximize)
                update_buffer[at] = gradient * factor
    chunks = chunk_start.size
    param_squares, update_squares = _chunk_partials(chunks)
    for chunk in prange(chunks):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        decay = 1.0 - (steps[segment] - decay_offset) ** -decay_rate
        shift = moment_offsets[segment] - offsets[segment]
        param_square = 0.0
        update_square = 0.0
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            if not factored[segment]:
                gradient = _signed_gradient(grad, index, maximize)
                square = decay * second_moment[index + shift] + (1.0 - decay) * (gradient * gradient + eps)
                second_moment[index + shift] = square
                update_buffer[index] = gradient * square ** -0.5
            update = update_buffer[index]
            update_square += update * update
            param_square += param[index] * param[index]
        param_squares[chunk] = param_square
        update_squares[chunk] = update_square
    param_sums = _segment_sums(param_squares, chunk_segment, active, steps.size)
    update_sums = _segment_sums(update_squares, chunk_segment, active, steps.size)
    scales = np.zeros(steps.size, np.float64)
    for segment in range(steps.size):
        count = offsets[segment + 1] - offsets[segment]
        if not active[segment] or count == 0:
            continue
        scale = lr
        if clipping_threshold > 0.0:
            denominator = math.sqrt(update_sums[segment] / count) / clipping_threshold
            # jnp.maximum: NaN propagates.
            if not denominator <= 1.0:
                scale = scale / denominator
        if min_scale > 0.0:
            root_mean_square = math.sqrt(param_sums[segment] / count)
            scale = scale * (root_mean_square if not root_mean_square <= min_scale else min_scale)
        scales[segment] = scale
    for chunk in prange(chunks):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        scale = scales[segment]
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            update = update_buffer[index] * scale
            if momentum >= 0.0:
                update = (1.0 - momentum) * update + momentum * exp_avg[index]
                exp_avg[index] = update
            value = param[index]
            param[index] = value - (update + weight_decay * value)
