"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d with PyTorch's signatures and init."""

import math

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.creation import resolve_device
from nbprop.grad_mode import no_grad
from nbprop.nn import init
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from nbprop.ops import conv as conv_ops
from nbprop.ops.padding import pad
from nbprop.tensor import Tensor

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _sizes(value, dims, name, layer):
    """PyTorch's _single/_pair: an int repeated, or a sequence of `dims` ints, as a tuple."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * dims
    if isinstance(value, (tuple, list)) and len(value) == dims and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"{layer}: {name} must be an int or a tuple of {dims} ints, got {value!r}")


class _ConvNd(Module):
    """What convolutions and transposed convolutions share: the checked hyperparameters, the weight
    ((out_channels, in_channels / groups, *kernel_size), transposed: (in_channels, out_channels / groups,
    *kernel_size)) and bias (out_channels,), PyTorch's initialisation and extra_repr."""

    dims = 0
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
                 bias, padding_mode, device, dtype):
        super().__init__()
        layer = type(self).__name__
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{layer}: {name} must be a non-negative integer, got {value!r}")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"{layer}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"{layer}: in_channels must be divisible by groups (in_channels={in_channels}, "
                             f"groups={groups})")
        if out_channels % groups:
            raise ValueError(f"{layer}: out_channels must be divisible by groups (out_channels={out_channels}, "
                             f"groups={groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{layer}: padding_mode must be one of {set(PADDING_MODES)}, but got "
                             f"padding_mode={padding_mode!r}")
        dims = self.dims
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _sizes(kernel_size, dims, "kernel_size", layer)
        self.stride = _sizes(stride, dims, "stride", layer)
        self.dilation = _sizes(dilation, dims, "dilation", layer)
        self.output_padding = _sizes(output_padding, dims, "output_padding", layer)
        if isinstance(padding, str):
            if self.transposed or padding not in ("same", "valid"):
                raise ValueError(f"{layer}: invalid padding string {padding!r}, should be one of "
                                 f"{'an int or a tuple' if self.transposed else {'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{layer}: padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _sizes(padding, dims, "padding", layer)
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f'{layer}: only "zeros" padding mode is supported, got {padding_mode!r}')
        self.padding_mode = padding_mode
        # F.pad's argument for the other padding modes: last dimension first, before and after each.
        if self.padding == "same":
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for d, k in zip(self.dilation, self.kernel_size)]
        elif self.padding == "valid":
            pairs = [(0, 0)] * dims
        else:
            pairs = [(p, p) for p in self.padding]
        self._reversed_padding_repeated_twice = [side for pair in reversed(pairs) for side in pair]
        device = resolve_device(device, layer)
        shape = ((self.in_channels, self.out_channels // self.groups) if self.transposed
                 else (self.out_channels, self.in_channels // self.groups)) + self.kernel_size
        self.weight = _empty_parameter(shape, dtype, device, layer)
        if bias:
            self.bias = _empty_parameter((self.out_channels,), dtype, device, layer)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's _ConvNd.reset_parameters: weight by kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) with fan_in = weight.shape[1] * prod(kernel_size), and bias from the same range."""
        with no_grad():
            init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
                if fan_in != 0:
                    bound = 1 / math.sqrt(fan_in)
                    init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            text += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


def _empty_parameter(shape, dtype, device, layer):
    resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"{layer}: parameters must be floating point, got dtype {resolved}")
    return Parameter(Tensor._make(DEVICES[device].empty(shape, resolved), None, device))


class _Conv(_ConvNd):
    function = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        if self.padding_mode != "zeros":
            # As PyTorch: pad in the layer's mode, then convolve without padding.
            padded = pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return type(self).function(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return type(self).function(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                   self.groups)


class Conv1d(_Conv):
    """1-D convolution over (batch, in_channels, length) or unbatched (in_channels, length) input; weight
    (out_channels, in_channels / groups, kernel_size), bias (out_channels,)."""

    dims = 1
    function = staticmethod(conv_ops.conv1d)


class Conv2d(_Conv):
    """2-D convolution over (batch, in_channels, height, width) or unbatched (in_channels, height, width) input;
    weight (out_channels, in_channels / groups, kernel_height, kernel_width), bias (out_channels,)."""

    dims = 2
    function = staticmethod(conv_ops.conv2d)


class _ConvTranspose(_ConvNd):
    transposed = True
    function = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
                         bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size):  # noqa: A002
        """PyTorch's: the layer's output_padding, or the one that gives `output_size` (the spatial sizes, or
        the whole shape), which must lie within what the stride allows."""
        if output_size is None:
            return self.output_padding
        dims = self.dims
        leading = 2 if input.ndim == dims + 2 else 1
        output_size = [int(size) for size in output_size]
        if len(output_size) == leading + dims:
            output_size = output_size[leading:]
        if len(output_size) != dims:
            raise ValueError(f"{type(self).__name__}: for {input.ndim}D input, output_size must have {dims} or "
                             f"{leading + dims} elements (got {len(output_size)})")
        smallest = [(input.shape[leading + d] - 1) * self.stride[d] - 2 * self.padding[d]
                    + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(dims)]
        largest = [size + stride - 1 for size, stride in zip(smallest, self.stride)]
        for size, low, high in zip(output_size, smallest, largest):
            if not low <= size <= high:
                raise ValueError(f"{type(self).__name__}: requested an output size of {output_size}, but valid "
                                 f"sizes range from {smallest} to {largest} (for an input of "
                                 f"{list(input.shape[leading:])})")
        return tuple(size - low for size, low in zip(output_size, smallest))

    def forward(self, input, output_size=None):  # noqa: A002
        output_padding = self._output_padding(input, output_size)
        return type(self).function(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                   self.groups, self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """1-D transposed convolution (the adjoint of Conv1d in its input); weight (in_channels, out_channels /
    groups, kernel_size); forward(input, output_size=None) as PyTorch's."""

    dims = 1
    function = staticmethod(conv_ops.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    """2-D transposed convolution (the adjoint of Conv2d in its input); weight (in_channels, out_channels /
    groups, kernel_height, kernel_width); forward(input, output_size=None) as PyTorch's."""

    dims = 2
    function = staticmethod(conv_ops.conv_transpose2d)
