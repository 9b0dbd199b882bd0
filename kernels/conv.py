"""Convolution kernels: im2col + BLAS products one image at a time, direct loops for depthwise convolutions, bias.

Every kernel sees a channels-first image (batch, channels, height, width); a 1-D convolution is a 2-D one of
height 1. Along each spatial dimension output position p reads input position p * stride - padding + i *
dilation for kernel tap i, and reads zero where that falls outside the input. General convolutions pack each
image's im2col matrix and multiply it by BLAS (forward, input and weight gradients); convolutions with one
input channel in each of several groups (depthwise) run direct loops, where products of one-row matrices would
waste BLAS.
Pointwise (1x1) convolutions need no kernel of their own: nbprop/ops/conv.py runs them as batched products.

Backward kernels are deterministic: each thread owns whole output planes or elements and adds into them in a
fixed order, so no two threads write one element and serial and threaded variants agree bit for bit.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, parallel_cpu_kernel


@cpu_kernel
def _valid_range(offset, stride, size, count):
    """The output positions q in [0, count) whose input position q * stride + offset lies in [0, size)."""
    low = 0 if offset >= 0 else (-offset + stride - 1) // stride
    high = 0 if size - 1 - offset < 0 else min(count, (size - 1 - offset) // stride + 1)
    return min(low, count), max(high, min(low, count))


@cpu_kernel
def _pack_shifted(flat_source, row_offset, column_offset, height, width, low, high, out_height, flat_target):
    """`_pack_row` where output and input rows have one length (stride 1, 'same' width): the target is the input
    plane shifted by (row_offset, column_offset), so one long copy of the flat plane fills every valid row, and
    the few columns that the shift wrapped round from a neighbouring row are zeroed after it. The short per-row
    copies took 1.27 ms to pack 16->32 3x3 on 64x14x14 (rows of 14), this 0.58 ms (one thread; 0.13 ms for
    the bare copies).

    flat_source: (height * width,); flat_target: (out_height * width,); low, high: the valid output columns.
    """
    first_row, stop_row = _valid_range(row_offset, 1, height, out_height)
    if stop_row <= first_row or high <= low:
        flat_target[:] = 0
        return
    start, stop = first_row * width + low, (stop_row - 1) * width + high
    shift = (first_row + row_offset) * width + low + column_offset
    flat_target[:start] = 0
    # Views indexed from 0, as in conv_depthwise_forward: the copy vectorizes.
    target = flat_target[start:stop]
    source = flat_source[shift:shift + stop - start]
    for k in range(stop - start):
        target[k] = source[k]
    flat_target[stop:] = 0
    for p in range(first_row, stop_row):
        row = flat_target[p * width:(p + 1) * width]
        for q in range(low):
            row[q] = 0
        for q in range(high, width):
            row[q] = 0


@cpu_kernel
def _pack_row(source, row, kernel_height, kernel_width, stride_height, stride_width, padding_height, padding_width,
              dilation_height, dilation_width, target):
    """Row (c, i, j) of one image's im2col matrix: target[p, q] = source[c, p * stride_height - padding_height +
    i * dilation_height, q * stride_width - padding_width + j * dilation_width], 0 outside the image.

    source: (channels, height, width); target: (out_height, out_width). A copy: no arithmetic on the values.
    """
    taps = kernel_height * kernel_width
    channel = row // taps
    tap_row = (row % taps) // kernel_width
    tap_column = row % kernel_width
    height, width = source.shape[1], source.shape[2]
    out_height, out_width = target.shape[0], target.shape[1]
    column_offset = tap_column * dilation_width - padding_width
    low, high = _valid_range(column_offset, stride_width, width, out_width)
    # Flat views indexed by unsigned integers: Numba wraps negative signed indices, which kept the loops scalar
    # (unsigned indices packed 64->64 3x3 on 8x56x56 in 6.0 ms against 9.3 ms with slice copies, 16->32 3x3 on
    # 64x14x14 in 1.05 ms against 1.6 ms).
    flat_target = target.reshape(-1)
    flat_source = source[channel].reshape(-1)
    if stride_height == 1 and stride_width == 1 and out_width == width:
        _pack_shifted(flat_source, tap_row * dilation_height - padding_height, column_offset, height, width, low,
                      high, out_height, flat_target)
        return
    for p in range(out_height):
        h = p * stride_height - padding_height + tap_row * dilation_height
        start = np.uint64(p * out_width)
        if h < 0 or h >= height:
            for q in range(np.uint64(out_width)):
                flat_target[start + q] = 0
            continue
        for q in range(np.uint64(low)):
            flat_target[start + q] = 0
        if stride_width == 1:
            first = np.uint64(h * width + column_offset + low)
            for q in range(np.uint64(high - low)):
                flat_target[start + np.uint64(low) + q] = flat_source[first + q]
        else:
            for q in range(low, high):
                flat_target[p * out_width + q] = flat_source[h * width + q * stride_width + column_offset]
        for q in range(np.uint64(high), np.uint64(out_width)):
            flat_target[start + q] = 0


@cpu_kernel
def _unpack_shifted(flat_source, row_offset, column_offset, height, low, high, out_height, flat_plane):
    """The adjoint of `_pack_shifted` for one tap: flat_plane[k + shift] += flat_source[k] over the valid rows,
    as one long loop. The columns that the shift wraps round into a neighbouring row are zeroed in the source
    (the caller's scratch) first, so that they add nothing there: the plane's sums keep their order."""
    width = flat_plane.shape[0] // height
    first_row, stop_row = _valid_range(row_offset, 1, height, out_height)
    if stop_row <= first_row:
        return
    for p in range(first_row, stop_row):
        row = flat_source[p * width:(p + 1) * width]
        for q in range(low):
            row[q] = 0
        for q in range(high, width):
            row[q] = 0
    start, stop = first_row * width + low, (stop_row - 1) * width + high
    shift = (first_row + row_offset) * width + low + column_offset
    target = flat_plane[shift:shift + stop - start]
    source = flat_source[start:stop]
    for k in range(stop - start):
        target[k] += source[k]


@cpu_kernel
def _unpack_plane(columns, channel, kernel_height, kernel_width, stride_height, stride_width, padding_height,
                  padding_width, dilation_height, dilation_width, plane):
    """The adjoint of `_pack_row` for one input channel of one image: plane[h, w] = the sum of the entries of
    the image's im2col matrices that were copied from (channel, h, w), added in a fixed order (tap, p, q).

    columns: (groups, K, out_height, out_width), K = channels per group * taps, scratch: the channel's entries
    that were copied from the padding may be zeroed; plane: (height, width).
    """
    per_group = columns.shape[1] // (kernel_height * kernel_width)
    group = channel // per_group
    first_row = (channel % per_group) * kernel_height * kernel_width
    height, width = plane.shape[0], plane.shape[1]
    out_height, out_width = columns.shape[2], columns.shape[3]
    for h in range(height):
        for w in range(width):
            plane[h, w] = 0
    flat_plane = plane.reshape(-1)
    for tap_row in range(kernel_height):
        for tap_column in range(kernel_width):
            source = columns[group, first_row + tap_row * kernel_width + tap_column]
            column_offset = tap_column * dilation_width - padding_width
            low, high = _valid_range(column_offset, stride_width, width, out_width)
            if high <= low:
                continue
            if stride_height == 1 and stride_width == 1 and out_width == width:
                _unpack_shifted(source.reshape(-1), tap_row * dilation_height - padding_height, column_offset,
                                height, low, high, out_height, flat_plane)
                continue
            for p in range(out_height):
                h = p * stride_height - padding_height + tap_row * dilation_height
                if h < 0 or h >= height:
                    continue
                # Unsigned indices (see _pack_row): 4.4x faster than indexing the rows.
                source_row = source[p]
                if stride_width == 1:
                    target_row = plane[h]
                    first_target, first_source = np.uint64(low + column_offset), np.uint64(low)
                    for q in range(np.uint64(high - low)):
                        target_row[first_target + q] += source_row[first_source + q]
                else:
                    for q in range(low, high):
                        plane[h, q * stride_width + column_offset] += source_row[q]


# The products below go one image at a time through im2col matrices packed into `columns`, scratch that the
# caller allocates once per call: it stays in cache between its packing and its product and is never a fresh
# allocation. Packing the whole batch at once instead (58 MB for 64->64 3x3 on 8x56x56) took as long as the
# product itself; one image at a time made that forward 2.1x faster (26 ms against 55 ms, one thread). Products
# over several small images side by side (with a copy of their output gradients) measured no faster for 16->32
# 3x3 on 64x14x14 and slower for 3->16 3x3 on 64x32x32 (1.49 ms against 1.06 ms).
#
# The kernels are serial; the products run on BLAS's threads. Packing on Numba's threads between the products
# made the two pools spin against each other (forward + backward of 3->16 3x3 on 64x32x32 at 2 threads: 89 ms
# against 9.5 ms). Blocks of images over a prange, each thread calling BLAS for its own images, halved the
# small forwards at 2 threads (3->16 on 64x32x32: 0.52 ms against 1.00 ms), but the weight gradient's products
# called that way took 24x longer (16->32 3x3 on 64x14x14: 72 ms against 3.0 ms) and left the process slow.


@cpu_kernel
def _pack_image(source, kernel_height, kernel_width, stride_height, stride_width, padding_height, padding_width,
                dilation_height, dilation_width, columns):
    """One image (channels, height, width) packed into its im2col matrices columns (groups, K, out_height,
    out_width)."""
    groups, count = columns.shape[0], columns.shape[1]
    for row in range(groups * count):
        _pack_row(source, row, kernel_height, kernel_width, stride_height, stride_width, padding_height,
                  padding_width, dilation_height, dilation_width, columns[row // count, row % count])


@cpu_kernel
def conv_forward_gemm(image, weights, kernel_height, kernel_width, stride_height, stride_width, padding_height,
                      padding_width, dilation_height, dilation_width, columns, out):
    """out[n, g] = weights[g] @ im2col(image[n])[g]: a grouped convolution without bias, one image at a time.

    image: (batch, channels, height, width); weights: (groups, out_channels / groups, K), K = channels / groups *
    kernel_height * kernel_width; columns: scratch (groups, K, out_height, out_width); out: (batch, groups,
    out_channels / groups, out_height * out_width). All C-contiguous, one float dtype.
    """
    groups, rows, count = weights.shape
    positions = out.shape[3]
    for batch in range(image.shape[0]):
        _pack_image(image[batch], kernel_height, kernel_width, stride_height, stride_width, padding_height,
                    padding_width, dilation_height, dilation_width, columns)
        for group in range(groups):
            np.dot(weights[group], columns[group].reshape((count, positions)), out[batch, group])


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def conv_input_grad_gemm(grad_output, weights, kernel_height, kernel_width, stride_height, stride_width,
                         padding_height, padding_width, dilation_height, dilation_width, columns, out):
    """The gradient of `conv_forward_gemm` with respect to its image: per image, the columns weights[g]^T @
    grad_output[n, g], then each input plane gathers its entries of the columns (the adjoint of im2col), summed
    in a fixed order.

    grad_output: (batch, groups, out_channels / groups, out_height * out_width); weights, columns as in
    `conv_forward_gemm`; out: (batch, channels, height, width), overwritten.
    """
    groups, rows, count = weights.shape
    positions = grad_output.shape[3]
    for batch in range(out.shape[0]):
        for group in range(groups):
            np.dot(weights[group].T, grad_output[batch, group], columns[group].reshape((count, positions)))
        target = out[batch]
        for channel in range(out.shape[1]):
            _unpack_plane(columns, channel, kernel_height, kernel_width, stride_height, stride_width,
                          padding_height, padding_width, dilation_height, dilation_width, target[channel])


@cpu_kernel
def conv_weight_grad_gemm(image, grad_output, kernel_height, kernel_width, stride_height, stride_width,
                          padding_height, padding_width, dilation_height, dilation_width, columns, product, totals,
                          out):
    """The gradient of `conv_forward_gemm` with respect to its weights: out[g] = the sum over images n, in order,
    of grad_output[n, g] @ im2col(image[n])[g]^T.

    Each image's product is taken transposed, im2col(image[n])[g] @ grad_output[n, g]^T, summed in totals and
    transposed once at the end: BLAS ran that orientation faster (16->32 3x3 on 64x14x14: 1.63 ms against 2.34 ms
    for the 64 products; 64->64 3x3 on 8x56x56: 23.4 ms against 26.7 ms).

    image, columns as in `conv_forward_gemm`; grad_output: (batch, groups, out_channels / groups, out_height *
    out_width); product: scratch (K, out_channels / groups); totals: scratch (groups, K, out_channels / groups);
    out: (groups, out_channels / groups, K), overwritten.
    """
    groups, rows, count = out.shape
    positions = grad_output.shape[3]
    if image.shape[0] == 0:
        out[...] = 0
        return
    for batch in range(image.shape[0]):
        _pack_image(image[batch], kernel_height, kernel_width, stride_height, stride_width, padding_height,
                    padding_width, dilation_height, dilation_width, columns)
        for group in range(groups):
            matrix = columns[group].reshape((count, positions))
            if batch == 0:
                np.dot(matrix, grad_output[batch, group].T, totals[group])
            else:
                np.dot(matrix, grad_output[batch, group].T, product)
                totals[group] += product
    for group in range(groups):
        out[group] = totals[group].T


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def conv_depthwise_forward(image, weight, stride_height, stride_width, padding_height, padding_width,
                           dilation_height, dilation_width, out):
    """out[n, o, p, q] = sum over taps (i, j) of weight[o, i, j] * image[n, o // multiplier, p * stride_height -
    padding_height + i * dilation_height, q * stride_width - padding_width + j * dilation_width] (zero outside).

    A convolution with one input channel per group: output channel o reads input channel o // multiplier,
    multiplier = out_channels // channels. image: (batch, channels, height, width); weight: (out_channels,
    kernel_height, kernel_width); out: (batch, out_channels, out_height, out_width), C-contiguous.
    """
    kernel_height, kernel_width = weight.shape[1], weight.shape[2]
    out_channels = out.shape[1]
    multiplier = out_channels // image.shape[1]
    height, width = image.shape[2], image.shape[3]
    out_height, out_width = out.shape[2], out.shape[3]
    for plane_index in prange(out.shape[0] * out_channels):
        batch = plane_index // out_channels
        channel = plane_index % out_channels
        plane = out[batch, channel]
        source = image[batch, channel // multiplier]
        for p in range(out_height):
            for q in range(out_width):
                plane[p, q] = 0
        for tap_row in range(kernel_height):
            for tap_column in range(kernel_width):
                tap = weight[channel, tap_row, tap_column]
                column_offset = tap_column * dilation_width - padding_width
                low, high = _valid_range(column_offset, stride_width, width, out_width)
                for p in range(out_height):
                    h = p * stride_height - padding_height + tap_row * dilation_height
                    if h < 0 or h >= height or high <= low:
                        continue
                    if stride_width == 1:  # views indexed from 0: vectorized (see _unpack_plane)
                        target_row = plane[p, low:high]
                        source_row = source[h, low + column_offset:high + column_offset]
                        for q in range(target_row.shape[0]):
                            target_row[q] += tap * source_row[q]
                    else:
                        for q in range(low, high):
                            plane[p, q] += tap * source[h, q * stride_width + column_offset]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def conv_depthwise_input_grad(grad_output, weight, stride_height, stride_width, padding_height, padding_width,
                              dilation_height, dilation_width, out):
    """The gradient of `conv_depthwise_forward` with respect to its image: out[n, c, h, w] = the sum of
    weight[o, i, j] * grad_output[n, o, p, q] over the output channels o of channel c and the taps and
    positions that read (h, w).

    Each (n, c) plane belongs to one thread, filled in a fixed order. grad_output: (batch, out_channels,
    out_height, out_width); weight: (out_channels, kernel_height, kernel_width); out: (batch, channels, height,
    width), C-contiguous, overwritten.
    """
    kernel_height, kernel_width = weight.shape[1], weight.shape[2]
    channels = out.shape[1]
    multiplier = grad_output.shape[1] // channels
    height, width = out.shape[2], out.shape[3]
    out_height, out_width = grad_output.shape[2], grad_output.shape[3]
    for plane_index in prange(out.shape[0] * channels):
        batch = plane_index // channels
        channel = plane_index % channels
        plane = out[batch, channel]
        for h in range(height):
            for w in range(width):
                plane[h, w] = 0
        for out_channel in range(channel * multiplier, (channel + 1) * multiplier):
            source = grad_output[batch, out_channel]
            for tap_row in range(kernel_height):
                for tap_column in range(kernel_width):
                    tap = weight[out_channel, tap_row, tap_column]
                    column_offset = tap_column * dilation_width - padding_width
                    low, high = _valid_range(column_offset, stride_width, width, out_width)
                    for p in range(out_height):
                        h = p * stride_height - padding_height + tap_row * dilation_height
                        if h < 0 or h >= height or high <= low:
                            continue
                        if stride_width == 1:  # views indexed from 0: vectorized (see _unpack_plane)
                            target_row = plane[h, low + column_offset:high + column_offset]
                            source_row = source[p, low:high]
                            for q in range(target_row.shape[0]):
                                target_row[q] += tap * source_row[q]
                        else:
                            for q in range(low, high):
                                plane[h, q * stride_width + column_offset] += tap * source[p, q]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def conv_depthwise_weight_grad(image, grad_output, stride_height, stride_width, padding_height, padding_width,
                               dilation_height, dilation_width, out):
    """The gradient of `conv_depthwise_forward` with respect to its weight: out[o, i, j] = the sum over n, p, q
    of grad_output[n, o, p, q] * image[n, o // multiplier, p * stride_height - padding_height + i *
    dilation_height, q * stride_width - padding_width + j * dilation_width].

    Each weight element is one thread's sum, in a fixed order (n, p, q). image: (batch, channels, height,
    width); grad_output: (batch, out_channels, out_height, out_width); out: (out_channels, kernel_height,
    kernel_width), C-contiguous, overwritten.
    """
    kernel_height, kernel_width = out.shape[1], out.shape[2]
    taps = kernel_height * kernel_width
    multiplier = out.shape[0] // image.shape[1]
    height, width = image.shape[2], image.shape[3]
    out_height, out_width = grad_output.shape[2], grad_output.shape[3]
    for element in prange(out.shape[0] * taps):
        out_channel = element // taps
        tap_row = (element % taps) // kernel_width
        tap_column = element % kernel_width
        column_offset = tap_column * dilation_width - padding_width
        low, high = _valid_range(column_offset, stride_width, width, out_width)
        total = 0.0
        for batch in range(image.shape[0]):
            source = image[batch, out_channel // multiplier]
            gradient = grad_output[batch, out_channel]
            for p in range(out_height):
                h = p * stride_height - padding_height + tap_row * dilation_height
                if h < 0 or h >= height or high <= low:
                    continue
                if stride_width == 1:  # views indexed from 0: vectorized (see _unpack_plane)
                    gradient_row = gradient[p, low:high]
                    source_row = source[h, low + column_offset:high + column_offset]
                    for q in range(gradient_row.shape[0]):
                        total += gradient_row[q] * source_row[q]
                else:
                    for q in range(low, high):
                        total += gradient[p, q] * source[h, q * stride_width + column_offset]
        out[out_channel, tap_row, tap_column] = total


@parallel_cpu_kernel
def conv_bias_add(bias, out):
    """out[n, o, l] += bias[o]. bias: (out_channels,); out: (batch, out_channels, length), C-contiguous."""
    channels = out.shape[1]
    for row in prange(out.shape[0] * channels):
        value = bias[row % channels]
        target = out[row // channels, row % channels]
        for position in range(out.shape[2]):
            target[position] += value


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def conv_bias_grad(grad_output, out):
    """out[o] = the sum over n and l of grad_output[n, o, l]: each channel one thread's sum, in order (n, l).

    grad_output: (batch, out_channels, length); out: (out_channels,), overwritten.
    """
    for channel in prange(out.shape[0]):
        total = 0.0
        for batch in range(grad_output.shape[0]):
            row = grad_output[batch, channel]
            for position in range(row.shape[0]):
                total += row[position]
        out[channel] = total
