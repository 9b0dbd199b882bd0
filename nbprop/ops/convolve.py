"""The convolution on device arrays, as the Functions of ops/conv.py run it: its Geometry, the products of
its forward, input gradient and weight gradient, and its bias kernels.

A 1-D convolution runs as a 2-D one of height 1. General convolutions pack each image's im2col matrices and
multiply them by BLAS, one image at a time, writing the output in its channels-first layout with no copy
(kernels/conv.py says why); pointwise ones (1x1, stride 1, no padding) are batched products of the input as it
is; convolutions with one input channel per group (depthwise) run direct loops. No kernel adds into memory
another thread writes, so every result is deterministic.
"""

import functools

import numpy as np

from nbprop.backend import DEVICES
from nbprop.ops.matmul import batched_product_work


class Geometry:
    """One convolution as the kernels see it: an image of `input_shape` (batch, channels, height, width) gives
    an output of `output_shape` (batch, out_channels, out_height, out_width) through a weight (out_channels,
    channels // groups, *kernel); `steps` are the kernels' (stride_height, stride_width, padding_height,
    padding_width, dilation_height, dilation_width), the padding being what lies before the first input
    position. A transposed convolution keeps the geometry of the convolution it is the adjoint of."""

    __slots__ = ("input_shape", "output_shape", "kernel", "groups", "steps")

    def __init__(self, input_shape, output_shape, kernel, stride, padding, dilation, groups):
        self.input_shape, self.output_shape = input_shape, output_shape
        self.kernel, self.groups = kernel, groups
        self.steps = (stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1])

    @property
    def depthwise(self):
        """One input channel per group, several groups: direct loops, where products of one-row matrices would
        waste BLAS. A single channel in one group (a network's first layer on grey images) takes the products:
        for 1->16 3x3 on 64x1x28x28 the direct loops took 1.65 ms forward and 2.56 ms for the weight gradient,
        the products with their packing 0.4 and 0.5 ms (one thread)."""
        return self.input_shape[1] == self.groups > 1

    @property
    def pointwise(self):
        """A 1x1 convolution with stride 1 and no padding: the image is its own im2col columns."""
        return (self.kernel == (1, 1) and self.steps[:4] == (1, 1, 0, 0)
                and self.input_shape[2:] == self.output_shape[2:])

    def product_shapes(self):
        """(batch, out_channels per group, K = channels per group * kernel taps, L = output positions): per
        batch entry and group the product is (out_channels / groups, K) @ (K, L)."""
        batch, channels = self.input_shape[:2]
        return (batch, self.output_shape[1] // self.groups, channels // self.groups * self.kernel[0] * self.kernel[1],
                self.output_shape[2] * self.output_shape[3])


@functools.lru_cache(maxsize=64)
def _product_indices(device, count, groups):
    """For the batched products of a pointwise convolution, one per (batch entry, group) pair, `count` of them:
    the group of each (which weight matrix it reads) and its own index, as int64 arrays on `device` (a name)
    that no kernel writes."""
    target = DEVICES[device]
    return (target.asarray([index % groups for index in range(count)], np.int64),
            target.arange(0, count, 1, np.int64))


def _taps(geometry):
    return geometry.kernel[0] * geometry.kernel[1]


def _columns(device, geometry, dtype):
    """One image's im2col matrices, (groups, K, out_height, out_width): the products' scratch, reused image after
    image (see kernels/conv.py)."""
    _, _, columns_count, _ = geometry.product_shapes()
    return device.empty((geometry.groups, columns_count) + geometry.output_shape[2:], dtype)


def _grouped(device, array, geometry):
    """An output-shaped array as (batch, groups, out_channels / groups, out_height * out_width) (a view)."""
    batch, rows, _, positions = geometry.product_shapes()
    return device.reshape(array, (batch, geometry.groups, rows, positions))


