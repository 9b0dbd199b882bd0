"""Normalisation kernels: batch norm (per channel), layer norm and RMS norm (per row), group norm (per group).

Arrays are C-contiguous float32/float64: batch norm takes x as (N, C, L) (L the product of the spatial
sizes), layer/RMS norm x as (rows, D), group norm x as (N * G, C / G, L); per-channel and per-row
statistics are float64 arrays. Statistics are shifted by the first element of their group before summing,
so constant data has a variance of exactly 0 (its output is exactly the bias) and large offsets do not
cancel. Row statistics (layer and group norm) and the layer norm passes run in the data's dtype over blocks
of BLOCK elements, whose sums are combined in float64: float32 lanes are twice as many as float64 ones and
need no conversions (LayerNorm(512) on (4096, 512) float32: forward 1.19 -> 0.73 ms here), while each
float32 sum covers at most BLOCK values of comparable size (relative error ~1e-6 at worst). Every prange
runs over independent outputs (channels, (sample, channel) pairs, rows or fixed row chunks) and each of
them is reduced in one fixed order by a helper compiled once and called from both variants, so results are
bit-identical on reruns and between the serial and parallel variants. Weight gradients that sum over rows
are written per chunk (or per sample) into `partial` arrays, which `sum_partials` reduces in a fixed order.
"""

import math

import numpy as np
from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel

# ---------------------------------------------------------------------------------------- statistics


# Row sums run in the row's dtype over blocks of this many elements (a float32 block sum of values of one
# size is within ~BLOCK / 64 * 2^-24 of exact at worst, as the loop is vectorised 64 wide), and the block
# sums add up in float64. The blocks are slices: a loop over range(start, stop) of the row itself indexes
# from a start LLVM cannot prove non-negative, and the wraparound of negative indices turned it into gathers
# (8x slower than the float64 loop it replaced).
BLOCK = 256


@cpu_kernel
def _split_mean(mean, dtype_of):
    """A float64 mean as high + low parts in the dtype of `dtype_of`'s elements: (x - high) - low is x - mean
    within one rounding of the result for float32 x, however large the mean (low is 0 for float64)."""
    high = dtype_of.dtype.type(mean)
    return high, dtype_of.dtype.type(mean - np.float64(high))


@cpu_kernel
def _row_moments(row):
    """(mean, sum of squared deviations) of a non-empty 1-D row, by a two-pass over data shifted by row[0]:
    the shifted values and the deviations summed in the row's dtype per block, the block sums in float64."""
    length = row.shape[0]
    shift = row[0]
    zero = shift - shift
    total = 0.0
    for start in range(0, length, BLOCK):
        block = row[start:start + BLOCK]
        block_total = zero
        for index in range(block.shape[0]):
            block_total += block[index] - shift
        total += block_total
    mean = np.float64(shift) + total / length
    mean_high, mean_low = _split_mean(mean, row)
    deviation_sum = 0.0
    squares = 0.0
    for start in range(0, length, BLOCK):
        block = row[start:start + BLOCK]
        block_deviations = zero
        block_squares = zero
        for index in range(block.shape[0]):
            deviation = (block[index] - mean_high) - mean_low
            block_deviations += deviation
            block_squares += deviation * deviation
        deviation_sum += block_deviations
        squares += block_squares
    # The corrected two-pass (Chan, Golub, LeVeque): subtracts what rounding of the mean left over.
    return mean, max(squares - deviation_sum * deviation_sum / length, 0.0)


@cpu_kernel
def _channel_moments(x, channel):
    """(mean, sum of squared deviations) of x[:, channel, :], merging each contiguous segment's two-pass
    moments by Chan's parallel formula (one pass over memory; each segment is read twice from cache)."""
    samples, length = x.shape[0], x.shape[2]
    shift = np.float64(x[0, channel, 0])
    count = 0.0
    mean = 0.0  # of the shifted data
    squares = 0.0
    for sample in range(samples):
        segment = x[sample, channel]
        total = 0.0
        for index in range(length):
            total += segment[index] - shift
        segment_mean = total / length
        segment_squares = 0.0
        for index in range(length):
            deviation = (segment[index] - shift) - segment_mean
            segment_squares += deviation * deviation
        merged = count + length
        delta = segment_mean - mean
        mean += delta * (length / merged)
        squares += segment_squares + delta * delta * (count * length / merged)
        count = merged
    return shift + mean, squares


# ---------------------------------------------------------------------------------------- batch norm


