"""Normalisation layers: BatchNorm1d/2d, LayerNorm, RMSNorm, GroupNorm with PyTorch's arguments and state dicts."""

import numbers

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.creation import resolve_device
from nbprop.grad_mode import no_grad
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from nbprop.ops import batch_norm, norm
from nbprop.tensor import Tensor


def _dtype(dtype):
    resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"normalisation layers need a floating point dtype, got {resolved}")
    return resolved


def _filled(shape, value, dtype, device):
    return Tensor._make(DEVICES[device].full(shape, value, dtype), None, device)


def _check_size(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{layer}: {name} must be a non-negative integer, got {value!r}")
    return int(value)


def _register_affine(layer, affine, bias, shape, dtype, device):
    """Register weight (ones) and bias (zeros) of `shape`, or None in their place, in PyTorch's order so the
    state dict keys match."""
    if affine:
        layer.weight = Parameter(_filled(shape, 1, dtype, device))
        if bias:
            layer.bias = Parameter(_filled(shape, 0, dtype, device))
        else:
            layer.register_parameter("bias", None)
    else:
        layer.register_parameter("weight", None)
        layer.register_parameter("bias", None)


def _reset_affine(layer, affine):
    """Weight back to ones and bias (where there is one) to zeros, when the layer is affine."""
    if affine:
        with no_grad():
            layer.weight.fill_(1)
            if layer.bias is not None:
                layer.bias.zero_()


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d: parameters weight/bias (C,), buffers running_mean,
    running_var (C,) and num_batches_tracked (an int64 scalar), PyTorch's names and order."""

    expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        layer = type(self).__name__
        device = resolve_device(device, layer)
        dtype = _dtype(dtype)
        self.num_features = _check_size(layer, "num_features", num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _register_affine(self, affine, bias, (self.num_features,), dtype, device)
        if track_running_stats:
            self.register_buffer("running_mean", _filled((self.num_features,), 0, dtype, device))
            self.register_buffer("running_var", _filled((self.num_features,), 1, dtype, device))
            self.register_buffer("num_batches_tracked", _filled((), 0, np.int64, device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self, self.affine)

    def _check_input_dim(self, input):  # noqa: A002 - PyTorch's argument name
        if not isinstance(input, Tensor):
            raise TypeError(f"{type(self).__name__}: expects a Tensor, got {type(input).__name__}")
        if input.ndim not in self.expected_dims:
            wanted = " or ".join(f"{dims}D" for dims in self.expected_dims)
            raise ValueError(f"{type(self).__name__}: expected {wanted} input (got {input.ndim}D input)")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels (dimension 1) but got "
                             f"input of shape {tuple(input.shape)}")

    def forward(self, input):  # noqa: A002
        """Training: batch statistics, and the running ones updated (momentum=None: a cumulative average over
        num_batches_tracked batches). Eval: the running statistics (the batch's if none are tracked)."""
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return batch_norm.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                               self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input, per channel C."""

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input, per channel C."""

    expected_dims = (4,)


def _normalized_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        return (int(normalized_shape),)
    return tuple(int(size) for size in normalized_shape)


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape`; weight (ones) and bias (zeros) of that shape."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        device = resolve_device(device, "LayerNorm")
        dtype = _dtype(dtype)
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, elementwise_affine, bias, self.normalized_shape, dtype, device)

    def reset_parameters(self):
        _reset_affine(self, self.elementwise_affine)

    def forward(self, input):  # noqa: A002
        return norm.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, " \
            f"bias={self.bias is not None}"


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) * weight over the trailing `normalized_shape`; eps=None: the dtype's epsilon."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        device = resolve_device(device, "RMSNorm")
        dtype = _dtype(dtype)
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_filled(self.normalized_shape, 1, dtype, device))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self):
        if self.elementwise_affine:
            with no_grad():
                self.weight.fill_(1)

    def forward(self, input):  # noqa: A002
        return norm.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalise each of num_groups groups of channels per sample; per-channel weight (ones) and bias (zeros)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        device = resolve_device(device, "GroupNorm")
        dtype = _dtype(dtype)
        num_channels = _check_size("GroupNorm", "num_channels", num_channels)
        if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups <= 0:
            raise ValueError(f"GroupNorm: num_groups must be a positive integer, got {num_groups!r}")
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = int(num_groups)
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _register_affine(self, affine, bias, (num_channels,), dtype, device)

    def reset_parameters(self):
        _reset_affine(self, self.affine)

    def forward(self, input):  # noqa: A002
        return norm.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, " \
            f"bias={self.bias is not None}"