def convolve(device, image, weight, geometry):
    """The convolution of a C-contiguous image (geometry.input_shape) by a C-contiguous weight, without bias."""
    out = device.empty(geometry.output_shape, image.dtype)
    batch, rows, columns_count, positions = geometry.product_shapes()
    groups = geometry.groups
    weights = device.reshape(weight, (groups, rows, columns_count))
    if geometry.depthwise:
        device.call("conv_depthwise_forward", image, device.reshape(weight, (-1,) + geometry.kernel),
                    *geometry.steps, out, work=out.size * _taps(geometry))
    elif geometry.pointwise:
        # The image is its own im2col matrix: one product per batch entry and group, written in place.
        group_index, index = _product_indices(device.name, batch * groups, groups)
        device.call("matmul_batched", weights, device.reshape(image, (batch * groups, columns_count, positions)),
                    group_index, index, False, False, device.reshape(out, (batch * groups, rows, positions)),
                    work=batched_product_work(batch * groups, rows, positions, columns_count))
    else:
        device.call("conv_forward_gemm", image, weights, *geometry.kernel, *geometry.steps,
                    _columns(device, geometry, image.dtype), _grouped(device, out, geometry))
    return out


def convolve_input_grad(device, grad, weight, geometry):
    """The gradient of the convolution's image, geometry.input_shape, from the C-contiguous gradient of its
    output."""
    out = device.empty(geometry.input_shape, grad.dtype)
    batch, rows, columns_count, positions = geometry.product_shapes()
    groups = geometry.groups
    weights = device.reshape(weight, (groups, rows, columns_count))
    if geometry.depthwise:
        device.call("conv_depthwise_input_grad", grad, device.reshape(weight, (-1,) + geometry.kernel),
                    *geometry.steps, out, work=grad.size * _taps(geometry))
    elif geometry.pointwise:
        group_index, index = _product_indices(device.name, batch * groups, groups)
        device.call("matmul_batched", weights, device.reshape(grad, (batch * groups, rows, positions)), group_index,
                    index, True, False, device.reshape(out, (batch * groups, columns_count, positions)),
                    work=batched_product_work(batch * groups, columns_count, positions, rows))
    else:
        device.call("conv_input_grad_gemm", _grouped(device, grad, geometry), weights, *geometry.kernel,
                    *geometry.steps, _columns(device, geometry, grad.dtype), out)
    return out


def convolve_weight_grad(device, image, grad, geometry):
    """The gradient of the convolution's weight, (out_channels, channels // groups, *kernel), from the
    C-contiguous image and output gradient: per group, the sum over the batch, in order, of grad @ columns^T."""
    batch, rows, columns_count, positions = geometry.product_shapes()
    groups = geometry.groups
    out = device.empty((geometry.output_shape[1], geometry.input_shape[1] // groups) + geometry.kernel, grad.dtype)
    weights = device.reshape(out, (groups, rows, columns_count))
    if geometry.depthwise:
        device.call("conv_depthwise_weight_grad", image, grad, *geometry.steps,
                    device.reshape(out, (-1,) + geometry.kernel), work=grad.size * _taps(geometry))
    elif geometry.pointwise:
        group_index, index = _product_indices(device.name, batch * groups, groups)
        device.call("matmul_batched_sum", device.reshape(grad, (batch * groups, rows, positions)),
                    device.reshape(image, (batch * groups, columns_count, positions)), index, index, group_index,
                    False, True, device.empty((rows, columns_count), grad.dtype), weights,
                    work=batched_product_work(batch * groups, rows, columns_count, positions))
    else:
        device.call("conv_weight_grad_gemm", image, _grouped(device, grad, geometry), *geometry.kernel,
                    *geometry.steps, _columns(device, geometry, grad.dtype),
                    device.empty((columns_count, rows), grad.dtype),
                    device.empty((groups, columns_count, rows), grad.dtype), weights)
    return out


# The bias kernels run serially (work=0) whatever their size: they sit between BLAS products, and Numba's
# threads started there spun against BLAS's (64->64 3x3 on 8x56x56, forward + backward at 2 threads: 48-95 ms
# with threaded bias kernels, 41-42 ms serial).


def add_bias(device, bias, out):
    """out (batch, channels, ...) += the bias tensor's value per channel, in place."""
    device.call("conv_bias_add", device.contiguous(bias._data), device.reshape(out, out.shape[:2] + (-1,)), work=0)


def bias_grad(device, grad):
    """The bias gradient: the C-contiguous output gradient (batch, channels, ...) summed over all but channels."""
    out = device.empty((grad.shape[1],), grad.dtype)
    device.call("conv_bias_grad", device.reshape(grad, grad.shape[:2] + (-1,)), out, work=0)
    return out


def as_image(device, tensor, shape):
    """A tensor's data as a C-contiguous array of the kernels' 4-D `shape` (a view where possible)."""
    return device.reshape(device.contiguous(tensor._data), shape)
