"""Padding: torch.nn.functional.pad in constant, reflect, replicate and circular modes, with its adjoints."""

import functools
import math
import types

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.tensor import Tensor


class PadConstant(Function):
    @staticmethod
    def forward(ctx, x, pairs, value):
        shape = tuple(size + before + after for size, (before, after) in zip(x.shape, pairs))
        device = DEVICES[x.device]
        out = device.full(shape, value, x.dtype)
        # The input region that survives cropping and where it lands in the output.
        ctx.input_shape = x.shape
        ctx.input_region = tuple(slice(max(0, -before), size - max(0, -after))
                                 for size, (before, after) in zip(x.shape, pairs))
        ctx.output_region = tuple(slice(max(0, before), max(0, before) + max(0, region.stop - region.start))
                                  for (before, _), region in zip(pairs, ctx.input_region))
        device.write_region(out, ctx.output_region, device.region(x._data, ctx.input_region))
        return Tensor._make(out, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        # The adjoint of padding is cropping: padded positions are constants, cropped ones were never read.
        device = DEVICES[grad_output.device]
        grad_input = device.zeros(ctx.input_shape, grad_output.dtype)
        device.write_region(grad_input, ctx.input_region, device.region(grad_output._data, ctx.output_region))
        return Tensor._make(grad_input, None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # Cropping recorded as the opposite pad: (before, after) undone by (-before, -after), whose own gradient
        # is the first pad again. A dimension's `before` is where its kept input region lands in the output.
        pairs = []
        for size, padded, kept, placed in zip(ctx.input_shape, grad_output.shape, ctx.input_region,
                                              ctx.output_region):
            before = placed.start - kept.start
            pairs.append((-before, -(padded - size - before)))
        return PadConstant.apply(grad_output, pairs, 0), None, None


class PadGather(Function):
    @staticmethod
    def forward(ctx, x, maps, count):
        device = DEVICES[x.device]
        # Viewed as (batch, depth, height, width), with size-1 stand-ins where fewer dimensions are padded.
        lead = x.shape[:x.ndim - count]
        ctx.input_shape, ctx.maps, ctx.count = x.shape, maps, count
        ctx.input_view = (math.prod(lead),) + (1,) * (3 - count) + x.shape[x.ndim - count:]
        ctx.output_view = (math.prod(lead),) + tuple(index_map.size for index_map in maps)
        out = device.empty(lead + ctx.output_view[4 - count:], x.dtype)
        device.call("pad_gather", device.reshape(device.contiguous(x._data), ctx.input_view), *maps,
                    device.reshape(out, ctx.output_view))
        return Tensor._make(out, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        inverses = []
        for index_map, size in zip(ctx.maps, ctx.input_view[1:]):
            offsets, positions = device.empty((size + 1,), np.int64), device.empty((index_map.size,), np.int64)
            device.call("pad_inverse_map", index_map, offsets, positions)
            inverses += [offsets, positions]
        grad = device.reshape(device.contiguous(grad_output._data), ctx.output_view)
        grad_input = device.empty(ctx.input_shape, grad_output.dtype)
        device.call("pad_gather_backward", grad, *inverses, device.reshape(grad_input, ctx.input_view))
        return Tensor._make(grad_input, None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return PadScatter.apply(grad_output, ctx.maps, ctx.count, ctx.input_shape, ctx.input_view,
                                ctx.output_view), None, None


class PadScatter(Function):
    """The adjoint of PadGather (each output's gradient added back to the input position it copied) as an op, so
    that it is recorded: its gradient is PadGather again. The arguments after grad are that PadGather's."""

    @staticmethod
    def forward(ctx, grad, maps, count, input_shape, input_view, output_view):
        ctx.maps, ctx.count = maps, count
        gather_context = types.SimpleNamespace(maps=maps, input_shape=input_shape, input_view=input_view,
                                               output_view=output_view)
        return PadGather.backward(gather_context, grad)[0]

    @staticmethod
    def backward(ctx, grad_output):
        return PadGather.apply(grad_output, ctx.maps, ctx.count), None, None, None, None, None

    backward_graph = backward


def pad(x, pad, mode="constant", value=None):
    """torch.nn.functional.pad: `pad` = (last_before, last_after, second_last_before, ...).

    'constant' pads any dimensions with `value` (0 by default); negative padding crops. 'reflect',
    'replicate' and 'circular' pad the last 1, 2 or 3 dimensions of a tensor with 1 or 2 more (batch and
    channel) dimensions, with PyTorch's limits on the padding sizes.
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError(f"pad: padding length must be divisible by 2, got {pad}")
    if len(pad) // 2 > x.ndim:
        raise RuntimeError(f"pad: padding length should be less than or equal to two times the input dimension "
                           f"but got padding length {len(pad)} and input of dimension {x.ndim}")
    count = len(pad) // 2
    pairs = [(0, 0)] * (x.ndim - count) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(count))]
    if mode == "constant":
        for dim, (size, (before, after)) in enumerate(zip(x.shape, pairs)):
            if size + before + after < 0:
                raise RuntimeError(f"pad: the input size {size}, plus negative padding {before} and {after}, "
                                   f"resulted in a negative output size for dimension {dim} of input "
                                   f"{list(x.shape)}")
        return PadConstant.apply(x, pairs, 0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: unrecognised padding mode {mode!r}; expected 'constant', 'reflect', "
                                  "'replicate' or 'circular'")
    if value is not None and value != 0:
        raise RuntimeError(f'pad: padding mode "{mode}" doesn\'t take in value argument')
    if count not in (1, 2, 3) or x.ndim not in (count + 1, count + 2):
        raise NotImplementedError(
            f"pad: padding size {len(pad)} is not supported for {x.ndim}D input tensor (shape {list(x.shape)}) in "
            f"mode {mode!r}. Supported combinations for non-constant padding: 2D or 3D input with padding size "
            "2, 3D or 4D input with padding size 4, 4D or 5D input with padding size 6"
        )
    if mode != "circular" and any(size == 0 for size in x.shape[x.ndim - count - 1 if x.ndim == count + 2 else 0:]):
        raise RuntimeError(f"pad: {mode} padding expects a {count + 1}D or {count + 2}D (batch mode) tensor with "
                           f"possibly 0 batch size and other non-zero dimensions, but got {list(x.shape)}")
    device = DEVICES[x.device]
    maps = [device.zeros((1,), np.int64)] * (3 - count)
    for dim in range(x.ndim - count, x.ndim):
        _check_padding(mode, x.shape[dim], *pairs[dim], dim, x.shape)
        maps.append(_index_map(x.device, mode, x.shape[dim], *pairs[dim]))
    return PadGather.apply(x, tuple(maps), count)


def _check_padding(mode, size, before, after, dim, shape):
    """PyTorch's limits on reflect, replicate and circular padding of one dimension."""
    if mode == "circular":
        if before > size or after > size:
            raise RuntimeError(f"pad: circular padding ({before}, {after}) of dimension {dim} of input "
                               f"{list(shape)} causes wrapping around more than once")
        kept = size - max(0, -before) - max(0, -after)
        if kept < 0:
            raise RuntimeError(f"pad: negative padding ({before}, {after}) of dimension {dim} of input "
                               f"{list(shape)} results in an empty dimension")
        if max(0, before) > kept or max(0, after) > kept:
            raise NotImplementedError(f"pad: circular padding ({before}, {after}) of dimension {dim} of input "
                                      f"{list(shape)} wraps around the {kept} elements left after cropping more "
                                      "than once")
        return
    if size + before + after < 1:
        raise RuntimeError(f"pad: input (size {size} at dimension {dim} of {list(shape)}) is too small for "
                           f"padding ({before}, {after}): calculated output size {size + before + after}")
    if mode == "reflect" and (before >= size or after >= size):
        raise RuntimeError(f"pad: padding size should be less than the corresponding input dimension, but "
                           f"got padding ({before}, {after}) at dimension {dim} of input {list(shape)}")


@functools.lru_cache(maxsize=256)
def _index_map(device, mode, size, before, after):
    """For each output position along one padded dimension, the input position it copies: an int64 array on
    `device` (a name), which no kernel writes, so one array serves every call with the same padding (the
    Python loop that builds it runs once per padding, not per step)."""
    positions = range(-before, size + after)
    if mode == "circular":
        # PyTorch crops the negative side first, then wraps around what is left.
        start = max(0, -before)
        kept = max(size - start - max(0, -after), 1)
        shift = before - max(0, before)
        host = [start + (position + shift) % kept for position in positions]
    elif mode == "reflect":
        host = [(size - 1) - abs((size - 1) - abs(position)) for position in positions]
    else:
        host = [min(max(position, 0), size - 1) for position in positions]
    return DEVICES[device].asarray(host, np.int64)
