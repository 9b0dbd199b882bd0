"""The argument checks of the convolution functions (nbprop/ops/conv.py): PyTorch's rules and errors."""

import numpy as np

from nbprop.tensor import Tensor


def as_sizes(value, dims, name, op):
    """An int or a sequence of 1 or `dims` ints as a `dims`-tuple (PyTorch expands a single value)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * dims
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                for v in value):
        if len(value) == 1:
            return (int(value[0]),) * dims
        if len(value) == dims:
            return tuple(int(v) for v in value)
        raise RuntimeError(f"{op}: expected {name} to be a single integer value or a list of {dims} values to "
                           f"match the convolution dimensions, but got {name}={list(value)}")
    raise TypeError(f"{op}: {name} must be an int or a tuple of {dims} ints, got {value!r}")


def check_tensors(op, dims, input, weight, bias, transposed):  # noqa: A002
    """Types, dtypes and ranks; PyTorch's errors for each."""
    for name, value in (("input", input), ("weight", weight)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(value).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{op}: argument 'bias' must be a Tensor or None, got {type(bias).__name__}")
    if input.ndim not in (dims + 1, dims + 2):
        raise RuntimeError(f"{op}: expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input, but got input "
                           f"of shape {list(input.shape)}")
    if weight.ndim != dims + 2:
        layout = "(in_channels, out_channels / groups, " if transposed else "(out_channels, in_channels / groups, "
        raise RuntimeError(f"{op}: expected a {dims + 2}-D weight {layout}*kernel_size), got weight of shape "
                           f"{list(weight.shape)}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point input, got {input.dtype} (shape {list(input.shape)})")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and value.dtype != input.dtype:
            raise RuntimeError(f"{op}: input type ({input.dtype}) and {name} type ({value.dtype}) should be the "
                               f"same")
    if bias is not None and not transposed and bias.shape != (weight.shape[0],):
        raise RuntimeError(f"{op}: given weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
                           f"with {weight.shape[0]} elements, but got bias of size {list(bias.shape)} instead")


def check_steps(op, stride, dilation, groups):
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"{op}: non-positive stride is not supported, got stride={list(stride)}")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"{op}: dilation should be greater than zero, got dilation={list(dilation)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise RuntimeError(f"{op}: non-positive groups is not supported, got groups={groups!r}")


def check_groups(op, weight, groups):
    if weight.shape[0] % groups:
        raise RuntimeError(f"{op}: given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size {list(weight.shape)} instead")


def resolve_padding(op, padding, dims, stride, dilation, kernel):
    """(before, total) per spatial dimension for an int, a tuple, 'valid' or 'same' (whose total padding
    dilation * (kernel - 1) is split with the odd element after, as PyTorch does)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * dims, (0,) * dims
        if padding != "same":
            raise RuntimeError(f"{op}: invalid padding string {padding!r}; expected 'same', 'valid' or sizes")
        if any(s != 1 for s in stride):
            raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions "
                               f"(stride={list(stride)})")
        totals = tuple(d * (k - 1) for d, k in zip(dilation, kernel))
        return tuple(total // 2 for total in totals), totals
    padding = as_sizes(padding, dims, "padding", op)
    if any(p < 0 for p in padding):
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={list(padding)}")
    return padding, tuple(2 * p for p in padding)


def as_batched(input, dims):  # noqa: A002
    """The input with a batch dimension (PyTorch accepts unbatched input), and whether one was added."""
    return (input, False) if input.ndim == dims + 2 else (input.unsqueeze(0), True)


def as_four_d(values, dims, fill):
    """Per-dimension values of a 1-D convolution as the 2-D kernels take them (height 1)."""
    return tuple(values) if dims == 2 else (fill,) + tuple(values)


def sizes_text(values):
    return " x ".join(str(v) for v in values)
