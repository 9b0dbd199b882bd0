"""Indexing: x[key] (basic indexing a view, advanced indexing a copy) and x[key] = value, with autograd.

A key is split in two stages, as PyTorch applies it: the basic stage (ints, slices, None, Ellipsis) makes a
view and removes the integer-indexed dimensions; the advanced stage then applies the index arrays and boolean
masks to that view with NumPy's placement rule (broadcast index dimensions replace the indexed dimensions
where the index arrays are adjacent, and go first otherwise).

Index tensors are saved for backward as PyTorch saves them: changing one in place before backward raises, and
backward reads them again, re-checked, since writes through .numpy() bypass the version counter.

Keys are parsed in host memory (an index tensor's values come there through its device); the gathers and
writes by index arrays run on the indexed tensor's device (`take`, `put`).
"""

import math
import numbers

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES, HOST
from nbprop.ops import elementwise, movement
from nbprop.ops.broadcast import expand
from nbprop.ops.gather import index_add_along
from nbprop.ops.inplace import check_writable
from nbprop.tensor import Tensor

# Keys, shapes and row positions are worked out on host arrays, with the host device's methods.
_HOST_DEVICE = DEVICES[HOST]


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
        return _HOST_DEVICE.asarray(bool(item))
    if isinstance(item, numbers.Integral):
        return int(item)
    if isinstance(item, slice):
        step = 1 if item.step is None else _slice_bound(item.step, op)
        if step <= 0:
            raise ValueError(f"{op}: step must be greater than zero, got slice step {step}")
        return slice(_slice_bound(item.start, op), _slice_bound(item.stop, op), step)
    if isinstance(item, Tensor):
        # On the CPU, the index's own memory: backward sees writes through .numpy() (and re-checks them).
        array = DEVICES[item.device].to_numpy(item._data)
    elif isinstance(item, np.ndarray):
        array = _HOST_DEVICE.copy(item)  # a copy, as PyTorch makes: the caller's array may change before backward
    elif isinstance(item, (list, tuple)):
        array = _HOST_DEVICE.asarray(item)
        if array.size == 0 and array.dtype.kind == "f":
            array = _HOST_DEVICE.astype(array, np.int64)  # [] is an empty list of indices
    else:
        raise TypeError(f"{op}: unsupported index of type {type(item).__name__}; expected an int, slice, None, "
                        "Ellipsis, a bool, or an integer or boolean tensor, list or array")
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind not in "iu":
        raise IndexError(f"{op}: tensors used as indices must be int64 or bool tensors, got {array.dtype}")
    if array.ndim == 0:
        return int(array)  # PyTorch treats a 0-d integer tensor like an int
    return array if array.dtype == np.int64 else _HOST_DEVICE.astype(array, np.int64)


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


def _select(device, array, basic, advanced):
    """array[basic][advanced] on `device`, whose arrays `advanced` holds (see `_on_device`)."""
    view = device.region(array, basic)
    return view if advanced is None else device.take(view, advanced)


def _on_device(device, advanced):
    """The advanced key (host index arrays) with its arrays on `device`. On the CPU they are the arrays
    themselves, read as they are now (so backward sees writes through .numpy() and re-checks them)."""
    return tuple(item if isinstance(item, slice) else device.asarray(item) for item in advanced)


def _index_tensors(key):
    """The tensors of a key that its advanced stage reads (index tensors and masks; a 0-d integer tensor is
    read once, as an int): saved for backward, so that changing one in place before backward raises."""
    items = key if isinstance(key, tuple) else (key,)
    return tuple(item for item in items if isinstance(item, Tensor) and (item.ndim or item.dtype.kind == "b"))


def _indexed_shape(shape, basic, advanced):
    """The shape of x[key] for x of `shape`, found on a stride-0 broadcast (without touching x)."""
    return _select(_HOST_DEVICE, _HOST_DEVICE.scalar_view(False, np.bool_, shape), basic, advanced).shape


