"""Pooling and channel-dropout kernels, one (batch, channel) plane per work item (upsampling: kernels/interpolate.py).

Every array is C-contiguous: inputs `x` (planes, height, width) of float32/float64 (1-D ops take height 1),
outputs (planes, out_height, out_width). Each prange runs over planes and each plane is computed by one
thread in a fixed order, so backward kernels that add into the input gradient (windows overlap) own their
plane and need no shared writes: results are the same on any thread count and between the serial and
threaded variants. Window bounds, nan handling and tie-breaking follow PyTorch's CPU kernels
(aten/src/ATen/native/cpu/MaxPoolKernel.cpp, AvgPoolKernel.cpp, AdaptiveAvgPoolKernel.cpp,
AdaptiveMaxPoolKernel.cpp).

Max-pool indices are flat positions within a plane (row * width + column), int64, as PyTorch's. The backward
reads indices that the caller may have been handed (return_indices) and written through .numpy(), which
version counters do not see, so it checks every index against the plane and reports the first bad one
instead of writing outside the gradient.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, parallel_cpu_kernel, scalar_function

# ---------------------------------------------------------------------------------------- window bounds


@scalar_function
def _dilated_window(position, kernel, stride, padding, dilation, size):
    """The window of output `position` along one axis of a max pool: (start, stop) for range(start, stop,
    dilation), the taps that fall inside [0, size)."""
    start = position * stride - padding
    stop = min(start + (kernel - 1) * dilation + 1, size)
    while start < 0:
        start += dilation
    return start, stop


@scalar_function
def _average_window(position, kernel, stride, padding, size):
    """The window of output `position` along one axis of an average pool: (start, stop) clipped to [0, size),
    and its length clipped to the padded axis only (count_include_pad's part of the divisor)."""
    start = position * stride - padding
    stop = min(start + kernel, size + padding)
    return max(start, 0), min(stop, size), stop - start


@scalar_function
def _average_divisor(divisor_override, count_include_pad, padded_size, size):
    """What an average pool's window sum is divided by: the override, or the window's size with padding
    (count_include_pad) or without."""
    if divisor_override != 0:
        return divisor_override
    if count_include_pad:
        return padded_size
    return size


@scalar_function
def _adaptive_window(position, size, out_size):
    """The window of output `position` along one axis of an adaptive pool: [floor(position * size / out_size),
    ceil((position + 1) * size / out_size))."""
    return position * size // out_size, ((position + 1) * size + out_size - 1) // out_size


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
            row_start, row_stop = _dilated_window(row, kernel_height, stride_height, padding_height,
                                                  dilation_height, height)
            for column in range(out_width):
                column_start, column_stop = _dilated_window(column, kernel_width, stride_width, padding_width,
                                                            dilation_width, width)
                best_index = row_start * width + column_start
                best = -np.inf
                if (row_stop - row_start == 2 and column_stop - column_start == 2 and dilation_height == 1
                        and dilation_width == 1):
                    best, best_index = _two_by_two_max(source, row_start, column_start)
                else:
                    for input_row in range(row_start, row_stop, dilation_height):
                        for input_column in range(column_start, column_stop, dilation_width):
                            value = source[input_row, input_column]
                            if value > best or value != value:
                                best = value
                                best_index = input_row * width + input_column
                out[plane, row, column] = best
                indices[plane, row, column] = best_index


@scalar_function
def _two_by_two_max(source, row, column):
    """(maximum, flat position) of the whole 2x2 window at (row, column) of a plane, compared in the loop's
    order (row by row) with its rules for ties and nan. The most common max pool's windows, unrolled: the loops
    of unknown length took 2.3-3.5 ms for 2x2 pools over 64x16x28x28 and 64x32x14x14, this 1.3 ms (one thread)."""
    width = source.shape[1]
    best, best_index = source[row, column], row * width + column
    for offset in range(1, 4):
        input_row, input_column = row + offset // 2, column + offset % 2
        value = source[input_row, input_column]
        take = (value > best) | (value != value)
        best = value if take else best
        best_index = input_row * width + input_column if take else best_index
    return best, best_index


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
            row_start, row_stop = _adaptive_window(row, height, out_height)
            for column in range(out_width):
                column_start, column_stop = _adaptive_window(column, width, out_width)
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
            row_start, row_stop, padded_rows = _average_window(row, kernel_height, stride_height, padding_height,
                                                               height)
            for column in range(out_width):
                column_start, column_stop, padded_columns = _average_window(column, kernel_width, stride_width,
                                                                            padding_width, width)
                if row_start >= row_stop or column_start >= column_stop:
                    out[plane, row, column] = 0
                    continue
                total = 0.0
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        total += source[input_row, input_column]
                out[plane, row, column] = total / _average_divisor(
                    divisor_override, count_include_pad, padded_rows * padded_columns,
                    (row_stop - row_start) * (column_stop - column_start))


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
            row_start, row_stop, padded_rows = _average_window(row, kernel_height, stride_height, padding_height,
                                                               height)
            for column in range(out_width):
                column_start, column_stop, padded_columns = _average_window(column, kernel_width, stride_width,
                                                                            padding_width, width)
                if row_start >= row_stop or column_start >= column_stop:
                    continue
                share = grad_output[plane, row, column] / _average_divisor(
                    divisor_override, count_include_pad, padded_rows * padded_columns,
                    (row_stop - row_start) * (column_stop - column_start))
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
            row_start, row_stop = _adaptive_window(row, height, out_height)
            for column in range(out_width):
                column_start, column_stop = _adaptive_window(column, width, out_width)
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
            row_start, row_stop = _adaptive_window(row, height, out_height)
            for column in range(out_width):
                column_start, column_stop = _adaptive_window(column, width, out_width)
                share = grad_output[plane, row, column] / ((row_stop - row_start) * (column_stop - column_start))
                for input_row in range(row_start, row_stop):
                    for input_column in range(column_start, column_stop):
                        target[input_row, input_column] += share


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
