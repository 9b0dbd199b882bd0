"""Indexing: x[key] (basic indexing a view, advanced indexing a copy) and x[key] = value, with autograd.

A key is split in two stages, as PyTorch applies it: the basic stage (ints, slices, None, Ellipsis) makes a
view and removes the integer-indexed dimensions; the advanced stage then applies the index arrays and boolean
masks to that view with NumPy's placement rule (broadcast index dimensions replace the indexed dimensions
where the index arrays are adjacent, and go first otherwise).
"""

import math
import numbers

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement
from nbprop.ops.broadcast import expand
from nbprop.ops.inplace import check_writable
from nbprop.tensor import Tensor


def _parse(key, shape, op):
    """(basic, advanced, covered): a basic NumPy key for a view of x, the advanced key (or None) for that
    view, and how many leading dimensions of x the keys name (the rest are left whole)."""
    entries = [_entry(item, op) for item in (key if isinstance(key, tuple) else (key,))]
    if sum(item is Ellipsis for item in entries) > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis ('...')")
    consumed = sum(_dims_consumed(item) for item in entries if item is not Ellipsis)
    if consumed > len(shape):
        raise IndexError(f"{op}: too many indices for tensor of dimension {len(shape)} (shape {list(shape)})")
    basic, advanced, dim, any_advanced = [], [], 0, False
    for item in entries:
        if item is Ellipsis:
            span = len(shape) - consumed
            basic += [slice(None)] * span
            advanced += [slice(None)] * span
            dim += span
        elif item is None:
            basic.append(None)
            advanced.append(slice(None))
        elif isinstance(item, int):
            _check_bounds(item, item, dim, shape, op)
            basic.append(item)
            dim += 1
        elif isinstance(item, slice):
            basic.append(item)
            advanced.append(slice(None))
            dim += 1
        elif item.dtype.kind == "b":
            if item.shape != tuple(shape[dim:dim + item.ndim]):
                raise IndexError(f"{op}: the shape of the mask {list(item.shape)} at index {dim} does not match the "
                                 f"shape of the indexed tensor {list(shape)} at index {dim}")
            basic += [slice(None)] * item.ndim
            advanced.append(item)
            dim += item.ndim
            any_advanced = True
        else:
            if item.size:
                _check_bounds(int(item.min()), int(item.max()), dim, shape, op)
            basic.append(slice(None))
            advanced.append(item)
            dim += 1
            any_advanced = True
    # Trailing full slices are implicit: dropping them lets the backward of advanced indexing move whole rows.
    while basic and _is_full(basic[-1]) and advanced and _is_full(advanced[-1]):
        basic.pop()
        advanced.pop()
        dim -= 1
    # The trailing Ellipsis makes a full integer index give a 0-d view rather than a NumPy scalar.
    return tuple(basic) + (Ellipsis,), (tuple(advanced) if any_advanced else None), dim


def _is_full(item):
    return isinstance(item, slice) and item.start is None and item.stop is None and item.step in (None, 1)


def _entry(item, op):
    """One element of a key as None, Ellipsis, int, slice or an int64/bool NumPy array."""
    if item is None or item is Ellipsis:
        return item
    if isinstance(item, (bool, np.bool_)):
        return np.array(bool(item))
    if isinstance(item, numbers.Integral):
        return int(item)
    if isinstance(item, slice):
        step = 1 if item.step is None else _slice_bound(item.step, op)
        if step <= 0:
            raise ValueError(f"{op}: step must be greater than zero, got slice step {step}")
        return slice(_slice_bound(item.start, op), _slice_bound(item.stop, op), step)
    if isinstance(item, Tensor):
        array = item._data
    elif isinstance(item, (list, tuple, np.ndarray)):
        array = np.asarray(item)
        if array.size == 0 and array.dtype.kind == "f":
            array = array.astype(np.int64)  # [] is an empty list of indices
    else:
        raise TypeError(f"{op}: unsupported index of type {type(item).__name__}; expected an int, slice, None, "
                        "Ellipsis, a bool, or an integer or boolean tensor, list or array")
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind not in "iu":
        raise IndexError(f"{op}: tensors used as indices must be int64 or bool tensors, got {array.dtype}")
    if array.ndim == 0:
        return int(array)  # PyTorch treats a 0-d integer tensor like an int
    return array.astype(np.int64, copy=False)