# Writes through .numpy() bypass the version counter: backward reads the index tensors again and says so.
_CHANGED = ("an index tensor was changed after the forward without an in-place op (e.g. through .numpy()), which "
           "the version counter cannot see")


def _check_masks_unchanged(shape, basic, advanced, indexed_shape, op):
    """In backward, check that the key still selects the forward's shape: integer index arrays keep their shape
    (their values are bounds-checked by NumPy where backward reads them), but a mask written through .numpy()
    may select a different number of elements."""
    if any(not isinstance(item, slice) and item.dtype.kind == "b" for item in advanced):
        now = _indexed_shape(shape, basic, advanced)
        if now != tuple(indexed_shape):
            raise RuntimeError(f"{op}: shape mismatch: the index selects a result of shape {list(now)}, but the "
                               f"forward made one of shape {list(indexed_shape)}; {_CHANGED}")


def _row_positions(shape, basic, advanced, covered):
    """For x[key], the rows of x it reads, x seen as (rows, inner) with inner = the dimensions past
    `covered`, which the key leaves whole: positions[r] is the row of x that row r of the result came from.
    Found without touching x's size of memory: each leading dimension's index, as a stride-0 broadcast,
    is indexed by the key and the results are summed."""
    host = _HOST_DEVICE
    lead = covered
    lead_shape = tuple(shape[:lead])
    positions = _select(host, host.scalar_view(0, np.int64, lead_shape), basic, advanced)  # a new array
    stride = 1
    for dim in range(lead - 1, -1, -1):
        column = host.arange(0, lead_shape[dim], 1, np.int64) * stride
        column = host.reshape(column, (-1,) + (1,) * (lead - dim - 1))
        positions += _select(host, host.expand(column, lead_shape), basic, advanced)
        stride *= lead_shape[dim]
    return host.reshape(positions, (-1,))


# ------------------------------------------------------------------------------------------------ getitem


