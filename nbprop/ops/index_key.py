"""Index keys of x[key] and x[key] = value: parsed and checked on the host, split into PyTorch's two stages.

A key is split in two stages, as PyTorch applies it: the basic stage (ints, slices, None, Ellipsis) makes a
view and removes the integer-indexed dimensions; the advanced stage then applies the index arrays and boolean
masks to that view with NumPy's placement rule (broadcast index dimensions replace the indexed dimensions
where the index arrays are adjacent, and go first otherwise).
"""

import numbers

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.tensor import Tensor

# Keys, shapes and row positions are worked out on host arrays, with the host device's methods.
_HOST_DEVICE = DEVICES[HOST]


def parse_key(key, shape, op):
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


def select(device, array, basic, advanced):
    """array[basic][advanced] on `device`, whose arrays `advanced` holds (see `on_device`)."""
    view = device.region(array, basic)
    return view if advanced is None else device.take(view, advanced)


def on_device(device, advanced):
    """The advanced key (host index arrays) with its arrays on `device`. On the CPU they are the arrays
    themselves, read as they are now (so backward sees writes through .numpy() and re-checks them)."""
    return tuple(item if isinstance(item, slice) else device.asarray(item) for item in advanced)


def index_tensors(key):
    """The tensors of a key that its advanced stage reads (index tensors and masks; a 0-d integer tensor is
    read once, as an int): saved for backward, so that changing one in place before backward raises."""
    items = key if isinstance(key, tuple) else (key,)
    return tuple(item for item in items if isinstance(item, Tensor) and (item.ndim or item.dtype.kind == "b"))


def result_shape(shape, basic, advanced):
    """The shape of x[key] for x of `shape`, found on a stride-0 broadcast (without touching x)."""
    return select(_HOST_DEVICE, _HOST_DEVICE.scalar_view(False, np.bool_, shape), basic, advanced).shape


# Writes through .numpy() bypass the version counter: backward reads the index tensors again and says so.
INDEX_CHANGED = ("an index tensor was changed after the forward without an in-place op (e.g. through .numpy()), "
                 "which the version counter cannot see")


def check_masks_unchanged(shape, basic, advanced, indexed_shape, op):
    """In backward, check that the key still selects the forward's shape: integer index arrays keep their shape
    (their values are bounds-checked by NumPy where backward reads them), but a mask written through .numpy()
    may select a different number of elements."""
    if any(not isinstance(item, slice) and item.dtype.kind == "b" for item in advanced):
        now = result_shape(shape, basic, advanced)
        if now != tuple(indexed_shape):
            raise RuntimeError(f"{op}: shape mismatch: the index selects a result of shape {list(now)}, but the "
                               f"forward made one of shape {list(indexed_shape)}; {INDEX_CHANGED}")


def row_positions(shape, basic, advanced, covered):
    """For x[key], the rows of x it reads, x seen as (rows, inner) with inner = the dimensions past
    `covered`, which the key leaves whole: positions[r] is the row of x that row r of the result came from.
    Found without touching x's size of memory: each leading dimension's index, as a stride-0 broadcast,
    is indexed by the key and the results are summed."""
    host = _HOST_DEVICE
    lead = covered
    lead_shape = tuple(shape[:lead])
    positions = select(host, host.scalar_view(0, np.int64, lead_shape), basic, advanced)  # a new array
    stride = 1
    for dim in range(lead - 1, -1, -1):
        column = host.arange(0, lead_shape[dim], 1, np.int64) * stride
        column = host.reshape(column, (-1,) + (1,) * (lead - dim - 1))
        positions += select(host, host.expand(column, lead_shape), basic, advanced)
        stride *= lead_shape[dim]
    return host.reshape(positions, (-1,))
