"""torch.nn.functional's pooling: max_pool1d/2d, avg_pool1d/2d, adaptive_avg/max_pool1d/2d (kernels/pool.py).

This file checks the arguments as PyTorch does and works out the windows; the Functions that run the kernels
plane by plane are in plane_functions.py.
"""

import numbers

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.ops.plane_functions import MaxPool, PlaneFunction
from nbprop.tensor import Tensor

# --------------------------------------------------------------------------------------- argument checks


def check_input(input, op, spatial_dims):  # noqa: A002 - PyTorch's argument name
    """Raise unless input is a floating tensor of 1 + spatial_dims or 2 + spatial_dims dimensions whose sizes,
    except the batch size, are non-zero."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {type(input).__name__}")
    ranks = (spatial_dims + 1, spatial_dims + 2)
    if input.ndim not in ranks or 0 in input.shape[input.ndim - spatial_dims - 1:]:
        raise RuntimeError(f"{op}: Expected {ranks[0]}D or {ranks[1]}D (batch mode) tensor with optional 0 dim batch "
                           f"size for input (non-zero channel and spatial sizes), but got: {list(input.shape)}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expects a floating point input (float32 or float64), got {input.dtype}")


def _integers(value, count, op, name):
    """An int or a sequence of 1 or `count` ints as a tuple of `count` ints (PyTorch's _single/_pair)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(values) not in (1, count) or not all(
            isinstance(item, numbers.Integral) and not isinstance(item, bool) for item in values):
        shape = "a single int" if count == 1 else f"a single int, or a tuple of {count} ints"
        raise RuntimeError(f"{op}: {name} must be {shape}, got {value!r}")
    return tuple(int(item) for item in values) * (count // len(values))


def pool_output_size(size, kernel, padding, stride, dilation, ceil_mode):
    """PyTorch's pooling_output_shape: floor (or ceil) of the window count, the last window starting inside
    the input or its left padding."""
    numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _geometry(input, op, spatial_dims, kernel_size, stride, padding, dilation, ceil_mode):  # noqa: A002
    """Check the window arguments as PyTorch does; (kernel, stride, padding, dilation, output spatial sizes),
    each a tuple of `spatial_dims` ints."""
    kernel = _integers(kernel_size, spatial_dims, op, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        _integers(stride, spatial_dims, op, "stride")
    padding = _integers(padding, spatial_dims, op, "padding")
    dilation = _integers(dilation, spatial_dims, op, "dilation")
    check_input(input, op, spatial_dims)
    if min(kernel) <= 0:
        raise RuntimeError(f"{op}: kernel size should be greater than zero, but got kernel_size={kernel}")
    if min(stride) <= 0:
        raise RuntimeError(f"{op}: stride should be greater than zero, but got stride={stride}")
    if min(dilation) <= 0:
        raise RuntimeError(f"{op}: dilation should be greater than zero, but got dilation={dilation}")
    for size, pad, dilate in zip(kernel, padding, dilation):
        if pad < 0:
            raise RuntimeError(f"{op}: pad must be non-negative, but got pad: {pad}")
        if pad > ((size - 1) * dilate + 1) // 2:
            raise RuntimeError(f"{op}: pad should be at most half of effective kernel size, but got pad={pad}, "
                               f"kernel_size={size} and dilation={dilate}")
        if pad > size // 2:
            raise RuntimeError(f"{op}: pad should be smaller than or equal to half of kernel size, but got "
                               f"padding={padding}, kernel_size={kernel}")
    spatial = tuple(input.shape[input.ndim - spatial_dims:])
    out = tuple(pool_output_size(*arguments, bool(ceil_mode)) for arguments in zip(spatial, kernel, padding, stride,
                                                                                    dilation))
    if min(out) < 1:
        channels = input.shape[input.ndim - spatial_dims - 1]
        raise RuntimeError(f"{op}: Given input size: ({'x'.join(map(str, (channels,) + spatial))}). Calculated "
                           f"output size: ({'x'.join(map(str, (channels,) + out))}). Output size is too small")
    return kernel, stride, padding, dilation, out


def _two(values, fill):
    """A 1-D op's (length,) parameters as the (1, length) of the 2-D kernels, `fill` for the height."""
    return (fill,) + values if len(values) == 1 else values


# ------------------------------------------------------------------------------------------- max pooling


def _max_pool(input, op, spatial_dims, kernel_size, stride, padding, dilation, ceil_mode, return_indices):  # noqa: A002
    kernel, stride, padding, dilation, out = _geometry(input, op, spatial_dims, kernel_size, stride, padding, dilation,
                                                       ceil_mode)
    arguments = _two(kernel, 1) + _two(stride, 1) + _two(padding, 0) + _two(dilation, 1)
    empty = None
    if max(dilation) > 1:
        sizes = _two(tuple(input.shape[input.ndim - spatial_dims:]), 1)
        empty = tuple(_empty_windows(size, *arguments[axis::2], count)
                      for axis, (size, count) in enumerate(zip(sizes, _two(out, 1))))
        empty = empty if any(empty) else None
    output, indices = _run_max(input, "max_pool2d_forward", arguments, spatial_dims, out, op, empty)
    return (output, indices) if return_indices else output


def _empty_windows(size, kernel, stride, padding, dilation, count):
    """The output positions along one dimension whose window holds only padding."""
    return tuple(position for position in range(count)
                 if not any(0 <= position * stride - padding + step * dilation < size for step in range(kernel)))


def _run_max(input, kernel, arguments, spatial_dims, out_spatial, op, empty=None):  # noqa: A002
    shape = tuple(input.shape[:input.ndim - spatial_dims]) + out_spatial
    indices = Tensor._make(DEVICES[input.device].empty(shape, dtypes.int64), None, input.device)
    return MaxPool.apply(input, indices, kernel, arguments, spatial_dims, op, empty), indices


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """torch.nn.functional.max_pool1d over (N, C, L) or (C, L): the maximum of each window of kernel_size
    elements, every dilation-th, starting every stride (default kernel_size) elements of the input padded
    with -inf by `padding` (at most half the kernel) on both sides. ceil_mode counts a last partial window.
    return_indices also gives each maximum's position in its length-L plane (int64); the first maximum wins
    ties and nan propagates, as in PyTorch."""
    return _max_pool(input, "max_pool1d", 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """torch.nn.functional.max_pool2d over (N, C, H, W) or (C, H, W): `max_pool1d` along both spatial
    dimensions (each argument an int or a pair); indices are flat positions h * W + w in each plane."""
    return _max_pool(input, "max_pool2d", 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


# --------------------------------------------------------------------------------------- average pooling


def _avg_pool(input, op, spatial_dims, kernel_size, stride, padding, ceil_mode, count_include_pad,  # noqa: A002
              divisor_override):
    kernel, stride, padding, _, out = _geometry(input, op, spatial_dims, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral):
            raise TypeError(f"{op}: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise RuntimeError(f"{op}: divisor must be not zero")
    arguments = (_two(kernel, 1) + _two(stride, 1) + _two(padding, 0)
                 + (bool(count_include_pad), int(divisor_override or 0)))
    return PlaneFunction.apply(input, ("avg_pool2d_forward", "avg_pool2d_backward"), arguments, spatial_dims, out)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):  # noqa: A002
    """torch.nn.functional.avg_pool1d over (N, C, L) or (C, L): the mean of each window of kernel_size
    elements starting every stride (default kernel_size) elements of the input zero-padded by `padding`;
    count_include_pad=False divides by the window's elements inside the input only. ceil_mode counts a
    last partial window."""
    return _avg_pool(input, "avg_pool1d", 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """torch.nn.functional.avg_pool2d over (N, C, H, W) or (C, H, W): `avg_pool1d` along both spatial
    dimensions; divisor_override (a non-zero int) replaces every window's divisor."""
    return _avg_pool(input, "avg_pool2d", 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


# -------------------------------------------------------------------------------------- adaptive pooling


def _adaptive_size(input, output_size, op, spatial_dims):  # noqa: A002 - PyTorch's argument name
    """Check input and output_size (an int, or a tuple whose None entries keep the input's size)."""
    values = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,)
    if len(values) not in ((1,) if spatial_dims == 1 else (1, spatial_dims)) or not all(
            item is None or (isinstance(item, numbers.Integral) and not isinstance(item, bool)) for item in values):
        raise RuntimeError(f"{op}: output_size must be {'an int' if spatial_dims == 1 else 'an int or a pair'} "
                           f"(None keeps the input's size), got {output_size!r}")
    check_input(input, op, spatial_dims)
    spatial = tuple(input.shape[input.ndim - spatial_dims:])
    out = tuple(size if item is None else int(item) for item, size in zip(values * spatial_dims, spatial))
    if min(out) < 0:
        raise RuntimeError(f"{op}: output_size must be non-negative, got {out} for an input of shape "
                           f"{tuple(input.shape)}")
    return out


def adaptive_avg_pool1d(input, output_size):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.adaptive_avg_pool1d over (N, C, L) or (C, L): output_size means, output i over
    the elements [floor(i L / out), ceil((i + 1) L / out))."""
    out = _adaptive_size(input, output_size, "adaptive_avg_pool1d", 1)
    return PlaneFunction.apply(input, ("adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward"), (), 1, out)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.adaptive_avg_pool2d over (N, C, H, W) or (C, H, W): `adaptive_avg_pool1d` along
    both spatial dimensions; output_size an int or a pair (None keeps that input size)."""
    out = _adaptive_size(input, output_size, "adaptive_avg_pool2d", 2)
    return PlaneFunction.apply(input, ("adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward"), (), 2, out)


def adaptive_max_pool1d(input, output_size, return_indices=False):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.adaptive_max_pool1d: the maxima over `adaptive_avg_pool1d`'s windows (ties and
    nan as `max_pool1d`), and with return_indices their positions in each plane."""
    out = _adaptive_size(input, output_size, "adaptive_max_pool1d", 1)
    output, indices = _run_max(input, "adaptive_max_pool2d_forward", (), 1, out, "adaptive_max_pool1d")
    return (output, indices) if return_indices else output


def adaptive_max_pool2d(input, output_size, return_indices=False):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.adaptive_max_pool2d: the maxima over `adaptive_avg_pool2d`'s windows, and with
    return_indices their flat positions h * W + w in each plane."""
    out = _adaptive_size(input, output_size, "adaptive_max_pool2d", 2)
    output, indices = _run_max(input, "adaptive_max_pool2d_forward", (), 2, out, "adaptive_max_pool2d")
    return (output, indices) if return_indices else output
