"""Gradient clipping with torch.nn.utils' names and semantics: clip_grad_norm_, clip_grad_value_, get_total_norm."""

import math
import types
import warnings

import numpy as np

from nbprop.backend import DEVICES
from nbprop.tensor import Tensor

# Work is cut into blocks of this many elements, reduced one per thread: a fixed size, so that the rounding
# of a norm does not depend on the thread count.
_BLOCK_SIZE = 8192

# Below this, a sum of powers has lost precision to underflow (and inf is overflow): recompute scaled.
_SMALLEST_ACCURATE_SUM = 1e-290


def _tensor_list(tensors, op):
    if isinstance(tensors, Tensor):
        return [tensors]
    if hasattr(tensors, "parameters") and callable(tensors.parameters):
        raise TypeError(f"{op}: pass model.parameters(), not the model itself")
    is_generator = isinstance(tensors, types.GeneratorType)
    try:
        tensors = list(tensors)
    except TypeError:
        raise TypeError(f"{op}: expects a Tensor or an iterable of Tensors, got {type(tensors).__name__}") from None
    if is_generator and not tensors:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{op}: element {index} is a {type(tensor).__name__}, not a Tensor")
    return tensors


def _gradients(parameters, op):
    return [parameter.grad for parameter in _tensor_list(parameters, op) if parameter.grad is not None]


def _check_foreach(foreach, op):
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"{op}: foreach must be None or a bool, got {foreach!r}")