class BasicIndex(Function):
    @staticmethod
    def forward(ctx, x, basic):
        ctx.input_shape, ctx.basic = x.shape, basic
        return Tensor._make(DEVICES[x.device].region(x._data, basic), x._version_counter, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        grad_input = device.zeros(ctx.input_shape, grad_output.dtype)
        device.write_region(grad_input, ctx.basic, grad_output._data)
        return Tensor._make(grad_input, None, grad_output.device), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return RegionWrite.apply(grad_output, ctx.basic, ctx.input_shape), None


class RegionWrite(Function):
    """Zeros of `shape` with `values` written at the basic key `basic`: BasicIndex's adjoint as an op, so that it
    is recorded; its gradient is that BasicIndex again."""

    @staticmethod
    def forward(ctx, values, basic, shape):
        ctx.basic = basic
        device = DEVICES[values.device]
        out = device.zeros(shape, values.dtype)
        device.write_region(out, basic, values._data)
        return Tensor._make(out, None, values.device)

    @staticmethod
    def backward(ctx, grad_output):
        return BasicIndex.apply(grad_output, ctx.basic), None, None

    backward_graph = backward


class AdvancedIndex(Function):
    @staticmethod
    def forward(ctx, x, basic, advanced, covered, index_tensors):
        device = DEVICES[x.device]
        result = _select(device, x._data, basic, _on_device(device, advanced))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(*index_tensors)
            ctx.input_shape, ctx.result_shape, ctx.key = x.shape, result.shape, (basic, advanced, covered)
        return Tensor._make(result, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        basic, advanced, covered = ctx.key
        # The rows read are found now, from the index as it is, as PyTorch does.
        _check_masks_unchanged(ctx.input_shape, basic, advanced, ctx.result_shape, "getitem backward")
        try:
            positions = _row_positions(ctx.input_shape, basic, advanced, covered)
        except IndexError as error:  # NumPy's bounds check
            raise IndexError(f"getitem backward: {error}; {_CHANGED}") from None
        positions = DEVICES[grad_output.device].asarray(positions)
        grad_input = index_add(grad_output, positions, ctx.input_shape, covered, "getitem backward")
        return grad_input, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        basic, advanced, covered = ctx.key
        _check_masks_unchanged(ctx.input_shape, basic, advanced, ctx.result_shape, "getitem backward")
        try:
            positions = _row_positions(ctx.input_shape, basic, advanced, covered)
        except IndexError as error:
            raise IndexError(f"getitem backward: {error}; {_CHANGED}") from None
        # backward's row scatter-add, recorded (a scatter_add by the constant rows; its gradient a gather).
        rows, inner = math.prod(ctx.input_shape[:covered]), math.prod(ctx.input_shape[covered:])
        positions = Tensor._make(DEVICES[grad_output.device].asarray(positions), None, grad_output.device)
        values = movement.reshape(grad_output, (positions.shape[0], inner))
        return (movement.reshape(index_add_along(values, 0, positions, rows), ctx.input_shape), None, None, None,
                None)


def index_add(values, positions, shape, covered=None, op="index_add"):
    """A tensor of `shape`, zero except that the rows of `values` are added at the rows `positions` (a 1-D
    int64 array on values' device).

    The tensor is seen as (rows, inner) with rows = the product of its first `covered` dimensions (all by
    default, so that a row is one element); `values` holds len(positions) rows of `inner` elements. Repeated
    positions accumulate, deterministically (in the order of `values`). A position outside [0, rows) raises
    IndexError naming `op`; nothing is written out of bounds.
    """
    device = DEVICES[values.device]
    covered = len(shape) if covered is None else covered
    rows, inner = math.prod(shape[:covered]), math.prod(shape[covered:])
    count = positions.shape[0]
    if math.prod(values.shape) != count * inner:
        raise RuntimeError(f"{op}: {count} positions of rows of {inner} elements do not match values of shape "
                           f"{list(values.shape)}")
    order, segment_starts = device.empty(count, np.int64), device.empty(count + 1, np.int64)
    segment_rows, status = device.empty(count, np.int64), device.empty(3, np.int64)
    device.call("index_sort", positions, rows, order, segment_starts, segment_rows, status)
    found = device.to_numpy(status)
    if found[1] >= 0:
        raise IndexError(f"{op}: index {int(found[2])} is out of bounds for {rows} rows (tensor of shape "
                         f"{list(shape)}); {_CHANGED}")
    out = device.zeros(shape, values.dtype)
    rows_of_values = device.reshape(device.contiguous(values._data), (count, inner))
    # The work is the number of values, not the size of the output: choose the variant by it.
    device.call("index_add_segments", rows_of_values, order, segment_starts, segment_rows, status,
                device.reshape(out, (rows, inner)), work=count * inner)
    return Tensor._make(out, None, values.device)


def getitem(x, key):
    """x[key]: ints (negative count from the end), slices with positive steps, None, Ellipsis, integer
    index tensors/lists/arrays (broadcast together) and boolean masks. A view when the key is basic."""
    basic, advanced, covered = _parse(key, x.shape, "getitem")
    if advanced is None:
        return BasicIndex.apply(x, basic)
    return AdvancedIndex.apply(x, basic, advanced, covered, _index_tensors(key))


# ------------------------------------------------------------------------------------------------ setitem


class IndexPut(Function):
    @staticmethod
    def forward(ctx, x, value, basic, advanced, index_tensors):
        ctx.save_for_backward(*index_tensors)
        ctx.basic, ctx.advanced, ctx.input_shape, ctx.indexed_shape = basic, advanced, x.shape, value.shape
        device = DEVICES[x.device]
        if advanced is None:
            device.write_region(x._data, basic, value._data)
        else:
            device.put(device.region(x._data, basic), _on_device(device, advanced), value._data)
        x._version_counter[0] += 1
        # A new tensor object over x's storage: setitem moves its tape node onto x.
        return Tensor._make(x._data, x._version_counter, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        if ctx.advanced is not None:
            _check_masks_unchanged(ctx.input_shape, ctx.basic, ctx.advanced, ctx.indexed_shape, "setitem backward")
        try:
            return IndexPut._gradients(ctx, grad_output)
        except IndexError as error:  # NumPy's bounds check of an index changed since forward
            raise IndexError(f"setitem backward: {error}; {_CHANGED}") from None

    @staticmethod
    def backward_graph(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        if ctx.advanced is not None:
            _check_masks_unchanged(ctx.input_shape, ctx.basic, ctx.advanced, ctx.indexed_shape, "setitem backward")
        try:
            return IndexPut._recorded_gradients(ctx, grad_output)
        except IndexError as error:
            raise IndexError(f"setitem backward: {error}; {_CHANGED}") from None

    @staticmethod
    def _recorded_gradients(ctx, grad_output):
        device = DEVICES[grad_output.device]
        grad_input = grad_value = None
        if ctx.needs_input_grad[0]:
            # Zeros at the written positions: a where() by a constant mask of them.
            written = device.zeros(ctx.input_shape, np.bool_)
            if ctx.advanced is None:
                device.write_region(written, ctx.basic, True)
            else:
                device.put(device.region(written, ctx.basic), _on_device(device, ctx.advanced), True)
            grad_input = elementwise.where(Tensor._make(written, None, grad_output.device), 0.0, grad_output)
        if ctx.needs_input_grad[1]:
            # grad_output[key], by the getitem ops (recorded). The dimensions the key covers: its entries that
            # name one (all but None and the closing Ellipsis).
            if ctx.advanced is None:
                grad_value = BasicIndex.apply(grad_output, ctx.basic)
            else:
                covered = sum(item is not None for item in ctx.basic[:-1])
                grad_value = AdvancedIndex.apply(grad_output, ctx.basic, ctx.advanced, covered, ())
        return grad_input, grad_value, None, None, None

    @staticmethod
    def _gradients(ctx, grad_output):
        device = DEVICES[grad_output.device]
        # The index arrays as they are now, as PyTorch reads them in backward.
        advanced = None if ctx.advanced is None else _on_device(device, ctx.advanced)
        grad_input = grad_value = None
        if ctx.needs_input_grad[0]:
            # The overwritten positions no longer depend on the old x.
            data = device.copy(grad_output._data)
            if advanced is None:
                device.write_region(data, ctx.basic, 0)
            else:
                device.put(device.region(data, ctx.basic), advanced, 0)
            grad_input = Tensor._make(data, None, grad_output.device)
        if ctx.needs_input_grad[1]:
            grad_value = Tensor._make(_select(device, grad_output._data, ctx.basic, advanced),
                                      grad_output._version_counter, grad_output.device)
        return grad_input, grad_value, None, None, None


def setitem(x, key, value):
    """x[key] = value in place: `value` is a number or a tensor broadcast to the shape of x[key].

    Bumps x's version (so tensors saved for backward from x are detected as changed) and records the
    write on the tape when x or value requires grad.
    """
    basic, advanced, _ = _parse(key, x.shape, "setitem")
    device = DEVICES[x.device]
    if advanced is None:
        indexed_shape = device.region(x._data, basic).shape
    else:
        indexed_shape = _indexed_shape(x.shape, basic, advanced)
    if isinstance(value, Tensor):
        if advanced is not None and value.dtype != x.dtype:
            raise RuntimeError(f"setitem: index put requires the source and destination dtypes match, got "
                               f"{x.dtype} for the destination and {value.dtype} for the source")
        value = value.to(x.dtype)
    elif isinstance(value, numbers.Number):
        # NumPy's conversion of the number, then its cast (wrapping, as PyTorch's does), made on the host.
        host_value = _HOST_DEVICE.astype(_HOST_DEVICE.asarray(value), x.dtype)
        value = Tensor._make(device.asarray(host_value), None, x.device)
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
    result = IndexPut.apply(x, value, basic, advanced, _index_tensors(key))
    if result.grad_fn is not None:
        x.grad_fn = result.grad_fn
        x._output_index = result._output_index
        x.requires_grad = True