def _slice_bound(value, op):
    if value is None:
        return None
    if isinstance(value, (Tensor, numbers.Integral)):
        return int(value)
    raise TypeError(f"{op}: slice bounds must be integers or None, got {type(value).__name__}")


def _dims_consumed(item):
    if item is None:
        return 0
    if isinstance(item, (int, slice)):
        return 1
    return item.ndim if item.dtype.kind == "b" else 1


def _check_bounds(low, high, dim, shape, op):
    size = shape[dim]
    for index in (low, high):
        if not -size <= index < size:
            raise IndexError(f"{op}: index {index} is out of bounds for dimension {dim} with size {size} "
                             f"(tensor of shape {list(shape)})")


def _select(array, basic, advanced):
    view = array[basic]
    return view if advanced is None else view[advanced]


def _row_positions(shape, basic, advanced, covered):
    """For x[key], the rows of x it reads, x seen as (rows, inner) with inner = the dimensions past
    `covered`, which the key leaves whole: positions[r] is the row of x that row r of the result came from.
    Found without touching x's size of memory: each leading dimension's index, as a stride-0 broadcast,
    is indexed by the key and the results are summed."""
    lead = covered
    lead_shape = tuple(shape[:lead])
    positions = np.array(_select(np.broadcast_to(np.int64(0), lead_shape), basic, advanced))
    stride = 1
    for dim in range(lead - 1, -1, -1):
        column = np.arange(lead_shape[dim], dtype=np.int64) * stride
        positions += _select(np.broadcast_to(column.reshape((-1,) + (1,) * (lead - dim - 1)), lead_shape),
                             basic, advanced)
        stride *= lead_shape[dim]
    return positions.reshape(-1)


# ------------------------------------------------------------------------------------------------ getitem


