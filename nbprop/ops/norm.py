"""torch.nn.functional's normalisations layer_norm, rms_norm, group_norm (fused kernels/norm.py), and the helpers
they share with batch_norm (batch_norm.py).

Each op is one Function: the forward computes the statistics and the normalised output in fused kernels
and keeps the statistics (float64) for the backward, which is one fused pass for the input gradient plus
deterministic per-chunk sums for the weight and bias gradients. With create_graph=True each backward_graph
writes the same gradients in recorded ops, recomputing the statistics from the input.
"""

import math
import numbers

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement
from nbprop.tensor import Tensor

# Layer/RMS norm backward: the rows are cut into at most this many chunks, each summing its rows' weight
# gradient terms into its own buffer. Fixed by the row count only, never by the thread count, so the
# summation order (and every bit of the result) is the same on any machine.
_WEIGHT_GRADIENT_CHUNKS = 64
# Float32 layer norm sums its chunks in float32 (half the traffic of float64 buffers): then chunks hold at
# most this many rows, so that each float32 sum stays within ~16 * 2^-24 of exact; sum_partials adds the
# chunks up in float64.
_FLOAT32_ROWS_PER_CHUNK = 16


def check_input(input, op, min_dims=0):  # noqa: A002 - PyTorch's argument name
    """Raise unless `input` is a floating point tensor of at least `min_dims` dimensions."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expects a floating point input, got {input.dtype}; convert with .float() first")
    if input.ndim < min_dims:
        raise ValueError(f"{op}: expects an input with at least {min_dims} dimensions (N, C, *), got shape "
                         f"{tuple(input.shape)}")


def check_vector(tensor, name, shape, input, op):  # noqa: A002 - PyTorch's argument name
    """Raise unless `tensor` is None or a tensor of `shape` and input's dtype (PyTorch requires both)."""
    if tensor is None:
        return
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(tensor).__name__}")
    if tuple(tensor.shape) != tuple(shape):
        raise RuntimeError(f"{op}: expected {name} of shape {tuple(shape)} for an input of shape "
                           f"{tuple(input.shape)}, got {tuple(tensor.shape)}")
    if tensor.dtype != input.dtype:
        raise RuntimeError(f"{op}: expected {name} of dtype {input.dtype} like the input, got {tensor.dtype}")


def array_of(tensor, shape, fill, dtype, device):
    """The tensor's data as a C-contiguous array of `shape`, or `fill` everywhere when the tensor is None."""
    if tensor is None:
        return device.full(shape, fill, dtype)
    array = device.contiguous(tensor._data)
    return array if array.shape == shape else device.reshape(array, shape)


def wrap(array, shape, device):
    """`array` in `shape`, as a tensor on `device` (a name)."""
    return Tensor._make(array if array.shape == shape else DEVICES[device].reshape(array, shape), None, device)


def gradient_like(grad_output, x, device):
    """grad_output's data in x's dtype and shape, C-contiguous, as the backward kernels read it."""
    data = grad_output._data
    data = device.contiguous(data) if data.dtype == x.dtype else device.astype(data, x.dtype)
    return data if data.shape == x.shape else device.reshape(data, x.shape)


def finish_forward(ctx, input, weight, statistics, out):  # noqa: A002 - PyTorch's argument name
    """Keep what every backward reads (input, weight, the statistics) and return `out` in input's shape."""
    ctx.save_for_backward(input, weight)
    ctx.statistics = statistics
    return wrap(out, input.shape, input.device)


def _summed_partials(needed, partial, shape, dtype, device, grad_device):
    """A weight or bias gradient of `shape`: the column sums of `partial` (chunks, n) in chunk order, so
    the same on any thread count; None when not `needed`."""
    if not needed:
        return None
    gradient = device.empty((partial.shape[1],), np.float64)  # summed in float64, rounded to dtype once
    device.call("sum_partials", partial, gradient)
    return wrap(gradient if dtype == np.float64 else device.astype(gradient, dtype), shape, grad_device)


def _input_gradient(ctx, out, input, grad_output):  # noqa: A002 - PyTorch's argument name
    """The input gradient computed into `out`, in input's shape, or None when the input needs none."""
    return wrap(out, input.shape, grad_output.device) if ctx.needs_input_grad[0] else None


# ------------------------------------------------------------------ recorded backward (create_graph=True)


