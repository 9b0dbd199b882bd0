"""Convolutions (conv1d, conv2d) and transposed convolutions, with PyTorch's signatures, shape rules and errors.

Each is one Function whose forward and backward run the products of ops/convolve.py. A transposed convolution
is the adjoint of a convolution in its input: its forward is that convolution's input gradient, its input
gradient that convolution, and both share the convolution's weight gradient. The weight gradient is itself a
Function (ConvolutionWeightGrad), so that the three differentiate through each other to any order.
"""

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.conv_checks import (
    as_batched,
    as_four_d,
    as_sizes,
    check_groups,
    check_steps,
    check_tensors,
    resolve_padding,
    sizes_text,
)
from nbprop.ops.convolve import (
    Geometry,
    add_bias,
    as_image,
    bias_grad,
    convolve,
    convolve_input_grad,
    convolve_weight_grad,
)
from nbprop.tensor import Tensor


def _parameter_grads(ctx, device, grad, input, transposed, device_name):  # noqa: A002
    """(weight gradient, bias gradient) of a Convolution's or TransposedConvolution's backward, None where not
    needed, from the op's C-contiguous output gradient `grad` and its saved input. Both are the convolution's
    weight gradient: of the op's input and output gradient for a convolution; for a transposed one, its adjoint,
    the output gradient is the convolution's image and the input the convolution's output gradient."""
    geometry = ctx.geometry
    grad_weight = grad_bias = None
    if ctx.needs_input_grad[1]:
        if transposed:
            image, output_grad = grad, as_image(device, input, geometry.output_shape)
        else:
            image, output_grad = as_image(device, input, geometry.input_shape), grad
        grad_weight = convolve_weight_grad(device, image, output_grad, geometry)
        grad_weight = Tensor._make(device.reshape(grad_weight, ctx.weight_shape), None, device_name)
    if ctx.needs_input_grad[2]:
        grad_bias = Tensor._make(bias_grad(device, grad), None, device_name)
    return grad_weight, grad_bias


