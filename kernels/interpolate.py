"""Upsampling kernels (nearest, linear and bilinear), one (batch, channel) plane per work item, and the tables of
source positions and weights that they read, computed as PyTorch's CPU kernels compute them
(aten/src/ATen/native/cpu/UpSampleKernel.cpp, UpSample.h).

Every array is C-contiguous: inputs `x` (planes, height, width) of float32/float64 (1-D ops take height 1),
outputs (planes, out_height, out_width). Each prange runs over planes and each plane is computed by one
thread in a fixed order, so the backward kernels, which add into the input gradient, own their plane and need
no shared writes: results are the same on any thread count and between the serial and threaded variants.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, parallel_cpu_kernel, scalar_function

# ------------------------------------------------------------------------------------------- upsampling


@scalar_function
def _rounded(value, single):
    """`value` rounded to float32 when `single` (exactly float32 arithmetic, step by step: float64 holds every
    float32 sum, difference, product and quotient rounded once), else `value`."""
    return np.float64(np.float32(value)) if single else value


@cpu_kernel(fastmath=False)
def nearest_sources(input_size, output_size, scale, out):
    """out[i] = PyTorch's `nearest_idx`: i when the sizes agree, i // 2 when doubling, else
    min(floor(i * ratio), input_size - 1) in float32, ratio = 1 / scale for a scale > 0, else in / out.

    out: (output_size,) int64. Without fast-math: one ulp decides a floor.
    """
    ratio = _rounded(1.0 / scale, True) if scale > 0 else _rounded(np.float64(input_size) / output_size, True)
    for position in range(output_size):
        if output_size == input_size:
            out[position] = position
        elif output_size == 2 * input_size:
            out[position] = position >> 1
        else:
            out[position] = min(int(np.floor(_rounded(position * ratio, True))), input_size - 1)


@cpu_kernel(fastmath=False)
def linear_sources(input_size, output_size, scale, align_corners, single, indices, weights):
    """PyTorch's `compute_source_index_and_lambda` for every output position, in float32 arithmetic when
    `single` (its opmath for float32 data), float64 otherwise: indices[0, i] the source index below,
    indices[1, i] the next one (the same at the edge or when the sizes agree), weights[:, i] their weights.

    scale: the scale factor, or 0 for none; indices: (2, output_size) int64; weights: (2, output_size) float.
    """
    if align_corners:
        ratio = _rounded(np.float64(input_size - 1) / (output_size - 1), single) if output_size > 1 else 0.0
    elif scale > 0:
        ratio = _rounded(1.0 / scale, single)
    else:
        ratio = _rounded(np.float64(input_size) / output_size, single)
    for position in range(output_size):
        if output_size == input_size:
            indices[0, position] = indices[1, position] = position
            weights[0, position], weights[1, position] = 1.0, 0.0
            continue
        if align_corners:
            source = _rounded(ratio * position, single)
        else:
            source = max(_rounded(_rounded(ratio * _rounded(position + 0.5, single), single) - 0.5, single), 0.0)
        # PyTorch floors with floorf, in float32 for float64 data too.
        first = min(int(np.floor(np.float32(source))), input_size - 1)
        weight = min(max(_rounded(source - first, single), 0.0), 1.0)
        indices[0, position] = first
        indices[1, position] = first + 1 if first < input_size - 1 else first
        weights[0, position] = _rounded(1.0 - weight, single)
        weights[1, position] = weight


@parallel_cpu_kernel
def upsample_nearest_forward(x, rows, columns, out):
    """out[p, i, j] = x[p, rows[i], columns[j]].

    x: (planes, h, w); rows: (oh,) and columns: (ow,) int64 source indices, made by the caller within
    [0, h) and [0, w); out: (planes, oh, ow) of x's dtype.
    """
    for plane in prange(x.shape[0]):
        source = x[plane]
        for row in range(out.shape[1]):
            source_row = source[rows[row]]
            target = out[plane, row]
            for column in range(out.shape[2]):
                target[column] = source_row[columns[column]]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def upsample_nearest_backward(grad_output, rows, columns, out):
    """out[p, rows[i], columns[j]] += grad_output[p, i, j] in output order (the adjoint of the forward);
    out: (planes, h, w), overwritten."""
    for plane in prange(out.shape[0]):
        target = out[plane]
        for row in range(out.shape[1]):
            for column in range(out.shape[2]):
                target[row, column] = 0
        for row in range(grad_output.shape[1]):
            target_row = target[rows[row]]
            gradient = grad_output[plane, row]
            for column in range(grad_output.shape[2]):
                target_row[columns[column]] += gradient[column]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def upsample_linear_forward(x, interpolate_rows, rows, row_weights, columns, column_weights, out):
    """Linear interpolation along the columns (and along the rows when `interpolate_rows`), as PyTorch's
    separable loop: per row r, t(r) = x[p, r, c0] * w0 + x[p, r, c1] * w1 with (c0, c1) = columns[:, j] and
    (w0, w1) = column_weights[:, j]; out = t(r0) * v0 + t(r1) * v1 by the row tables, or t(0) alone.

    x: (planes, h, w); rows, columns: (2, oh) and (2, ow) int64 source indices made by the caller in range;
    row_weights, column_weights: (2, oh), (2, ow) of x's dtype; out: (planes, oh, ow) of x's dtype.
    """
    for plane in prange(x.shape[0]):
        source = x[plane]
        for row in range(out.shape[1]):
            first_row = source[rows[0, row]]
            second_row = source[rows[1, row]]
            row_weight0, row_weight1 = row_weights[0, row], row_weights[1, row]
            target = out[plane, row]
            for column in range(out.shape[2]):
                first, second = columns[0, column], columns[1, column]
                weight0, weight1 = column_weights[0, column], column_weights[1, column]
                top = first_row[first] * weight0 + first_row[second] * weight1
                if interpolate_rows:
                    bottom = second_row[first] * weight0 + second_row[second] * weight1
                    target[column] = top * row_weight0 + bottom * row_weight1
                else:
                    target[column] = top


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def upsample_linear_backward(grad_output, interpolate_rows, rows, row_weights, columns, column_weights, out):
    """The adjoint of `upsample_linear_forward`: each output's gradient times the two (or four) weights
    added at its source positions, in output order. out: (planes, h, w), overwritten."""
    for plane in prange(out.shape[0]):
        target = out[plane]
        for row in range(out.shape[1]):
            for column in range(out.shape[2]):
                target[row, column] = 0
        for row in range(grad_output.shape[1]):
            first_row = target[rows[0, row]]
            second_row = target[rows[1, row]]
            row_weight0, row_weight1 = row_weights[0, row], row_weights[1, row]
            gradient = grad_output[plane, row]
            for column in range(grad_output.shape[2]):
                first, second = columns[0, column], columns[1, column]
                weight0, weight1 = column_weights[0, column], column_weights[1, column]
                value = gradient[column]
                if interpolate_rows:
                    first_row[first] += row_weight0 * weight0 * value
                    first_row[second] += row_weight0 * weight1 * value
                    second_row[first] += row_weight1 * weight0 * value
                    second_row[second] += row_weight1 * weight1 * value
                else:
                    first_row[first] += weight0 * value
                    first_row[second] += weight1 * value
