"""Gradient clipping's fused ops over many tensors at once: their joint vector norm, in-place scaling and clamping.

Clipping runs outside the tape (as PyTorch's under no_grad), so these are plain functions of tensors, not
Functions: each is one multi-array kernel call per dtype (kernels/clip.py) on the tensors' device.
"""

import functools
import math

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES, HOST
from nbprop.tensor import Tensor

# Work is cut into blocks of this many elements, reduced one per thread: a fixed size, so that the rounding
# of a norm does not depend on the thread count.
_BLOCK_SIZE = 8192

# Below this, a sum of powers has lost precision to underflow (and inf is overflow): recompute scaled.
_SMALLEST_ACCURATE_SUM = 1e-290


class TensorGroups:
    """Floating tensors of one device grouped by dtype, each group one typed list of flat C-contiguous arrays,
    ready for the multi-array kernels (one call per dtype for all tensors). Build it once per clipping call:
    the norm and the scaling share it. `op` names the caller in errors."""

    def __init__(self, tensors, op):
        if len({tensor.device for tensor in tensors}) > 1:
            raise RuntimeError(f"{op}: all tensors must be on one device, got "
                               f"{sorted({tensor.device for tensor in tensors})}")
        self.device = DEVICES[tensors[0].device] if tensors else None
        device = self.device
        by_dtype = {}
        self.copies = []  # (array, contiguous copy) of non-contiguous arrays, written back after in-place work
        for index, tensor in enumerate(tensors):
            array = tensor._data
            if array.dtype.kind != "f":
                raise TypeError(f"{op}: tensor {index} is {array.dtype}; gradient norms need floating point")
            if not device.is_contiguous(array):
                copy = device.copy(array)
                self.copies.append((array, copy))
                array = copy
            by_dtype.setdefault(array.dtype, []).append(device.reshape(array, (array.size,)))  # a view: contiguous
        self.groups = []
        for dtype, arrays in by_dtype.items():
            size = sum(array.size for array in arrays)
            block_offsets = device.empty((len(arrays) + 1,), np.int64)
            self.groups.append((dtype, device.call("array_list", arrays), size, block_offsets, len(arrays)))
        self.sizes = [tensor._data.size for tensor in tensors]
        self.offsets_filled = False

    def result_dtype(self):
        return functools.reduce(dtypes.promote, [group[0] for group in self.groups])

    def reduce(self, power, inverse_scale):
        """The groups' combined reduction for order `power` (see kernels/clip.py vector_norm_partials)."""
        totals = []
        device = self.device
        for _, arrays, size, block_offsets, count in self.groups:
            partials = device.empty((size // _BLOCK_SIZE + count + 1,), np.float64)
            out = device.empty((1,), np.float64)
            device.call("vector_norm_partials", arrays, power, inverse_scale, _BLOCK_SIZE, block_offsets, partials,
                        out, work=size)
            totals.append(float(device.item(out)))
        self.offsets_filled = True
        if power == math.inf:
            return _nan_reduce(totals, _nan_max, -math.inf)
        if power == -math.inf:
            return _nan_reduce(totals, _nan_min, math.inf)
        return math.fsum(totals) if all(map(math.isfinite, totals)) else sum(totals)

    def _offsets(self):
        if not self.offsets_filled:
            for _, arrays, _, block_offsets, _ in self.groups:
                self.device.call("fill_block_offsets", arrays, _BLOCK_SIZE, block_offsets)
            self.offsets_filled = True

    def scale_(self, coefficient):
        """x *= coefficient for every element of every tensor, in place (rounded once to each dtype)."""
        self._offsets()
        for _, arrays, size, block_offsets, _ in self.groups:
            self.device.call("scale_arrays_", arrays, coefficient, _BLOCK_SIZE, block_offsets, work=size)
        self._write_back()

    def clamp_(self, low, high):
        """x = min(max(x, low), high) for every element of every tensor, in place (NaN stays NaN)."""
        self._offsets()
        for _, arrays, size, block_offsets, _ in self.groups:
            self.device.call("clamp_arrays_", arrays, low, high, _BLOCK_SIZE, block_offsets, work=size)
        self._write_back()

    def _write_back(self):
        for array, copy in self.copies:
            self.device.copy_into(array, copy)


def _nan_max(first, second):
    return first if first != first or first >= second else second


def _nan_min(first, second):
    return first if first != first or first <= second else second


def _nan_reduce(values, function, start):
    result = start
    for value in values:
        result = function(result, value)
    return result


def total_norm(groups, norm_type, error_if_nonfinite, op):
    """The vector norm of order `norm_type` over every element of the (non-empty) groups, a 0-d Tensor of their
    promoted dtype on their device; deterministic, rescaled exactly where a sum would overflow or underflow."""
    if (norm_type < 0 or norm_type == math.inf) and 0 in groups.sizes:
        raise RuntimeError(f"{op}: cannot compute the {norm_type} norm of an empty gradient, because the operation "
                           "has no identity")
    total = groups.reduce(norm_type, 1.0)
    if norm_type in (0.0, math.inf, -math.inf):
        norm = total
    else:
        scale = 1.0
        if 0 < norm_type and not _SMALLEST_ACCURATE_SUM <= total < math.inf:
            largest = groups.reduce(math.inf, 1.0)
            if 0 < largest < math.inf:
                # The sum overflowed or underflowed: redo it with elements scaled by a power of two (exactly).
                inverse_scale = math.ldexp(1.0, min(-math.frexp(largest)[1], 1000))
                total = groups.reduce(norm_type, inverse_scale)
                scale = 1.0 / inverse_scale
        if norm_type == 1.0:
            root = total
        elif norm_type == 2.0:
            root = math.sqrt(total) if total >= 0 else math.nan
        else:
            root = total ** (1.0 / norm_type) if total == total else math.nan
        norm = root * scale
    host = DEVICES[HOST]
    result = host.asarray(norm, groups.result_dtype())  # in host memory, rounded to the gradients' dtype
    if error_if_nonfinite and not math.isfinite(host.item(result)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    return Tensor._make(groups.device.asarray(result), None, groups.device.name)
