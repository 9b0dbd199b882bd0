"""torch.nn.functional.batch_norm: per-channel statistics over the batch, running statistics, fused kernels/norm.py.

The forward computes the channel statistics (float64) and the normalised output in fused kernels and keeps the
statistics for the backward: one fused pass for the input gradient after per-channel sums for the weight and bias
gradients. With create_graph=True backward_graph writes the same gradients in recorded ops (norm.py's helpers).
"""

import math
import numbers

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement
from nbprop.ops.norm import (
    affine_gradients,
    array_of,
    check_input,
    check_vector,
    finish_forward,
    gradient_like,
    normalized_input_gradient,
    recorded_normalized,
    scaled_by_weight,
    wrap,
)
from nbprop.tensor import Tensor


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, training, momentum, eps):  # noqa: A002
        device = DEVICES[input.device]
        samples, channels = input.shape[0], input.shape[1]
        x = device.reshape(device.contiguous(input._data), (samples, channels, math.prod(input.shape[2:])))
        mean, invstd = device.zeros((channels,), np.float64), device.zeros((channels,), np.float64)
        if not training:
            device.call("batch_norm_running_statistics", running_mean._data, running_var._data, float(eps), mean,
                        invstd)
        elif x.size:  # PyTorch leaves everything, the running statistics too, untouched for an empty batch
            variance = device.empty((channels,), np.float64)
            device.call("batch_norm_statistics", x, float(eps), mean, variance, invstd, work=x.size)
            if running_mean is not None:
                device.call("batch_norm_update_running", mean, variance, float(samples * x.shape[2]),
                            float(momentum), running_mean._data, running_var._data)
                running_mean._version_counter[0] += 1
                running_var._version_counter[0] += 1
        weight_array = array_of(weight, (channels,), 1, x.dtype, device)
        out = device.empty(x.shape, x.dtype)
        device.call("batch_norm_normalize", x, mean, invstd, weight_array,
                    array_of(bias, (channels,), 0, x.dtype, device), out, work=x.size)
        ctx.eps = eps
        return finish_forward(ctx, input, weight, (mean, invstd, bool(training)), out)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        mean, invstd, training = ctx.statistics
        device = DEVICES[grad_output.device]
        x = device.reshape(device.contiguous(input._data),
                           (input.shape[0], input.shape[1], math.prod(input.shape[2:])))
        dy = gradient_like(grad_output, x, device)
        channels = x.shape[1]
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        sum_dy = sum_dy_xmu = grad_weight = grad_bias = None
        if need_weight or need_bias or (need_input and training):
            sum_dy, sum_dy_xmu = device.empty((channels,), np.float64), device.empty((channels,), np.float64)
            grad_weight, grad_bias = device.empty((channels,), x.dtype), device.empty((channels,), x.dtype)
            device.call("batch_norm_backward_reduce", dy, x, mean, invstd, sum_dy, sum_dy_xmu, grad_weight,
                        grad_bias, work=x.size)
        grad_input = None
        if need_input:
            if sum_dy is None:  # eval mode: the kernel does not read the sums
                sum_dy = sum_dy_xmu = mean
            out = device.empty(x.shape, x.dtype)
            device.call("batch_norm_backward_input", dy, x, mean, invstd,
                        array_of(weight, (channels,), 1, x.dtype, device), sum_dy, sum_dy_xmu, training, out,
                        work=x.size)
            grad_input = wrap(out, input.shape, grad_output.device)
        return (grad_input,
                wrap(grad_weight, (channels,), grad_output.device) if need_weight else None,
                wrap(grad_bias, (channels,), grad_output.device) if need_bias else None,
                None, None, None, None, None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        mean, invstd, training = ctx.statistics
        samples, channels = input.shape[0], input.shape[1]
        shape = (samples, channels, math.prod(input.shape[2:]))
        x, dy = movement.reshape(input, shape), movement.reshape(grad_output, shape)
        if training:
            normalized, rstd = recorded_normalized(x, (0, 2), ctx.eps)
        else:  # the running statistics: constants to every input
            device = DEVICES[input.device]
            mean, rstd = (Tensor._make(device.reshape(array, (channels, 1)), None, input.device).to(x.dtype)
                          for array in (mean, invstd))
            normalized = (x - mean) * rstd
        grad_input = None
        if ctx.needs_input_grad[0]:
            scaled = scaled_by_weight(dy, weight, (channels, 1))
            grad_input = movement.reshape(normalized_input_gradient(scaled, normalized, rstd, (0, 2)) if training
                                          else scaled * rstd, input.shape)
        return (grad_input, *affine_gradients(ctx, dy, normalized, (0, 2), (channels,)), None, None, None, None,
                None)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,  # noqa: A002
               eps=1e-5):
    """Normalise each channel (dimension 1) of `input` (N, C, *) to zero mean and unit variance, then scale
    by `weight` and shift by `bias` ((C,) each, optional).

    training=True: the batch's statistics (biased variance) are used, and `running_mean`/`running_var` (if
    given) are updated in place: running = (1 - momentum) * running + momentum * statistic, with the
    unbiased variance, as PyTorch. training=False: the running statistics are used and must be given.
    """
    check_input(input, "batch_norm", 2)
    channels = input.shape[1]
    for tensor, name in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"),
                         (bias, "bias")):
        check_vector(tensor, name, (channels,), input, "batch_norm")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: running_mean and running_var must both be given or both be None")
    if not training and running_mean is None:
        raise RuntimeError("batch_norm: running_mean and running_var must be defined in evaluation mode "
                           "(training=False)")
    if training:
        values_per_channel = input.shape[0] * math.prod(input.shape[2:])
        if values_per_channel == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{tuple(input.shape)}")
        if running_mean is not None and (running_mean.requires_grad or running_var.requires_grad):
            raise RuntimeError("batch_norm: running_mean and running_var are updated in place and must not "
                               "require grad")
        if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool):
            raise TypeError(f"batch_norm: momentum must be a number, got {type(momentum).__name__}")
    return BatchNorm.apply(input, weight, bias, running_mean, running_var, bool(training), momentum, eps)