def recorded_normalized(x, dims, eps):
    """(x - mean) * rstd and rstd = 1 / sqrt(biased variance + eps) over `dims`, recorded from x: the forward's
    statistics depend on the input but are constants to the tape, so a recorded backward recomputes them."""
    centered = x - x.mean(dims, keepdim=True)
    rstd = ((centered * centered).mean(dims, keepdim=True) + eps) ** -0.5
    return centered * rstd, rstd


def normalized_input_gradient(scaled, normalized, rstd, dims):
    """d loss / d x of a normalisation over `dims`, recorded, from scaled = grad_output * weight:
    rstd * (scaled - mean(scaled) - normalized * mean(scaled * normalized))."""
    return rstd * (scaled - scaled.mean(dims, keepdim=True)
                   - normalized * (scaled * normalized).mean(dims, keepdim=True))


def scaled_by_weight(grad_output, weight, shape):
    """grad_output times the weight (seen in `shape`, to broadcast), or grad_output itself without one."""
    return grad_output if weight is None else grad_output * movement.reshape(weight, shape)


def affine_gradients(ctx, grad_output, normalized, dims, shape):
    """The recorded gradients of inputs 1 and 2, weight and bias: sum(dy * normalized) and sum(dy) over `dims`
    in `shape` (None where not needed)."""
    needs = ctx.needs_input_grad
    return ((movement.reshape((grad_output * normalized).sum(dims), shape) if needs[1] else None),
            (movement.reshape(grad_output.sum(dims), shape) if needs[2] else None))


# --------------------------------------------------------------------------------- layer and RMS norm


def _normalized_shape(normalized_shape, input, op):  # noqa: A002 - PyTorch's argument name
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(int(size) for size in normalized_shape)
    count = len(normalized_shape)
    if count == 0 or input.ndim < count or tuple(input.shape[input.ndim - count:]) != normalized_shape:
        raise RuntimeError(f"{op}: Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(str(size) for size in normalized_shape)}], but got input of size "
                           f"{list(input.shape)}")
    return normalized_shape


def _chunks(rows):
    return min(rows, _WEIGHT_GRADIENT_CHUNKS)