class Convolution(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, geometry):  # noqa: A002 - PyTorch's argument name
        device = DEVICES[input.device]
        out = convolve(device, as_image(device, input, geometry.input_shape), device.contiguous(weight._data), geometry)
        if bias is not None:
            add_bias(device, bias, out)
        ctx.geometry, ctx.input_shape, ctx.weight_shape = geometry, input.shape, weight.shape
        ctx.save_for_backward(input if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        shape = (input.shape[0], weight.shape[0]) + _spatial(geometry.output_shape, input.ndim)
        return Tensor._make(device.reshape(out, shape), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        geometry = ctx.geometry
        device = DEVICES[grad_output.device]
        grad = as_image(device, grad_output, geometry.output_shape)
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_input = convolve_input_grad(device, grad, device.contiguous(weight._data), geometry)
            grad_input = Tensor._make(device.reshape(grad_input, ctx.input_shape), None, grad_output.device)
        grad_weight, grad_bias = _parameter_grads(ctx, device, grad, input, False, grad_output.device)
        return grad_input, grad_weight, grad_bias, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # The same geometry throughout: the transposed convolution of the output gradient is the input's gradient
        # at the input's exact size (whatever stride, 'same' padding or output_padding left over).
        input, weight = ctx.saved_tensors  # noqa: A001
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = TransposedConvolution.apply(grad_output, weight, None, ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_weight = ConvolutionWeightGrad.apply(input, grad_output, ctx.geometry)
        if ctx.needs_input_grad[2]:
            grad_bias = _channel_sum(grad_output)
        return grad_input, grad_weight, grad_bias, None


class TransposedConvolution(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, geometry):  # noqa: A002
        device = DEVICES[input.device]
        out = convolve_input_grad(device, as_image(device, input, geometry.output_shape),
                                  device.contiguous(weight._data), geometry)
        if bias is not None:
            add_bias(device, bias, out)
        ctx.geometry, ctx.input_shape, ctx.weight_shape = geometry, input.shape, weight.shape
        ctx.save_for_backward(input if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        shape = (input.shape[0], out.shape[1]) + _spatial(geometry.input_shape, input.ndim)
        return Tensor._make(device.reshape(out, shape), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        geometry = ctx.geometry
        device = DEVICES[grad_output.device]
        grad = as_image(device, grad_output, geometry.input_shape)
        grad_input = None
        if ctx.needs_input_grad[0]:
            # The adjoint of the adjoint: the convolution itself.
            grad_input = convolve(device, grad, device.contiguous(weight._data), geometry)
            grad_input = Tensor._make(device.reshape(grad_input, ctx.input_shape), None, grad_output.device)
        grad_weight, grad_bias = _parameter_grads(ctx, device, grad, input, True, grad_output.device)
        return grad_input, grad_weight, grad_bias, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = Convolution.apply(grad_output, weight, None, ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_weight = ConvolutionWeightGrad.apply(grad_output, input, ctx.geometry)
        if ctx.needs_input_grad[2]:
            grad_bias = _channel_sum(grad_output)
        return grad_input, grad_weight, grad_bias, None


class ConvolutionWeightGrad(Function):
    """The weight gradient of a convolution of `geometry` as an op of its image and output gradient, for recorded
    backward passes. It is bilinear: <v, weight_grad(image, grad)> = <grad, convolution(image, v)> =
    <image, transposed_convolution(grad, v)>, so its own gradients are the two convolutions by v, and the three
    Functions differentiate through each other to any order."""

    @staticmethod
    def forward(ctx, image, grad, geometry):
        device = DEVICES[image.device]
        out = convolve_weight_grad(device, as_image(device, image, geometry.input_shape),
                                   as_image(device, grad, geometry.output_shape), geometry)
        ctx.geometry, ctx.image_shape, ctx.grad_shape = geometry, image.shape, grad.shape
        ctx.save_for_backward(image if ctx.needs_input_grad[1] else None, grad if ctx.needs_input_grad[0] else None)
        shape = out.shape[:2] + (geometry.kernel if image.ndim == 4 else geometry.kernel[1:])
        return Tensor._make(device.reshape(out, shape), None, image.device)

    @staticmethod
    def backward(ctx, grad_output):
        image, grad = ctx.saved_tensors
        geometry = ctx.geometry
        device = DEVICES[grad_output.device]
        weight = device.contiguous(grad_output._data)
        grad_image = grad_grad = None
        if ctx.needs_input_grad[0]:
            grad_image = convolve_input_grad(device, as_image(device, grad, geometry.output_shape), weight, geometry)
            grad_image = Tensor._make(device.reshape(grad_image, ctx.image_shape), None, grad_output.device)
        if ctx.needs_input_grad[1]:
            grad_grad = convolve(device, as_image(device, image, geometry.input_shape), weight, geometry)
            grad_grad = Tensor._make(device.reshape(grad_grad, ctx.grad_shape), None, grad_output.device)
        return grad_image, grad_grad, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        image, grad = ctx.saved_tensors
        grad_image = grad_grad = None
        if ctx.needs_input_grad[0]:
            grad_image = TransposedConvolution.apply(grad, grad_output, None, ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_grad = Convolution.apply(image, grad_output, None, ctx.geometry)
        return grad_image, grad_grad, None


def _channel_sum(grad_output):
    """The bias gradient of a recorded backward pass: the output gradient summed over all but the channels."""
    return grad_output.sum((0,) + tuple(range(2, grad_output.ndim)))


def _spatial(shape, ndim):
    """The spatial part of a kernels' 4-D shape as an op of `ndim` dimensions sees it (no height for 1-D)."""
    return shape[2:] if ndim == 4 else shape[3:]


# ------------------------------------------------------------------------------------------ functions


def _convolution(op, dims, input, weight, bias, stride, padding, dilation, groups):  # noqa: A002
    check_tensors(op, dims, input, weight, bias, False)
    stride = as_sizes(stride, dims, "stride", op)
    dilation = as_sizes(dilation, dims, "dilation", op)
    check_steps(op, stride, dilation, groups)
    kernel = weight.shape[2:]
    before, totals = resolve_padding(op, padding, dims, stride, dilation, kernel)
    check_groups(op, weight, groups)
    batched, added = as_batched(input, dims)
    if batched.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"{op}: given groups={groups}, weight of size {list(weight.shape)}, expected "
                           f"input{list(batched.shape)} to have {weight.shape[1] * groups} channels, but got "
                           f"{batched.shape[1]} channels instead")
    spatial = batched.shape[2:]
    padded = tuple(size + total for size, total in zip(spatial, totals))
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    if any(p < e for p, e in zip(padded, extent)):
        raise RuntimeError(f"{op}: calculated padded input size per channel: ({sizes_text(padded)}). Kernel size: "
                           f"({sizes_text(extent)}). Kernel size can't be greater than actual input size (input "
                           f"{list(input.shape)}, weight {list(weight.shape)})")
    out_spatial = tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))
    geometry = Geometry((batched.shape[0], batched.shape[1]) + as_four_d(spatial, dims, 1),
                        (batched.shape[0], weight.shape[0]) + as_four_d(out_spatial, dims, 1),
                        as_four_d(kernel, dims, 1), as_four_d(stride, dims, 1), as_four_d(before, dims, 0),
                        as_four_d(dilation, dims, 1), int(groups))
    result = Convolution.apply(batched, weight, bias, geometry)
    return result.squeeze(0) if added else result


def _convolution_transpose(op, dims, input, weight, bias, stride, padding, output_padding, groups,  # noqa: A002
                           dilation):
    check_tensors(op, dims, input, weight, bias, True)
    stride = as_sizes(stride, dims, "stride", op)
    dilation = as_sizes(dilation, dims, "dilation", op)
    check_steps(op, stride, dilation, groups)
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a tuple of {dims} ints (no 'same' or 'valid' for "
                        f"transposed convolutions), got {padding!r}")
    padding = as_sizes(padding, dims, "padding", op)
    output_padding = as_sizes(output_padding, dims, "output_padding", op)
    if any(p < 0 for p in padding):
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={list(padding)}")
    if any(p < 0 for p in output_padding):
        raise RuntimeError(f"{op}: negative output_padding is not supported, got output_padding="
                           f"{list(output_padding)}")
    if any(o >= s and o >= d for o, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError(f"{op}: output padding must be smaller than either stride or dilation, but got "
                           f"output_padding={list(output_padding)}, stride={list(stride)}, "
                           f"dilation={list(dilation)}")
    check_groups(op, weight, groups)
    batched, added = as_batched(input, dims)
    if batched.shape[1] != weight.shape[0]:
        raise RuntimeError(f"{op}: given transposed=1, weight of size {list(weight.shape)}, expected "
                           f"input{list(batched.shape)} to have {weight.shape[0]} channels, but got "
                           f"{batched.shape[1]} channels instead")
    out_channels = weight.shape[1] * groups
    if bias is not None and bias.shape != (out_channels,):
        raise RuntimeError(f"{op}: given transposed=1, weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {out_channels} elements, but got bias of size {list(bias.shape)} "
                           "instead")
    kernel = weight.shape[2:]
    spatial = batched.shape[2:]
    out_spatial = tuple((size - 1) * s - 2 * p + d * (k - 1) + o + 1
                        for size, s, p, d, k, o in zip(spatial, stride, padding, dilation, kernel, output_padding))
    if any(size <= 0 for size in out_spatial):
        raise RuntimeError(f"{op}: given input size per channel: ({sizes_text(spatial)}). Calculated output size "
                           f"per channel: ({sizes_text(out_spatial)}). Output size is too small")
    geometry = Geometry((batched.shape[0], out_channels) + as_four_d(out_spatial, dims, 1),
                        (batched.shape[0], weight.shape[0]) + as_four_d(spatial, dims, 1),
                        as_four_d(kernel, dims, 1), as_four_d(stride, dims, 1), as_four_d(padding, dims, 0),
                        as_four_d(dilation, dims, 1), int(groups))
    result = TransposedConvolution.apply(batched, weight, bias, geometry)
    return result.squeeze(0) if added else result


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """torch.nn.functional.conv1d: input (batch, in_channels, length) or unbatched (in_channels, length), weight
    (out_channels, in_channels / groups, kernel), bias (out_channels,); padding an int, a 1-tuple, 'valid' or
    'same' (stride 1 only)."""
    return _convolution("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """torch.nn.functional.conv2d: input (batch, in_channels, height, width) or unbatched (in_channels, height,
    width), weight (out_channels, in_channels / groups, kernel_height, kernel_width), bias (out_channels,);
    stride, padding, dilation an int or a pair; padding also 'valid' or 'same' (stride 1 only)."""
    return _convolution("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """torch.nn.functional.conv_transpose1d: input (batch, in_channels, length) or unbatched, weight
    (in_channels, out_channels / groups, kernel); output length (length - 1) * stride - 2 * padding +
    dilation * (kernel - 1) + output_padding + 1."""
    return _convolution_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding,
                                  groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """torch.nn.functional.conv_transpose2d: input (batch, in_channels, height, width) or unbatched, weight
    (in_channels, out_channels / groups, kernel_height, kernel_width); each output size (size - 1) * stride -
    2 * padding + dilation * (kernel - 1) + output_padding + 1."""
    return _convolution_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding,
                                  groups, dilation)