@parallel_cpu_kernel
def batch_norm_statistics(x, eps, mean, variance, invstd):
    """Per channel of x (N, C, L), N * L > 0: mean, biased variance and 1 / sqrt(variance + eps) (each (C,)
    float64)."""
    count = x.shape[0] * x.shape[2]
    for channel in prange(x.shape[1]):
        channel_mean, squares = _channel_moments(x, channel)
        mean[channel] = channel_mean
        variance[channel] = squares / count
        invstd[channel] = 1.0 / math.sqrt(squares / count + eps)


@cpu_kernel
def batch_norm_update_running(mean, variance, count, momentum, running_mean, running_var):
    """running = (1 - momentum) * running + momentum * batch statistic, with the unbiased variance
    (variance * count / (count - 1)), as PyTorch; in place."""
    for channel in range(mean.shape[0]):
        unbiased = variance[channel] * count / (count - 1)
        running_mean[channel] = momentum * mean[channel] + (1.0 - momentum) * running_mean[channel]
        running_var[channel] = momentum * unbiased + (1.0 - momentum) * running_var[channel]


@cpu_kernel
def batch_norm_running_statistics(running_mean, running_var, eps, mean, invstd):
    """Eval mode: mean = running_mean and invstd = 1 / sqrt(running_var + eps), as float64 (C,)."""
    for channel in range(mean.shape[0]):
        mean[channel] = running_mean[channel]
        invstd[channel] = 1.0 / math.sqrt(running_var[channel] + eps)


@parallel_cpu_kernel
def batch_norm_normalize(x, mean, invstd, weight, bias, out):
    """out[n, c, l] = (x[n, c, l] - mean[c]) * invstd[c] * weight[c] + bias[c]; x and out (N, C, L)."""
    channels = x.shape[1]
    for item in prange(x.shape[0] * channels):
        sample, channel = item // channels, item % channels
        channel_mean = mean[channel]
        scale = invstd[channel] * weight[channel]
        shift = np.float64(bias[channel])
        source, target = x[sample, channel], out[sample, channel]
        for index in range(source.shape[0]):
            target[index] = (source[index] - channel_mean) * scale + shift


@parallel_cpu_kernel
def batch_norm_backward_reduce(grad_output, x, mean, invstd, sum_dy, sum_dy_xmu, grad_weight, grad_bias):
    """Per channel: sum_dy = sum of grad_output, sum_dy_xmu = sum of grad_output * (x - mean) ((C,) float64),
    and the parameter gradients grad_weight = sum_dy_xmu * invstd, grad_bias = sum_dy ((C,), x's dtype)."""
    for channel in prange(x.shape[1]):
        channel_mean = mean[channel]
        total = 0.0
        product = 0.0
        for sample in range(x.shape[0]):
            gradient, source = grad_output[sample, channel], x[sample, channel]
            for index in range(source.shape[0]):
                total += gradient[index]
                product += gradient[index] * (source[index] - channel_mean)
        sum_dy[channel] = total
        sum_dy_xmu[channel] = product
        grad_weight[channel] = product * invstd[channel]
        grad_bias[channel] = total


@parallel_cpu_kernel
def batch_norm_backward_input(grad_output, x, mean, invstd, weight, sum_dy, sum_dy_xmu, training, out):
    """d loss / d x. Training (batch statistics, M = N * L values per channel), PyTorch's formula:
    (dy - sum_dy / M - (x - mean) * invstd^2 * sum_dy_xmu / M) * invstd * weight. Eval (running statistics,
    constants): dy * invstd * weight (sum_dy and sum_dy_xmu unused)."""
    channels = x.shape[1]
    count = x.shape[0] * x.shape[2]
    for item in prange(x.shape[0] * channels):
        sample, channel = item // channels, item % channels
        channel_invstd = invstd[channel]
        scale = channel_invstd * weight[channel]
        gradient, target = grad_output[sample, channel], out[sample, channel]
        if not training:
            for index in range(target.shape[0]):
                target[index] = gradient[index] * scale
            continue
        source = x[sample, channel]
        channel_mean = mean[channel]
        mean_gradient = sum_dy[channel] / count
        projection = sum_dy_xmu[channel] * channel_invstd * channel_invstd / count
        for index in range(target.shape[0]):
            centered = source[index] - channel_mean
            target[index] = (gradient[index] - mean_gradient - centered * projection) * scale


# ------------------------------------------------------------------------------------ layer and RMS norm


