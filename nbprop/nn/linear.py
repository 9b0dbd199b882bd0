"""Dense layers: Identity, Linear, Bilinear and Flatten, with PyTorch's signatures and initialisation."""

import math

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.creation import resolve_device
from nbprop.grad_mode import no_grad
from nbprop.nn import init
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from nbprop.ops import linear as linear_ops
from nbprop.tensor import Tensor


def _empty_parameter(shape, dtype, device):
    resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"layer parameters must be floating point, got dtype {resolved}")
    return Parameter(Tensor._make(DEVICES[device].empty(shape, resolved), None, device))


def _check_features(layer, **sizes):
    for name, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"{layer}: {name} must be a non-negative integer, got {size!r}")


def _add_bias_and_reset(layer, bias, dtype, device):
    """Register bias (out_features,) or None after the weight (PyTorch's state dict order), then draw the
    layer's initial values."""
    if bias:
        layer.bias = _empty_parameter((layer.out_features,), dtype, device)
    else:
        layer.register_parameter("bias", None)
    layer.reset_parameters()


class Identity(Module):
    """Returns its input; any constructor arguments are ignored (as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return input


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), bias (out_features,).

    Initialised as PyTorch does: W by kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and b
    by U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _check_features("Linear", in_features=in_features, out_features=out_features)
        device = resolve_device(device, "Linear")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = _empty_parameter((self.out_features, self.in_features), dtype, device)
        _add_bias_and_reset(self, bias, dtype, device)

    def reset_parameters(self):
        with no_grad():
            init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                fan_in = self.in_features
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input):  # noqa: A002
        return linear_ops.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """y = x1^T A x2 + b; weight (out_features, in1_features, in2_features), bias (out_features,).

    Initialised as PyTorch does: weight and bias from U(-1/sqrt(in1_features), 1/sqrt(in1_features)).
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _check_features("Bilinear", in1_features=in1_features, in2_features=in2_features,
                        out_features=out_features)
        device = resolve_device(device, "Bilinear")
        self.in1_features = int(in1_features)
        self.in2_features = int(in2_features)
        self.out_features = int(out_features)
        self.weight = _empty_parameter((self.out_features, self.in1_features, self.in2_features), dtype, device)
        _add_bias_and_reset(self, bias, dtype, device)

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1]) if self.weight.shape[1] > 0 else 0
        with no_grad():
            init.uniform_(self.weight, -bound, bound)
            if self.bias is not None:
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return linear_ops.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Flattens the dimensions start_dim..end_dim into one (by default all but the batch dimension)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):  # noqa: A002
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
