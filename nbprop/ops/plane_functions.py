"""The plane-by-plane Functions of pooling and upsampling: PlaneFunction (a linear map and its adjoint), MaxPool.

Every op works on planes: the input, (N, C, *spatial) or unbatched (C, *spatial), is read as a C-contiguous
(planes, height, width) array (a 1-D op as height 1, as PyTorch computes it) and each kernel runs one plane
per work item, forward and backward, so gradients are summed in a fixed order.
"""

import math
import types

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.tensor import Tensor


def as_planes(input, spatial_dims, device):  # noqa: A002 - PyTorch's argument name
    """input's data as a C-contiguous (planes, height, width) array; 1 spatial dimension gives height 1."""
    spatial = tuple(input.shape[input.ndim - spatial_dims:])
    planes = math.prod(input.shape[:input.ndim - spatial_dims])
    data = device.contiguous(input._data)
    return device.reshape(data, (planes,) + ((1,) + spatial if spatial_dims == 1 else spatial))


def gradient_planes(grad_output, shape, dtype, device):
    """grad_output's data in `dtype` as a C-contiguous array of `shape` (the output's planes)."""
    data = grad_output._data
    data = device.contiguous(data) if data.dtype == dtype else device.astype(data, dtype)
    return device.reshape(data, shape)


