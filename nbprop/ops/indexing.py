"""Indexing: x[key] (basic indexing a view, advanced indexing a copy) and x[key] = value, with autograd.

Index tensors are saved for backward as PyTorch saves them: changing one in place before backward raises, and
backward reads them again, re-checked, since writes through .numpy() bypass the version counter.

Keys are parsed in host memory by index_key.py (an index tensor's values come there through its device); the
gathers and writes by index arrays run on the indexed tensor's device (`take`, `put`).
"""

import math
import numbers

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES, HOST
from nbprop.ops import elementwise, movement
from nbprop.ops.broadcast import expand
from nbprop.ops.gather import index_add_along
from nbprop.ops.index_key import (
    INDEX_CHANGED,
    check_masks_unchanged,
    index_tensors,
    on_device,
    parse_key,
    result_shape,
    row_positions,
    select,
)
from nbprop.ops.inplace import check_writable
from nbprop.tensor import Tensor

# Numbers written by setitem are converted on the host, with the host device's methods.
_HOST_DEVICE = DEVICES[HOST]


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
        result = select(device, x._data, basic, on_device(device, advanced))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(*index_tensors)
            ctx.input_shape, ctx.result_shape, ctx.key = x.shape, result.shape, (basic, advanced, covered)
        return Tensor._make(result, None, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        basic, advanced, covered = ctx.key
        # The rows read are found now, from the index as it is, as PyTorch does.
        check_masks_unchanged(ctx.input_shape, basic, advanced, ctx.result_shape, "getitem backward")
        try:
            positions = row_positions(ctx.input_shape, basic, advanced, covered)
        except IndexError as error:  # NumPy's bounds check
            raise IndexError(f"getitem backward: {error}; {INDEX_CHANGED}") from None
        positions = DEVICES[grad_output.device].asarray(positions)
        grad_input = index_add(grad_output, positions, ctx.input_shape, covered, "getitem backward")
        return grad_input, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        basic, advanced, covered = ctx.key
        check_masks_unchanged(ctx.input_shape, basic, advanced, ctx.result_shape, "getitem backward")
        try:
            positions = row_positions(ctx.input_shape, basic, advanced, covered)
        except IndexError as error:
            raise IndexError(f"getitem backward: {error}; {INDEX_CHANGED}") from None
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
    if device.read_status(status, 1) >= 0:
        raise IndexError(f"{op}: index {device.read_status(status, 2)} is out of bounds for {rows} rows (tensor of "
                         f"shape {list(shape)}); {INDEX_CHANGED}")
    out = device.zeros(shape, values.dtype)
    rows_of_values = device.reshape(device.contiguous(values._data), (count, inner))
    # The work is the number of values, not the size of the output: choose the variant by it.
    device.call("index_add_segments", rows_of_values, order, segment_starts, segment_rows, status,
                device.reshape(out, (rows, inner)), work=count * inner)
    return Tensor._make(out, None, values.device)


def getitem(x, key):
    """x[key]: ints (negative count from the end), slices with positive steps, None, Ellipsis, integer
    index tensors/lists/arrays (broadcast together) and boolean masks. A view when the key is basic."""
    basic, advanced, covered = parse_key(key, x.shape, "getitem")
    if advanced is None:
        return BasicIndex.apply(x, basic)
    return AdvancedIndex.apply(x, basic, advanced, covered, index_tensors(key))


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
            device.put(device.region(x._data, basic), on_device(device, advanced), value._data)
        x._version_counter[0] += 1
        # A new tensor object over x's storage: setitem moves its tape node onto x.
        return Tensor._make(x._data, x._version_counter, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        if ctx.advanced is not None:
            check_masks_unchanged(ctx.input_shape, ctx.basic, ctx.advanced, ctx.indexed_shape, "setitem backward")
        try:
            return IndexPut._gradients(ctx, grad_output)
        except IndexError as error:  # NumPy's bounds check of an index changed since forward
            raise IndexError(f"setitem backward: {error}; {INDEX_CHANGED}") from None

    @staticmethod
    def backward_graph(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an index tensor was modified in place since forward
        if ctx.advanced is not None:
            check_masks_unchanged(ctx.input_shape, ctx.basic, ctx.advanced, ctx.indexed_shape, "setitem backward")
        try:
            return IndexPut._recorded_gradients(ctx, grad_output)
        except IndexError as error:
            raise IndexError(f"setitem backward: {error}; {INDEX_CHANGED}") from None

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
                device.put(device.region(written, ctx.basic), on_device(device, ctx.advanced), True)
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
        advanced = None if ctx.advanced is None else on_device(device, ctx.advanced)
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
            grad_value = Tensor._make(select(device, grad_output._data, ctx.basic, advanced),
                                      grad_output._version_counter, grad_output.device)
        return grad_input, grad_value, None, None, None


def setitem(x, key, value):
    """x[key] = value in place: `value` is a number or a tensor broadcast to the shape of x[key].

    Bumps x's version (so tensors saved for backward from x are detected as changed) and records the
    write on the tape when x or value requires grad.
    """
    basic, advanced, _ = parse_key(key, x.shape, "setitem")
    device = DEVICES[x.device]
    if advanced is None:
        indexed_shape = device.region(x._data, basic).shape
    else:
        indexed_shape = result_shape(x.shape, basic, advanced)
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
    result = IndexPut.apply(x, value, basic, advanced, index_tensors(key))
    if result.grad_fn is not None:
        x.grad_fn = result.grad_fn
        x._output_index = result._output_index
        x.requires_grad = True