def _layer_norm_partials(rows, length, dtype, device):
    """The per-chunk weight and bias gradient buffers of a layer norm backward (the kernel zeroes them):
    float64 for float64 data; float32 chunks of at most _FLOAT32_ROWS_PER_CHUNK rows for float32 data."""
    if dtype == np.float64:
        chunks = _chunks(rows)
    else:
        chunks = max(_chunks(rows), -(-rows // _FLOAT32_ROWS_PER_CHUNK))
    return device.empty((chunks, length), dtype), device.empty((chunks, length), dtype)


def _rows(input, length, device):  # noqa: A002 - PyTorch's argument name
    """The input as (rows, length), `length` the size of the normalised trailing dimensions ((0, 0) if 0)."""
    if not length:
        return device.reshape(input._data, (0, 0))
    array = device.contiguous(input._data)
    return array if array.ndim == 2 and array.shape[1] == length else device.reshape(array, (-1, length))


def _recorded_rows(input, grad_output, normalized_shape):  # noqa: A002 - PyTorch's argument name
    """The input and grad_output as recorded (rows, length) tensors, length the normalised size."""
    shape = (math.prod(input.shape[:input.ndim - len(normalized_shape)]), math.prod(normalized_shape))
    return movement.reshape(input, shape), movement.reshape(grad_output, shape)


def _row_operands(ctx, grad_output):
    """What a layer or RMS norm backward reads: the saved input and weight, the device, and x and dy as
    (rows, length)."""
    input, weight = ctx.saved_tensors  # noqa: A001 - PyTorch's argument name
    device = DEVICES[grad_output.device]
    x = _rows(input, math.prod(ctx.normalized_shape), device)
    return input, weight, device, x, gradient_like(grad_output, x, device)


class LayerNorm(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, normalized_shape, eps):  # noqa: A002
        device = DEVICES[input.device]
        length = math.prod(normalized_shape)
        x = _rows(input, length, device)
        statistics = device.zeros((x.shape[0], 2), np.float64)
        out = device.empty(x.shape, x.dtype)
        weight_array = array_of(weight, (length,), 1, x.dtype, device)
        if x.size:
            device.call("layer_norm_forward", x, weight_array, array_of(bias, (length,), 0, x.dtype, device),
                        float(eps), statistics, out, work=x.size)
        ctx.normalized_shape, ctx.eps = normalized_shape, eps
        return finish_forward(ctx, input, weight, statistics, out)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, device, x, dy = _row_operands(ctx, grad_output)  # noqa: A001
        length = x.shape[1]
        out = device.empty(x.shape, x.dtype)
        partial_weight, partial_bias = _layer_norm_partials(x.shape[0], length, x.dtype, device)
        if x.size:
            device.call("layer_norm_backward", dy, x, ctx.statistics, array_of(weight, (length,), 1, x.dtype, device),
                        out, partial_weight, partial_bias, work=x.size)
        need_weight, need_bias = ctx.needs_input_grad[1:3]
        return (_input_gradient(ctx, out, input, grad_output),
                _summed_partials(need_weight, partial_weight, ctx.normalized_shape, x.dtype, device,
                                 grad_output.device),
                _summed_partials(need_bias, partial_bias, ctx.normalized_shape, x.dtype, device,
                                 grad_output.device),
                None, None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        x, dy = _recorded_rows(input, grad_output, ctx.normalized_shape)
        normalized, rstd = recorded_normalized(x, 1, ctx.eps)
        grad_input = None
        if ctx.needs_input_grad[0]:
            scaled = scaled_by_weight(dy, weight, (x.shape[1],))
            grad_input = movement.reshape(normalized_input_gradient(scaled, normalized, rstd, 1), input.shape)
        return (grad_input, *affine_gradients(ctx, dy, normalized, 0, ctx.normalized_shape), None, None)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise over the last len(normalized_shape) dimensions (which must equal normalized_shape):
    (x - mean) / sqrt(biased variance + eps) * weight + bias, weight and bias of normalized_shape."""
    check_input(input, "layer_norm")
    normalized_shape = _normalized_shape(normalized_shape, input, "layer_norm")
    check_vector(weight, "weight", normalized_shape, input, "layer_norm")
    check_vector(bias, "bias", normalized_shape, input, "layer_norm")
    return LayerNorm.apply(input, weight, bias, normalized_shape, eps)


class RmsNorm(Function):
    @staticmethod
    def forward(ctx, input, weight, normalized_shape, eps):  # noqa: A002
        device = DEVICES[input.device]
        length = math.prod(normalized_shape)
        x = _rows(input, length, device)
        statistics = device.zeros((x.shape[0],), np.float64)
        out = device.empty(x.shape, x.dtype)
        if x.size:
            device.call("rms_norm_forward", x, array_of(weight, (length,), 1, x.dtype, device), float(eps),
                        statistics, out, work=x.size)
        ctx.normalized_shape, ctx.eps = normalized_shape, eps
        return finish_forward(ctx, input, weight, statistics, out)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, device, x, dy = _row_operands(ctx, grad_output)  # noqa: A001
        length = x.shape[1]
        out = device.empty(x.shape, x.dtype)
        partial_weight = device.zeros((_chunks(x.shape[0]), length), np.float64)
        if x.size:
            device.call("rms_norm_backward", dy, x, ctx.statistics, array_of(weight, (length,), 1, x.dtype, device),
                        out, partial_weight, work=x.size)
        return (_input_gradient(ctx, out, input, grad_output),
                _summed_partials(ctx.needs_input_grad[1], partial_weight, ctx.normalized_shape, x.dtype, device,
                                 grad_output.device),
                None, None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        x, dy = _recorded_rows(input, grad_output, ctx.normalized_shape)
        rstd = ((x * x).mean(1, keepdim=True) + ctx.eps) ** -0.5
        normalized = x * rstd
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            scaled = scaled_by_weight(dy, weight, (x.shape[1],))
            grad_input = movement.reshape(rstd * (scaled - normalized * (scaled * normalized).mean(1, keepdim=True)),
                                          input.shape)
        if ctx.needs_input_grad[1]:
            grad_weight = movement.reshape((dy * normalized).sum(0), ctx.normalized_shape)
        return grad_input, grad_weight, None, None


def rms_norm(input, normalized_shape, weight=None, eps=None):  # noqa: A002
    """x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) dimensions; eps=None uses the
    machine epsilon of the input's dtype, as PyTorch."""
    check_input(input, "rms_norm")
    normalized_shape = _normalized_shape(normalized_shape, input, "rms_norm")
    check_vector(weight, "weight", normalized_shape, input, "rms_norm")
    eps = float(np.finfo(input.dtype).eps) if eps is None else float(eps)
    return RmsNorm.apply(input, weight, normalized_shape, eps)


# ---------------------------------------------------------------------------------------- group norm


class GroupNorm(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, num_groups, eps):  # noqa: A002
        device = DEVICES[input.device]
        samples, channels = input.shape[0], input.shape[1]
        per_group = channels // num_groups
        x = device.reshape(device.contiguous(input._data),
                           (samples * num_groups, per_group, math.prod(input.shape[2:])))
        statistics = device.zeros((x.shape[0], 2), np.float64)
        out = device.empty(x.shape, x.dtype)
        if x.size:
            device.call("group_norm_forward", x, array_of(weight, (num_groups, per_group), 1, x.dtype, device),
                        array_of(bias, (num_groups, per_group), 0, x.dtype, device), float(eps), statistics, out,
                        work=x.size)
        ctx.num_groups, ctx.eps = num_groups, eps
        return finish_forward(ctx, input, weight, statistics, out)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        device = DEVICES[grad_output.device]
        samples, channels = input.shape[0], input.shape[1]
        num_groups = ctx.num_groups
        per_group = channels // num_groups
        x = device.reshape(device.contiguous(input._data),
                           (samples * num_groups, per_group, math.prod(input.shape[2:])))
        dy = gradient_like(grad_output, x, device)
        out = device.empty(x.shape, x.dtype)
        partial_weight = device.zeros((x.shape[0], per_group), np.float64)
        partial_bias = device.zeros((x.shape[0], per_group), np.float64)
        if x.size:
            device.call("group_norm_backward", dy, x, ctx.statistics,
                        array_of(weight, (num_groups, per_group), 1, x.dtype, device), out, partial_weight,
                        partial_bias, work=x.size)
        need_weight, need_bias = ctx.needs_input_grad[1:3]
        # Each (sample, group) row holds its group's channels, so (samples, channels) lines the partials up
        # by channel.
        return (_input_gradient(ctx, out, input, grad_output),
                _summed_partials(need_weight, device.reshape(partial_weight, (samples, channels)), (channels,),
                                 x.dtype, device, grad_output.device),
                _summed_partials(need_bias, device.reshape(partial_bias, (samples, channels)), (channels,),
                                 x.dtype, device, grad_output.device),
                None, None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        input, weight = ctx.saved_tensors  # noqa: A001
        samples, channels, groups = input.shape[0], input.shape[1], ctx.num_groups
        by_channel = (samples, channels, math.prod(input.shape[2:]))
        by_group = (samples, groups, channels // groups * by_channel[2])
        normalized, rstd = recorded_normalized(movement.reshape(input, by_group), 2, ctx.eps)
        dy = movement.reshape(grad_output, by_channel)
        grad_input = None
        if ctx.needs_input_grad[0]:
            scaled = movement.reshape(scaled_by_weight(dy, weight, (channels, 1)), by_group)
            grad_input = movement.reshape(normalized_input_gradient(scaled, normalized, rstd, 2), input.shape)
        return (grad_input, *affine_gradients(ctx, dy, movement.reshape(normalized, by_channel), (0, 2), (channels,)),
                None, None)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Split the C channels of `input` (N, C, *) into num_groups groups and normalise each (sample, group)
    by its own mean and biased variance; then the per-channel affine weight and bias ((C,) each)."""
    check_input(input, "group_norm", 2)
    if not isinstance(num_groups, numbers.Integral) or isinstance(num_groups, bool) or num_groups <= 0:
        raise ValueError(f"group_norm: num_groups must be a positive int, got {num_groups!r}")
    channels = input.shape[1]
    if channels % num_groups:
        raise RuntimeError(f"group_norm: Expected number of channels in input to be divisible by num_groups, "
                           f"but got input of shape {list(input.shape)} and num_groups={num_groups}")
    check_vector(weight, "weight", (channels,), input, "group_norm")
    check_vector(bias, "bias", (channels,), input, "group_norm")
    return GroupNorm.apply(input, weight, bias, int(num_groups), eps)