class BasicIndex(Function):
    @staticmethod
    def forward(ctx, x, basic):
        ctx.input_shape, ctx.basic = x.shape, basic
        return Tensor._make(x._data[basic], x._version_counter, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        grad_input = DEVICES[grad_output.device].zeros(ctx.input_shape, grad_output.dtype)
        grad_input[ctx.basic] = grad_output._data
        return Tensor._make(grad_input, device=grad_output.device), None


class AdvancedIndex(Function):
    @staticmethod
    def forward(ctx, x, basic, advanced, covered):
        device = DEVICES[x.device]
        if ctx.needs_input_grad[0]:
            ctx.input_shape = x.shape
            ctx.positions = _row_positions(x.shape, basic, advanced, covered)
            ctx.covered = covered
        return Tensor._make(device.asarray(_select(x._data, basic, advanced)), device=x.device)

    @staticmethod
    def backward(ctx, grad_output):
        return index_add(grad_output, ctx.positions, ctx.input_shape, ctx.covered), None, None, None


def index_add(values, positions, shape, covered=None):
    """A tensor of `shape`, zero except that the rows of `values` are added at the rows `positions`.

    The tensor is seen as (rows, inner) with rows = the product of its first `covered` dimensions (all by
    default, so that a row is one element); `values` holds len(positions) rows of `inner` elements. Repeated
    positions accumulate, deterministically (in the order of `values`).
    """
    device = DEVICES[values.device]
    covered = len(shape) if covered is None else covered
    rows, inner = math.prod(shape[:covered]), math.prod(shape[covered:])
    count = positions.shape[0]
    order, segment_starts = device.empty(count, np.int64), device.empty(count + 1, np.int64)
    segment_count = device.zeros(1, np.int64)
    device.call("index_sort", positions, order, segment_starts, segment_count)
    out = device.zeros(shape, values.dtype)
    rows_of_values = device.asarray(values._data).reshape(count, inner)
    # The work is the number of values, not the size of the output: choose the variant by it.
    device.call("index_add_segments", rows_of_values, order, positions, segment_starts, segment_count,
                out.reshape(rows, inner), work=count * inner)
    return Tensor._make(out, device=values.device)


def getitem(x, key):
    """x[key]: ints (negative count from the end), slices with positive steps, None, Ellipsis, integer
    index tensors/lists/arrays (broadcast together) and boolean masks. A view when the key is basic."""
    basic, advanced, covered = _parse(key, x.shape, "getitem")
    if advanced is None:
        return BasicIndex.apply(x, basic)
    return AdvancedIndex.apply(x, basic, advanced, covered)


# ------------------------------------------------------------------------------------------------ setitem


class IndexPut(Function):
    @staticmethod
    def forward(ctx, x, value, basic, advanced):
        ctx.basic, ctx.advanced = basic, advanced
        view = x._data[basic]
        if advanced is None:
            view[...] = value._data
        else:
            view[advanced] = value._data
        x._version_counter[0] += 1
        # A new tensor object over x's storage: setitem moves its tape node onto x.
        return Tensor._make(x._data, x._version_counter, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        grad_input = grad_value = None
        if ctx.needs_input_grad[0]:
            # The overwritten positions no longer depend on the old x.
            data = DEVICES[grad_output.device].copy(grad_output._data)
            view = data[ctx.basic]
            if ctx.advanced is None:
                view[...] = 0
            else:
                view[ctx.advanced] = 0
            grad_input = Tensor._make(data, device=grad_output.device)
        if ctx.needs_input_grad[1]:
            grad_value = Tensor._make(_select(grad_output._data, ctx.basic, ctx.advanced),
                                      grad_output._version_counter, grad_output.device)
        return grad_input, grad_value, None, None


def setitem(x, key, value):
    """x[key] = value in place: `value` is a number or a tensor broadcast to the shape of x[key].

    Bumps x's version (so tensors saved for backward from x are detected as changed) and records the
    write on the tape when x or value requires grad.
    """
    basic, advanced, _ = _parse(key, x.shape, "setitem")
    if advanced is None:
        indexed_shape = x._data[basic].shape
    else:
        indexed_shape = _select(np.broadcast_to(np.bool_(False), x.shape), basic, advanced).shape
    if isinstance(value, Tensor):
        if advanced is not None and value.dtype != x.dtype:
            raise RuntimeError(f"setitem: index put requires the source and destination dtypes match, got "
                               f"{x.dtype} for the destination and {value.dtype} for the source")
        value = value.to(x.dtype)
    elif isinstance(value, numbers.Number):
        value = Tensor._make(np.array(value).astype(x.dtype), device=x.device)
    else:
        raise TypeError(f"setitem: the value must be a Tensor or a number, got {type(value).__name__}")
    # PyTorch drops leading size-1 dimensions of the value that the indexed shape lacks.
    while value.ndim > len(indexed_shape) and value.shape[0] == 1:
        value = movement.reshape(value, value.shape[1:])
    trailing = indexed_shape[len(indexed_shape) - value.ndim:]
    if value.ndim > len(indexed_shape) or any(v not in (1, t) for v, t in zip(value.shape, trailing)):
        raise RuntimeError(f"setitem: shape mismatch: value tensor of shape {list(value.shape)} cannot be "
                           f"broadcast to indexing result of shape {list(indexed_shape)}")
    value = expand(value, indexed_shape)
    check_writable(x, "setitem", value.requires_grad)
    result = IndexPut.apply(x, value, basic, advanced)
    if result.grad_fn is not None:
        x.grad_fn = result.grad_fn
        x._output_index = result._output_index
        x.requires_grad = True