@cpu_kernel
def _layer_norm_row(x, weight, bias, eps, statistics, row, out):
    mean, squares = _row_moments(x)
    invstd = 1.0 / math.sqrt(squares / x.shape[0] + eps)
    statistics[row, 0] = mean
    statistics[row, 1] = invstd
    mean_high, mean_low = _split_mean(mean, x)
    scale = x.dtype.type(invstd)
    for index in range(x.shape[0]):
        out[index] = ((x[index] - mean_high) - mean_low) * scale * weight[index] + bias[index]


@parallel_cpu_kernel
def layer_norm_forward(x, weight, bias, eps, statistics, out):
    """out = (x - mean) / sqrt(variance + eps) * weight + bias per row of x (rows, D), D > 0, biased variance;
    statistics (rows, 2) float64 receives (mean, invstd) of each row."""
    for row in prange(x.shape[0]):
        _layer_norm_row(x[row], weight, bias, eps, statistics, row, out[row])


@cpu_kernel
def _layer_norm_backward_row(grad_output, x, mean, invstd, weight, out, partial_weight, partial_bias):
    length = x.shape[0]
    mean_high, mean_low = _split_mean(mean, x)
    scale = x.dtype.type(invstd)
    zero = scale - scale
    mean_gradient = 0.0
    mean_projection = 0.0
    for start in range(0, length, BLOCK):
        stop = start + BLOCK
        gradient_block, x_block, weight_block = grad_output[start:stop], x[start:stop], weight[start:stop]
        block_gradient = zero
        block_projection = zero
        for index in range(x_block.shape[0]):
            scaled = gradient_block[index] * weight_block[index]
            block_gradient += scaled
            block_projection += scaled * (((x_block[index] - mean_high) - mean_low) * scale)
        mean_gradient += block_gradient
        mean_projection += block_projection
    gradient_term = x.dtype.type(mean_gradient / length)
    projection_term = x.dtype.type(mean_projection / length)
    for index in range(length):
        normalized = ((x[index] - mean_high) - mean_low) * scale
        out[index] = (grad_output[index] * weight[index] - gradient_term - normalized * projection_term) * scale
        partial_weight[index] += grad_output[index] * normalized
        partial_bias[index] += grad_output[index]


@parallel_cpu_kernel
def layer_norm_backward(grad_output, x, statistics, weight, out, partial_weight, partial_bias):
    """d loss / d x per row: invstd * (g - mean(g) - x_hat * mean(g * x_hat)) with g = dy * weight and
    x_hat = (x - mean) * invstd, in x's dtype with float64 row sums. The rows are cut into
    partial_weight.shape[0] fixed chunks; chunk k adds its rows' dy * x_hat and dy into partial_weight[k] and
    partial_bias[k] ((chunks, D), float64 or x's dtype: a float32 chunk of a few rows halves the traffic of
    these updates, the main cost of this kernel after the row sums)."""
    rows, chunks = x.shape[0], partial_weight.shape[0]
    per_chunk = (rows + chunks - 1) // chunks
    for chunk in prange(chunks):
        chunk_weight, chunk_bias = partial_weight[chunk], partial_bias[chunk]
        chunk_weight[:] = 0.0
        chunk_bias[:] = 0.0
        for row in range(chunk * per_chunk, min(rows, (chunk + 1) * per_chunk)):
            _layer_norm_backward_row(grad_output[row], x[row], statistics[row, 0], statistics[row, 1], weight,
                                     out[row], chunk_weight, chunk_bias)


@cpu_kernel
def _rms_norm_row(x, weight, eps, statistics, row, out):
    squares = 0.0
    for index in range(x.shape[0]):
        value = np.float64(x[index])
        squares += value * value
    inverse_rms = 1.0 / math.sqrt(squares / x.shape[0] + eps)
    statistics[row] = inverse_rms
    for index in range(x.shape[0]):
        out[index] = x[index] * inverse_rms * weight[index]


@parallel_cpu_kernel
def rms_norm_forward(x, weight, eps, statistics, out):
    """out = x / sqrt(mean(x^2) + eps) * weight per row of x (rows, D), D > 0; statistics (rows,) float64
    receives each row's 1 / sqrt(mean(x^2) + eps)."""
    for row in prange(x.shape[0]):
        _rms_norm_row(x[row], weight, eps, statistics, row, out[row])


@cpu_kernel
def _rms_norm_backward_row(grad_output, x, inverse_rms, weight, out, partial_weight):
    length = x.shape[0]
    projection = 0.0
    for index in range(length):
        projection += grad_output[index] * weight[index] * x[index]
    coefficient = inverse_rms * inverse_rms * projection / length
    for index in range(length):
        out[index] = (grad_output[index] * weight[index] - x[index] * coefficient) * inverse_rms
        partial_weight[index] += grad_output[index] * x[index] * inverse_rms


