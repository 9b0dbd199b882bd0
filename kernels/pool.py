"""Pooling, upsampling and channel-dropout kernels, one (batch, channel) plane per work item.

Every array is C-contiguous: inputs `x` (planes, height, width) of float32/float64 (1-D ops take height 1),
outputs (planes, out_height, out_width). Each prange runs over planes and each plane is computed by one
thread in a fixed order, so backward kernels that add into the input gradient (windows overlap) own their
plane and need no shared writes: results are the same on any thread count and between the serial and
threaded variants. Window bounds, nan handling and tie-breaking follow PyTorch's CPU kernels
(aten/src/ATen/native/cpu/MaxPoolKernel.cpp, AvgPoolKernel.cpp, AdaptiveAvgPoolKernel.cpp,
AdaptiveMaxPoolKernel.cpp, UpSampleKernel.cpp).

Max-pool indices are flat positions within a plane (row * width + column), int64, as PyTorch's. The backward
reads indices that the caller may have been handed (return_indices) and written through .numpy(), which
version counters do not see, so it checks every index against the plane and reports the first bad one
instead of writing outside the gradient.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, parallel_cpu_kernel, scalar_function

# ----------------------------------------------------------------------------------------- max pooling


@parallel_cpu_kernel
def max_pool2d_forward(x, kernel_height, kernel_width, stride_height, stride_width, padding_height, padding_width,
                       dilation_height, dilation_width, out, indices):
    """out[p, i, j] = the maximum of x[p] over the window of output (i, j); indices[p, i, j] its flat position.

    The window of (i, j) starts at (i * stride - padding) and takes every dilation-th row/column, kernel
    of them, clipped to the plane. The first maximum wins ties; a nan wins over any number, and a later nan
    over an earlier one (PyTorch's `val > max || isnan(val)`); a window of -inf gives -inf at its first
    position. out: (planes, oh, ow) of x's dtype; indices: (planes, oh, ow) int64.
    """
    height, width = x.shape[1], x.shape[2]
    out_height, out_width = out.shape[1], out.shape[2]
    for plane in prange(x.shape[0]):
        source = x[plane]
        for row in range(out_height):
            row_start = row * stride_height - padding_height
            row_stop = min(row_start + (kernel_height - 1) * dilation_height + 1, height)
            while row_start < 0:
                row_start += dilation_height
            for column in range(out_width):
                column_start = column * stride_width - padding_width
                column_stop = min(column_start + (kernel_width - 1) * dilation_width + 1, width)
                while column_start < 0:
                    column_start += dilation_width
                best_index = row_start * width + column_start
                best = -np.inf
                for input_row in range(row_start, row_stop, dilation_height):
                    for input_column in range(column_start, column_stop, dilation_width):
                        value = source[input_row, input_column]
                        if value > best or value != value:
                            best = value
                            best_index = input_row * width + input_column
                out[plane, row, column] = best
                indices[plane, row, column] = best_index


@parallel_cpu_kernel
def adaptive_max_pool2d_forward(x, out, indices):
    """out[p, i, j] = the maximum of x[p] over rows [floor(i * h / oh), ceil((i + 1) * h / oh)) and the
    columns likewise; indices[p, i, j] its flat position (ties and nan as `max_pool2d_forward`).

    x: (planes, h >= 1, w >= 1); out: (planes, oh, ow) of x's dtype; indices: (planes, oh, ow) int64.
    """
    height, width = x.shape[1], x.shape[2]
    out_height, out_width = out.shape[1], out.shape[2]
    for plane in prange(x.shape[0]):
        source = x[plane]
        for row in range(out_height):
            row_start = row * height // out_height
            row_stop = ((row + 1) * height + out_height - 1) // out_height
            for column in range(out_width):
                column_start = column * width // out_width
                column_stop = ((column + 1) * width + out_width - 1) // out_width
                best_index = row_start * width + column_start
                best = -np.inf
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        value = source[input_row, input_column]
                        if value > best or value != value:
                            best = value
                            best_index = input_row * width + input_column
                out[plane, row, column] = best
                indices[plane, row, column] = best_index


@parallel_cpu_kernel
def max_pool_backward(grad_output, indices, found, out):
    """out[p, indices[p, k]] += grad_output[p, k] over k in increasing order; out[p] zero elsewhere.

    grad_output: (planes, outputs) float; indices: (planes, outputs) int64; out: (planes, size) float.
    An index outside [0, size) is skipped; found[0] = the flat position (plane * outputs + k) of the first
    one, found[1] its value, or found[0] = -1 when all are in range (the caller raises).
    """
    planes, count, size = indices.shape[0], indices.shape[1], out.shape[1]
    first_bad = np.full(planes, -1, np.int64)
    for plane in prange(planes):
        target = out[plane]
        for position in range(size):
            target[position] = 0
        gradient = grad_output[plane]
        positions = indices[plane]
        for k in range(count):
            position = positions[k]
            if position < 0 or position >= size:
                if first_bad[plane] < 0:
                    first_bad[plane] = k
            else:
                target[position] += gradient[k]
    found[0] = -1
    found[1] = 0
    for plane in range(planes):
        if first_bad[plane] >= 0:
            found[0] = plane * count + first_bad[plane]
            found[1] = indices[plane, first_bad[plane]]
            break


@parallel_cpu_kernel
def max_pool_gather(grad_input, indices, found, out):
    """out[p, k] = grad_input[p, indices[p, k]]: the adjoint of `max_pool_backward` (the derivative of a recorded
    max-pool backward in its incoming gradient).

    grad_input: (planes, size) float; indices: (planes, outputs) int64; out: (planes, outputs) of grad_input's
    dtype. An index outside [0, size) gives 0 and is reported in `found` as by `max_pool_backward`.
    """
    planes, count, size = indices.shape[0], indices.shape[1], grad_input.shape[1]
    first_bad = np.full(planes, -1, np.int64)
    for plane in prange(planes):
        source = grad_input[plane]
        positions = indices[plane]
        target = out[plane]
        for k in range(count):
            position = positions[k]
            if position < 0 or position >= size:
                target[k] = 0
                if first_bad[plane] < 0:
                    first_bad[plane] = k
            else:
                target[k] = source[position]
    found[0] = -1
    found[1] = 0
    for plane in range(planes):
        if first_bad[plane] >= 0:
            found[0] = plane * count + first_bad[plane]
            found[1] = indices[plane, first_bad[plane]]
            break


# ----------------------------------------------------------------------------------------- average pooling


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def avg_pool2d_forward(x, kernel_height, kernel_width, stride_height, stride_width, padding_height, padding_width,
                       count_include_pad, divisor_override, out):
    """out[p, i, j] = the sum of x[p] over the window of (i, j) divided by the divisor.

    The window starts at (i * stride - padding), kernel rows and columns, clipped to the padded plane for
    the divisor with padding (count_include_pad) and to the plane for the sum and the divisor without;
    divisor_override != 0 replaces the divisor. A window with no element of the plane gives 0. Sums
    accumulate in float64. out: (planes, oh, ow) of x's dtype.
    """
    height, width = x.shape[1], x.shape[2]
    out_height, out_width = out.shape[1], out.shape[2]
    for plane in prange(x.shape[0]):
        source = x[plane]
        for row in range(out_height):
            row_start = row * stride_height - padding_height
            row_stop = min(row_start + kernel_height, height + padding_height)
            padded_rows = row_stop - row_start
            row_start, row_stop = max(row_start, 0), min(row_stop, height)
            for column in range(out_width):
                column_start = column * stride_width - padding_width
                column_stop = min(column_start + kernel_width, width + padding_width)
                padded_size = padded_rows * (column_stop - column_start)
                column_start, column_stop = max(column_start, 0), min(column_stop, width)
                if row_start >= row_stop or column_start >= column_stop:
                    out[plane, row, column] = 0
                    continue
                total = 0.0
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        total += source[input_row, input_column]
                if divisor_override != 0:
                    divisor = divisor_override
                elif count_include_pad:
                    divisor = padded_size
                else:
                    divisor = (row_stop - row_start) * (column_stop - column_start)
                out[plane, row, column] = total / divisor


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def avg_pool2d_backward(grad_output, kernel_height, kernel_width, stride_height, stride_width, padding_height,
                        padding_width, count_include_pad, divisor_override, out):
    """out[p] = the sum over windows of grad_output[p, i, j] / divisor at each input of the window of (i, j)
    (the adjoint of `avg_pool2d_forward`, same windows and divisors), added in output order.

    grad_output: (planes, oh, ow) float; out: (planes, h, w) of its dtype, overwritten.
    """
    height, width = out.shape[1], out.shape[2]
    out_height, out_width = grad_output.shape[1], grad_output.shape[2]
    for plane in prange(out.shape[0]):
        target = out[plane]
        for input_row in range(height):
            for input_column in range(width):
                target[input_row, input_column] = 0
        for row in range(out_height):
            row_start = row * stride_height - padding_height
            row_stop = min(row_start + kernel_height, height + padding_height)
            padded_rows = row_stop - row_start
            row_start, row_stop = max(row_start, 0), min(row_stop, height)
            for column in range(out_width):
                column_start = column * stride_width - padding_width
                column_stop = min(column_start + kernel_width, width + padding_width)
                padded_size = padded_rows * (column_stop - column_start)
                column_start, column_stop = max(column_start, 0), min(column_stop, width)
                if row_start >= row_stop or column_start >= column_stop:
                    continue
                if divisor_override != 0:
                    divisor = divisor_override
                elif count_include_pad:
                    divisor = padded_size
                else:
                    divisor = (row_stop - row_start) * (column_stop - column_start)
                share = grad_output[plane, row, column] / divisor
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        target[input_row, input_column] += share


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adaptive_avg_pool2d_forward(x, out):
    """out[p, i, j] = the mean of x[p] over rows [floor(i * h / oh), ceil((i + 1) * h / oh)) and the columns
    likewise (float64 sums). x: (planes, h >= 1, w >= 1); out: (planes, oh, ow) of x's dtype."""
    height, width = x.shape[1], x.shape[2]
    out_height, out_width = out.shape[1], out.shape[2]
    for plane in prange(x.shape[0]):
        source = x[plane]
        for row in range(out_height):
            row_start = row * height // out_height
            row_stop = ((row + 1) * height + out_height - 1) // out_height
            for column in range(out_width):
                column_start = column * width // out_width
                column_stop = ((column + 1) * width + out_width - 1) // out_width
                total = 0.0
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        total += source[input_row, input_column]
                out[plane, row, column] = total / ((row_stop - row_start) * (column_stop - column_start))


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adaptive_avg_pool2d_backward(grad_output, out):
    """The adjoint of `adaptive_avg_pool2d_forward`: each output's gradient divided by its window's size and
    added at every input of the window, in output order. grad_output: (planes, oh, ow); out: (planes, h, w),
    overwritten."""
    height, width = out.shape[1], out.shape[2]
    out_height, out_width = grad_output.shape[1], grad_output.shape[2]
    for plane in prange(out.shape[0]):
        target = out[plane]
        for input_row in range(height):
            for input_column in range(width):
                target[input_row, input_column] = 0
        for row in range(out_height):
            row_start = row * height // out_height
            row_stop = ((row + 1) * height + out_height - 1) // out_height
            for column in range(out_width):
                column_start = column * width // out_width
                column_stop = ((column + 1) * width + out_width - 1) // out_width
                share = grad_output[plane, row, column] / ((row_stop - row_start) * (column_stop - column_start))
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        target[input_row, input_column] += share


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


# ------------------------------------------------------------------------------------------ channel dropout


@parallel_cpu_kernel
def channel_dropout_apply(x, uniform, p, scale, out):
    """out[plane] = x[plane] * scale where uniform[plane] >= p, else x[plane] * 0 (nan and inf stay visible).

    x, out: (planes, length) of one float dtype; uniform: (planes,) draws in [0, 1); scale = 1 / (1 - p).
    The same kernel is the backward (d out / d x is the plane's factor).
    """
    for plane in prange(x.shape[0]):
        keep = scale if uniform[plane] >= p else 0.0
        for position in range(x.shape[1]):
            out[plane, position] = x[plane, position] * keep
