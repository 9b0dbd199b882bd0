"""torch.nn.init: in-place initialisers drawing from nbprop's seeded generator, and calculate_gain."""

import math
import numbers
import warnings

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.random import numpy_generator
from nbprop.tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
]

_LINEAR_FUNCTIONS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                     "conv_transpose3d")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table): 1 for linear/conv/sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu (slope `param`, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_FUNCTIONS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, numbers.Real):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _check(tensor, op):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {type(tensor).__name__}")


def _write(tensor, values):
    """Fill `tensor` in place with `values` (a number, or host draws of its shape), outside the tape
    (PyTorch's initialisers run under no_grad)."""
    device = DEVICES[tensor.device]
    data = tensor._data
    if not device.is_writeable(data):
        raise RuntimeError(f"nn.init: the tensor of shape {tuple(tensor.shape)} is read-only (an expanded view, "
                           "or memory of a read-only NumPy array); clone() it first")
    if isinstance(values, np.ndarray):
        device.copy_into(data, device.asarray(values, data.dtype))
    else:
        device.fill(data, values)
    tensor._version_counter[0] += 1
    return tensor


def _floating(tensor, op):
    _check(tensor, op)
    if tensor.dtype.kind != "f":
        raise TypeError(f"{op}: random initialisation needs a floating-point tensor, got {tensor.dtype}")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with draws from U(a, b), from `generator` (an nbprop.Generator; by default the global one)."""
    _floating(tensor, "uniform_")
    rng = numpy_generator(generator, tensor.device, "uniform_")
    return _write(tensor, rng.uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with draws from N(mean, std^2)."""
    _floating(tensor, "normal_")
    rng = numpy_generator(generator, tensor.device, "normal_")
    return _write(tensor, rng.normal(mean, std, tensor.shape))


def constant_(tensor, val):
    """Fill with the value `val`."""
    _check(tensor, "constant_")
    return _write(tensor, val)


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight (out, in, *kernel): in * receptive field and out * receptive field."""
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    _floating(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _floating(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity, op):
    _floating(tensor, op)
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-bound, bound) with bound = gain(nonlinearity, a) * sqrt(3 / fan) (fan by `mode`)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std^2) with std = gain(nonlinearity, a) / sqrt(fan) (fan by `mode`)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1, generator=None):
    """A (semi-)orthogonal matrix times `gain`, the tensor seen as (shape[0], rest): the Q factor of a QR
    decomposition of a Gaussian matrix, with signs fixed by R's diagonal so the draw is uniform (Haar)."""
    _floating(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    columns = tensor.numel() // rows
    rng = numpy_generator(generator, tensor.device, "orthogonal_")
    flattened = rng.standard_normal((rows, columns))
    if rows < columns:
        flattened = flattened.T
    # The draw and its decomposition are made in host memory, then written to the tensor's device.
    q, r = DEVICES[HOST].qr(flattened)
    diagonal = r.diagonal()
    q *= (diagonal > 0) * 1.0 - (diagonal < 0)  # the signs of R's diagonal
    if rows < columns:
        q = q.T
    return _write(tensor, (gain * q).reshape(tensor.shape))
