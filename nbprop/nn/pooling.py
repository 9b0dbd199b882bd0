"""Pooling and upsampling layers: MaxPool1d/2d, AvgPool1d/2d, the adaptive pools and Upsample, as torch.nn's.

They hold no parameters or buffers (their state dicts are empty) and keep their arguments as given, so their
reprs read as PyTorch's.
"""

from nbprop.nn.module import Module
from nbprop.ops import pool
from nbprop.ops.interpolate import interpolate


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """The maximum over sliding windows of (N, C, L) or (C, L) input; see nbprop.nn.functional.max_pool1d."""

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                               ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """The maximum over sliding windows of (N, C, H, W) or (C, H, W) input; see nbprop.nn.functional.max_pool2d."""

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                               ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class _AvgPoolNd(Module):
    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """The mean over sliding windows of (N, C, L) or (C, L) input; see nbprop.nn.functional.avg_pool1d.

    As in PyTorch its kernel_size, stride and padding are kept as 1-tuples."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                               self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """The mean over sliding windows of (N, C, H, W) or (C, H, W) input; see nbprop.nn.functional.avg_pool2d."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                               self.count_include_pad, self.divisor_override)


def _single(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


class _AdaptiveAvgPoolNd(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Means over output_size windows spanning (N, C, L) or (C, L) input; see adaptive_avg_pool1d."""

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Means over output_size windows spanning (N, C, H, W) or (C, H, W) input; see adaptive_avg_pool2d."""

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.adaptive_avg_pool2d(input, self.output_size)


class _AdaptiveMaxPoolNd(Module):
    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Maxima over output_size windows spanning (N, C, L) or (C, L) input; see adaptive_max_pool1d."""

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Maxima over output_size windows spanning (N, C, H, W) or (C, H, W) input; see adaptive_max_pool2d."""

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return pool.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class Upsample(Module):
    """Resample (N, C, L) or (N, C, H, W) input to `size` or by `scale_factor`; see
    nbprop.nn.functional.interpolate. As in PyTorch, a scale_factor is kept as a float (or tuple of floats)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(factor) for factor in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                           recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        if self.scale_factor is not None:
            return f"scale_factor={self.scale_factor!r}, mode={self.mode!r}"
        return f"size={self.size!r}, mode={self.mode!r}"