class PlaneFunction(Function):
    """A map linear in its input, applied plane by plane: `forward_kernel(x, *arguments, out)` computes it and
    `backward_kernel(grad_output, *arguments, grad_input)` its adjoint (average pooling, upsampling)."""

    @staticmethod
    def forward(ctx, input, kernels, arguments, spatial_dims, out_spatial):  # noqa: A002 - PyTorch's argument name
        device = DEVICES[input.device]
        x = as_planes(input, spatial_dims, device)
        out = device.empty((x.shape[0],) + ((1,) + out_spatial if spatial_dims == 1 else out_spatial), x.dtype)
        device.call(kernels[0], x, *arguments, out, work=max(x.size, out.size))
        ctx.kernels, ctx.arguments, ctx.input_shape = kernels, arguments, input.shape
        ctx.planes_shape, ctx.out_planes_shape = x.shape, out.shape
        ctx.spatial_dims, ctx.out_spatial = spatial_dims, out_spatial
        result_shape = tuple(input.shape[:input.ndim - spatial_dims]) + out_spatial
        return Tensor._make(device.reshape(out, result_shape), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        gradient = gradient_planes(grad_output, ctx.out_planes_shape, grad_output.dtype, device)
        grad_input = device.empty(ctx.planes_shape, gradient.dtype)
        device.call(ctx.kernels[1], gradient, *ctx.arguments, grad_input, work=max(gradient.size, grad_input.size))
        return (Tensor._make(device.reshape(grad_input, ctx.input_shape), None, grad_output.device),
                None, None, None, None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        # A plain record of the geometry, not ctx itself: the recorded graph should not hold this node's edges.
        geometry = types.SimpleNamespace(kernels=ctx.kernels, arguments=ctx.arguments, input_shape=ctx.input_shape,
                                         planes_shape=ctx.planes_shape, out_planes_shape=ctx.out_planes_shape,
                                         spatial_dims=ctx.spatial_dims, out_spatial=ctx.out_spatial)
        return PlaneAdjoint.apply(grad_output, geometry), None, None, None, None


class PlaneAdjoint(Function):
    """A PlaneFunction's backward kernel as an op, so that a backward pass through it is recorded: the map is
    linear, so its gradient is that PlaneFunction again. `geometry` holds the PlaneFunction's kernels,
    arguments and shapes."""

    @staticmethod
    def forward(ctx, grad, geometry):
        ctx.geometry = geometry
        return PlaneFunction.backward(geometry, grad)[0]

    @staticmethod
    def backward(ctx, grad_output):
        geometry = ctx.geometry
        return PlaneFunction.apply(grad_output, geometry.kernels, geometry.arguments, geometry.spatial_dims,
                                   geometry.out_spatial), None

    backward_graph = backward


class MaxPool(Function):
    """Max pooling (fixed or adaptive windows) with its indices; backward sends each gradient to its index.

    `indices` is an empty int64 tensor of the output's shape that the forward fills: made by the caller, so
    that the op has one differentiable output (no zero gradient is made for the indices in backward) and the
    caller can return it. It is saved for backward, so changing it in place makes backward raise."""

    @staticmethod
    def forward(ctx, input, indices, kernel, arguments, spatial_dims, op, empty=None):  # noqa: A002
        device = DEVICES[input.device]
        x = as_planes(input, spatial_dims, device)
        out_spatial = tuple(indices.shape[indices.ndim - spatial_dims:])
        planes_out = (x.shape[0],) + ((1,) + out_spatial if spatial_dims == 1 else out_spatial)
        out = device.empty(planes_out, x.dtype)
        device.call(kernel, x, *arguments, out, device.reshape(indices._data, planes_out),
                    work=max(x.size, out.size))
        ctx.save_for_backward(indices)
        ctx.planes_shape, ctx.input_shape, ctx.op, ctx.empty, ctx.grid = x.shape, input.shape, op, empty, planes_out
        return Tensor._make(device.reshape(out, indices.shape), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        planes, height, width = ctx.planes_shape
        outputs = indices.numel() // planes if planes else 0
        gradient = gradient_planes(grad_output, (planes, outputs), grad_output.dtype, device)
        grad_input = device.empty((planes, height * width), gradient.dtype)
        found = device.empty((2,), dtypes.int64)
        positions = device.reshape(device.contiguous(indices._data), (planes, outputs))
        if ctx.empty is not None:
            # A window of padding only (dilation can make one) has PyTorch's index, which may lie outside the
            # plane or in another window: its output (-inf) depends on no input, so it sends a zero gradient to
            # position 0 instead.
            gradient, positions = device.copy(gradient), device.copy(positions)
            for array in (gradient, positions):
                grid = device.reshape(array, ctx.grid)
                for row in ctx.empty[0]:
                    device.write_region(grid, (slice(None), row), 0)
                for column in ctx.empty[1]:
                    device.write_region(grid, (slice(None), slice(None), column), 0)
        device.call("max_pool_backward", gradient, positions, found, grad_input, work=max(gradient.size,
                                                                                        grad_input.size))
        if device.read_status(found) >= 0:
            raise IndexError(f"{ctx.op} backward: index {device.read_status(found, 1)} out of bounds for an input "
                             f"plane of {height * width} elements (input shape {tuple(ctx.input_shape)}); the indices "
                             f"were changed after the forward")
        return (Tensor._make(device.reshape(grad_input, ctx.input_shape), None, grad_output.device),
                None, None, None, None, None, None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        geometry = types.SimpleNamespace(planes_shape=ctx.planes_shape, input_shape=ctx.input_shape, op=ctx.op,
                                         empty=ctx.empty, grid=ctx.grid)
        return (MaxPoolScatter.apply(grad_output, indices, geometry),) + (None,) * 6


class MaxPoolScatter(Function):
    """MaxPool's backward (each gradient added at its saved index) as an op, so that it is recorded: its
    gradient is MaxPoolGather by the same indices, which are saved, so changing them in place makes it raise.
    `geometry` holds the MaxPool's shapes, op name and windows of padding only."""

    @staticmethod
    def forward(ctx, grad, indices, geometry):
        ctx.save_for_backward(indices)
        ctx.geometry = geometry
        return MaxPool.backward(types.SimpleNamespace(saved_tensors=(indices,), **vars(geometry)), grad)[0]

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        return MaxPoolGather.apply(grad_output, indices, ctx.geometry), None, None

    backward_graph = backward


class MaxPoolGather(Function):
    """The adjoint of MaxPoolScatter: output k of each plane reads the input gradient at indices[k] (0 for a
    window of padding only, which MaxPool's backward skips); its gradient is MaxPoolScatter again."""

    @staticmethod
    def forward(ctx, grad_input, indices, geometry):
        ctx.save_for_backward(indices)
        ctx.geometry = geometry
        device = DEVICES[grad_input.device]
        planes, height, width = geometry.planes_shape
        outputs = indices.numel() // planes if planes else 0
        source = gradient_planes(grad_input, (planes, height * width), grad_input.dtype, device)
        positions = device.reshape(device.contiguous(indices._data), (planes, outputs))
        if geometry.empty is not None:
            # As in MaxPool.backward: the index of a window of padding only may lie outside the plane.
            positions = _zero_empty_windows(device, device.copy(positions), geometry)
        out = device.empty((planes, outputs), source.dtype)
        found = device.empty((2,), dtypes.int64)
        device.call("max_pool_gather", source, positions, found, out, work=max(source.size, out.size))
        if device.read_status(found) >= 0:
            raise IndexError(f"{geometry.op} double backward: index {device.read_status(found, 1)} out of bounds for "
                             f"an input plane of {height * width} elements (input shape "
                             f"{tuple(geometry.input_shape)}); the indices were changed after the forward")
        if geometry.empty is not None:
            out = _zero_empty_windows(device, out, geometry)
        return Tensor._make(device.reshape(out, indices.shape), None, grad_input.device)

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        return MaxPoolScatter.apply(grad_output, indices, ctx.geometry), None, None

    backward_graph = backward


def _zero_empty_windows(device, array, geometry):
    """array, a (planes, outputs) array of MaxPool's output grid, with the windows of padding only set to 0."""
    grid = device.reshape(array, geometry.grid)
    for row in geometry.empty[0]:
        device.write_region(grid, (slice(None), row), 0)
    for column in geometry.empty[1]:
        device.write_region(grid, (slice(None), slice(None), column), 0)
    return array
