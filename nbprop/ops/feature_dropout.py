"""dropout2d: dropout of whole channels (PyTorch's feature dropout), one draw per (sample, channel)."""

import math
import numbers
import warnings

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops.inplace import in_place
from nbprop.random import generator
from nbprop.tensor import Tensor


class FeatureDropout(Function):
    @staticmethod
    def forward(ctx, input, p, scale):  # noqa: A002 - PyTorch's argument name
        device = DEVICES[input.device]
        planes = input.shape[0] * input.shape[1]
        x = device.reshape(device.contiguous(input._data), (planes, math.prod(input.shape[2:])))
        # One draw per plane, in the input's dtype, from the generator seeded by nbprop.manual_seed.
        uniform = device.uniform(generator, planes, input.dtype)
        ctx.uniform, ctx.p, ctx.scale = uniform, p, scale
        out = device.empty(x.shape, x.dtype)
        device.call("channel_dropout_apply", x, uniform, p, scale, out)
        return Tensor._make(device.reshape(out, input.shape), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        shape = grad_output.shape
        gradient = device.reshape(device.contiguous(grad_output._data), (shape[0] * shape[1], math.prod(shape[2:])))
        grad_input = device.empty(gradient.shape, gradient.dtype)
        device.call("channel_dropout_apply", gradient, ctx.uniform, ctx.p, ctx.scale, grad_input)
        return Tensor._make(device.reshape(grad_input, shape), None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return ChannelMask.apply(grad_output, ctx.uniform, ctx.p, ctx.scale), None, None


class ChannelMask(Function):
    """FeatureDropout's backward (the gradient times each plane's constant factor, scale or 0) as an op, so that
    it is recorded: the map is diagonal, so its gradient is the same map."""

    @staticmethod
    def forward(ctx, grad, uniform, p, scale):
        ctx.uniform, ctx.p, ctx.scale = uniform, p, scale
        return FeatureDropout.backward(ctx, grad)[0]

    @staticmethod
    def backward(ctx, grad_output):
        return ChannelMask.apply(grad_output, ctx.uniform, ctx.p, ctx.scale), None, None, None

    backward_graph = backward


def dropout2d(input, p=0.5, training=True, inplace=False):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.dropout2d: in training, zero each whole channel input[n, c] of (N, C, H, W) with
    probability p and scale the others by 1 / (1 - p); not training (or p == 0), the input itself.

    As in PyTorch, a 3-D input is read as (N, C, L) with a warning (not as an unbatched (C, H, W)), and other
    ranks (at least 2) warn and drop input[n, c] likewise. `inplace` writes the result into the input.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout2d: expects a Tensor, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will result "
                      f"in an error in a future release. To retain the behavior and silence this warning, please use "
                      f"dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      f"spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      f"inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior "
                      "will change in a future release to interpret the input as one without a batch dimension, i.e. "
                      "shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using "
                      "dropout1d instead.", stacklevel=2)
    if input.ndim < 2:
        raise RuntimeError(f"dropout2d: Feature dropout requires at least 2 dimensions in the input, got shape "
                           f"{tuple(input.shape)}")
    if not training or p == 0 or input.numel() == 0:
        return input
    if input.dtype.kind != "f":
        raise RuntimeError(f"dropout2d: expects a floating-point tensor, got {input.dtype}")
    # p == 1: every draw in [0, 1) is below p, so every channel is dropped and the scale is never used.
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    result = FeatureDropout.apply(input, float(p), scale)
    return in_place(input, result, "dropout2d_") if inplace else result