class _ArrayGroups:
    """The tensors' arrays grouped by dtype, each group as one typed list of flat C-contiguous arrays, ready for
    the multi-array kernels of kernels/clip.py (one call per dtype for all tensors)."""

    def __init__(self, tensors, op):
        if len({tensor.device for tensor in tensors}) > 1:
            raise RuntimeError(f"{op}: all tensors must be on one device, got "
                               f"{sorted({tensor.device for tensor in tensors})}")
        self.device = DEVICES[tensors[0].device] if tensors else None
        by_dtype = {}
        self.copies = []  # (array, contiguous copy) of non-contiguous arrays, written back after in-place work
        for index, tensor in enumerate(tensors):
            array = tensor._data
            if array.dtype.kind != "f":
                raise TypeError(f"{op}: tensor {index} is {array.dtype}; gradient norms need floating point")
            if not array.flags.c_contiguous:
                copy = np.ascontiguousarray(array)
                self.copies.append((array, copy))
                array = copy
            by_dtype.setdefault(array.dtype, []).append(array.reshape(-1))
        self.groups = []
        for dtype, arrays in by_dtype.items():
            size = sum(array.size for array in arrays)
            block_offsets = np.empty(len(arrays) + 1, np.int64)
            self.groups.append((dtype, self.device.call("array_list", arrays), size, block_offsets))
        self.sizes = [tensor._data.size for tensor in tensors]
        self.offsets_filled = False

    def result_dtype(self):
        return np.result_type(*[dtype for dtype, _, _, _ in self.groups])

    def reduce(self, power, inverse_scale):
        """The groups' combined reduction for order `power` (see kernels/clip.py vector_norm_partials)."""
        totals = []
        for _, arrays, size, block_offsets in self.groups:
            partials = np.empty(size // _BLOCK_SIZE + len(arrays) + 1)
            out = np.empty(1)
            self.device.call("vector_norm_partials", arrays, power, inverse_scale, _BLOCK_SIZE, block_offsets,
                             partials, out, work=size)
            totals.append(float(out[0]))
        self.offsets_filled = True
        if power == math.inf:
            return _nan_reduce(totals, _nan_max, -math.inf)
        if power == -math.inf:
            return _nan_reduce(totals, _nan_min, math.inf)
        return math.fsum(totals) if all(map(math.isfinite, totals)) else sum(totals)

    def _offsets(self):
        if not self.offsets_filled:
            for _, arrays, _, block_offsets in self.groups:
                self.device.call("fill_block_offsets", arrays, _BLOCK_SIZE, block_offsets)
            self.offsets_filled = True

    def scale_(self, coefficient):
        self._offsets()
        for _, arrays, size, block_offsets in self.groups:
            self.device.call("scale_arrays_", arrays, coefficient, _BLOCK_SIZE, block_offsets, work=size)
        self._write_back()

    def clamp_(self, low, high):
        self._offsets()
        for _, arrays, size, block_offsets in self.groups:
            self.device.call("clamp_arrays_", arrays, low, high, _BLOCK_SIZE, block_offsets, work=size)
        self._write_back()

    def _write_back(self):
        for array, copy in self.copies:
            np.copyto(array, copy)


def _nan_max(first, second):
    return first if first != first or first >= second else second


def _nan_min(first, second):
    return first if first != first or first <= second else second


def _nan_reduce(values, function, start):
    result = start
    for value in values:
        result = function(result, value)
    return result


def _total_norm(groups, norm_type, error_if_nonfinite):
    """The vector norm of order norm_type over every element of the groups, a 0-d Tensor."""
    if not groups.groups:
        from nbprop.creation import tensor

        return tensor(0.0)
    if (norm_type < 0 or norm_type == math.inf) and 0 in groups.sizes:
        raise RuntimeError(f"clip_grad_norm_: cannot compute the {norm_type} norm of an empty gradient, because "
                           "the operation has no identity")
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
    result = np.array(norm, groups.result_dtype())
    if error_if_nonfinite and not np.isfinite(result):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    return Tensor._make(result, None, groups.device.name)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of order `norm_type` of all elements of `tensors` together (a Tensor or an iterable), as if
    concatenated into one vector: a 0-d Tensor of their (promoted) dtype; 0 over no tensors.

    Any order p: 1, 2, other p (sum |x|^p)^(1/p), inf (max |x|), -inf (min |x|), and 0 as PyTorch computes
    it (the number of tensors holding a nonzero). Accumulates in float64 over blocks in a fixed order
    (deterministic), rescaling exactly when a sum would overflow or underflow. With `error_if_nonfinite` a
    NaN or infinite norm raises RuntimeError. `foreach` is accepted for PyTorch compatibility: every path is
    one multi-array kernel call per dtype.
    """
    _check_foreach(foreach, "get_total_norm")
    tensors = _tensor_list(tensors, "get_total_norm")
    return _total_norm(_ArrayGroups(tensors, "get_total_norm"), float(norm_type), error_if_nonfinite)


def _clip_coefficient(max_norm, total_norm):
    """min(1, max_norm / (total_norm + 1e-6)) in the norm's dtype, rounded as PyTorch does (a reciprocal,
    then a product); NaN stays NaN. None when it is 1 (clipping would change nothing)."""
    array = total_norm._data if isinstance(total_norm, Tensor) else np.asarray(total_norm, np.float64)
    number = array.dtype.type
    coefficient = (number(1.0) / (number(array) + number(1e-6))) * number(max_norm)
    if coefficient >= 1.0:
        return None
    return float(coefficient)


def _scale_by_norm(groups, gradients, max_norm, total_norm):
    coefficient = _clip_coefficient(max_norm, total_norm)
    if coefficient is None:
        # clamp(max=1): multiplying by 1 changes nothing, so skip the pass over the gradients.
        return
    groups.scale_(coefficient)
    for gradient in gradients:
        gradient._version_counter[0] += 1


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of `parameters` in place by min(1, max_norm / (total_norm + 1e-6)), given the total
    norm (from `get_total_norm`). Parameters without a gradient are skipped."""
    _check_foreach(foreach, "clip_grads_with_norm_")
    gradients = _gradients(parameters, "clip_grads_with_norm_")
    if gradients:
        _scale_by_norm(_ArrayGroups(gradients, "clip_grads_with_norm_"), gradients, float(max_norm), total_norm)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients of `parameters` (a Tensor or an iterable) so that their total norm is at most
    `max_norm`, in place, and return the total norm before clipping (a 0-d Tensor).

    The norm is `get_total_norm` of the gradients (parameters without a gradient are skipped); every gradient
    is multiplied by min(1, max_norm / (norm + 1e-6)), as in PyTorch. A NaN or infinite norm raises
    RuntimeError if `error_if_nonfinite`; otherwise the gradients are scaled by it anyway (an infinite norm
    zeroes the finite entries and turns infinite ones into NaN; a NaN norm makes every entry NaN), as PyTorch
    does.
    """
    _check_foreach(foreach, "clip_grad_norm_")
    gradients = _gradients(parameters, "clip_grad_norm_")
    groups = _ArrayGroups(gradients, "clip_grad_norm_")
    total_norm = _total_norm(groups, float(norm_type), error_if_nonfinite)
    if gradients:
        _scale_by_norm(groups, gradients, float(max_norm), total_norm)
    return total_norm


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp the gradients of `parameters` (a Tensor or an iterable) into [-clip_value, clip_value] in place;
    parameters without a gradient are skipped, NaN stays NaN (PyTorch's clamp_min then clamp_max)."""
    _check_foreach(foreach, "clip_grad_value_")
    clip_value = float(clip_value)
    gradients = _gradients(parameters, "clip_grad_value_")
    if not gradients:
        return
    _ArrayGroups(gradients, "clip_grad_value_").clamp_(-clip_value, clip_value)
    for gradient in gradients:
        gradient._version_counter[0] += 1