@parallel_cpu_kernel
def rms_norm_backward(grad_output, x, statistics, weight, out, partial_weight):
    """d loss / d x per row: r * (g - x * r^2 * mean(g * x)) with g = dy * weight, r = 1 / rms; chunk k of the
    rows adds dy * x * r into partial_weight[k] ((chunks, D) float64)."""
    rows, chunks = x.shape[0], partial_weight.shape[0]
    per_chunk = (rows + chunks - 1) // chunks
    for chunk in prange(chunks):
        chunk_weight = partial_weight[chunk]
        chunk_weight[:] = 0.0
        for row in range(chunk * per_chunk, min(rows, (chunk + 1) * per_chunk)):
            _rms_norm_backward_row(grad_output[row], x[row], statistics[row], weight, out[row], chunk_weight)


@cpu_kernel
def sum_partials(partial, out):
    """out[j] = sum over k of partial[k, j], in order of k (a deterministic reduction of per-chunk sums), in
    out's dtype (float64 for float32 partials, so that many chunks add up without float32 rounding)."""
    out[:] = 0.0
    for chunk in range(partial.shape[0]):
        for index in range(partial.shape[1]):
            out[index] += partial[chunk, index]


# ---------------------------------------------------------------------------------------- group norm


@cpu_kernel
def _group_norm_row(x, weight, bias, eps, statistics, row, out):
    """One (sample, group) of x (C / G, L): normalise with the group's statistics, channel-wise affine."""
    flat = x.reshape(-1)
    mean, squares = _row_moments(flat)
    invstd = 1.0 / math.sqrt(squares / flat.shape[0] + eps)
    statistics[row, 0] = mean
    statistics[row, 1] = invstd
    for channel in range(x.shape[0]):
        scale = invstd * weight[channel]
        shift = np.float64(bias[channel])
        source, target = x[channel], out[channel]
        for index in range(source.shape[0]):
            target[index] = (source[index] - mean) * scale + shift


@parallel_cpu_kernel
def group_norm_forward(x, weight, bias, eps, statistics, out):
    """Group norm of x (N * G, C / G, L) with C / G * L > 0: each row normalised by its own mean and biased
    variance, then scaled by weight and shifted by bias, both (G, C / G) (the channels of row r are
    weight[r % G]); statistics (N * G, 2) float64 receives (mean, invstd)."""
    groups = weight.shape[0]
    for row in prange(x.shape[0]):
        group = row % groups
        _group_norm_row(x[row], weight[group], bias[group], eps, statistics, row, out[row])


@cpu_kernel
def _group_norm_backward_row(grad_output, x, mean, invstd, weight, out, partial_weight, partial_bias):
    count = x.shape[0] * x.shape[1]
    mean_gradient = 0.0
    mean_projection = 0.0
    for channel in range(x.shape[0]):
        channel_weight = weight[channel]
        gradient, source = grad_output[channel], x[channel]
        dy_sum = 0.0
        dy_xhat = 0.0
        for index in range(source.shape[0]):
            dy_sum += gradient[index]
            dy_xhat += gradient[index] * ((source[index] - mean) * invstd)
        partial_weight[channel] = dy_xhat
        partial_bias[channel] = dy_sum
        mean_gradient += channel_weight * dy_sum
        mean_projection += channel_weight * dy_xhat
    mean_gradient /= count
    mean_projection /= count
    for channel in range(x.shape[0]):
        channel_weight = weight[channel]
        gradient, source, target = grad_output[channel], x[channel], out[channel]
        for index in range(source.shape[0]):
            normalized = (source[index] - mean) * invstd
            target[index] = (gradient[index] * channel_weight - mean_gradient - normalized * mean_projection) * invstd


@parallel_cpu_kernel
def group_norm_backward(grad_output, x, statistics, weight, out, partial_weight, partial_bias):
    """d loss / d x per (sample, group) row of x (N * G, C / G, L): invstd * (g - mean(g) - x_hat *
    mean(g * x_hat)), g = dy * weight[channel]; partial_weight and partial_bias (N * G, C / G) float64 receive
    each row's per-channel sums of dy * x_hat and dy (sum them over samples for the weight gradients)."""
    groups = weight.shape[0]
    for row in prange(x.shape[0]):
        _group_norm_backward_row(grad_output[row], x[row], statistics[row, 0], statistics[row, 1],
                                 weight[row % groups], out[row], partial_weight[row], partial_bias[row])
