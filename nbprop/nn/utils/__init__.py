"""Gradient clipping with torch.nn.utils' names and semantics: clip_grad_norm_, clip_grad_value_, get_total_norm."""

import types
import warnings

import numpy as np

from nbprop.capture.state import host_step
from nbprop.ops import clip
from nbprop.tensor import Tensor


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


def _total_norm(tensors, norm_type, error_if_nonfinite, op, groups=None):
    """The vector norm of order norm_type over every element of the tensors, a 0-d Tensor (0 over none)."""
    if not tensors:
        from nbprop.creation import tensor

        return tensor(0.0)
    return clip.total_norm(groups or clip.TensorGroups(tensors, op), norm_type, error_if_nonfinite, op)


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
    return _total_norm(tensors, float(norm_type), error_if_nonfinite, "get_total_norm")


def _clip_coefficient(max_norm, total_norm):
    """min(1, max_norm / (total_norm + 1e-6)) in the norm's dtype, rounded as PyTorch does (a reciprocal,
    then a product); NaN stays NaN. None when it is 1 (clipping would change nothing)."""
    if isinstance(total_norm, Tensor):
        number, value = total_norm.dtype.type, total_norm.item()
    else:
        number, value = np.float64, total_norm
    coefficient = (number(1.0) / (number(value) + number(1e-6))) * number(max_norm)
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


@host_step
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of `parameters` in place by min(1, max_norm / (total_norm + 1e-6)), given the total
    norm (from `get_total_norm`). Parameters without a gradient are skipped."""
    _check_foreach(foreach, "clip_grads_with_norm_")
    gradients = _gradients(parameters, "clip_grads_with_norm_")
    if gradients:
        _scale_by_norm(clip.TensorGroups(gradients, "clip_grads_with_norm_"), gradients, float(max_norm), total_norm)


@host_step
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
    groups = clip.TensorGroups(gradients, "clip_grad_norm_")
    total_norm = _total_norm(gradients, float(norm_type), error_if_nonfinite, "clip_grad_norm_", groups)
    if gradients:
        _scale_by_norm(groups, gradients, float(max_norm), total_norm)
    return total_norm


@host_step
def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp the gradients of `parameters` (a Tensor or an iterable) into [-clip_value, clip_value] in place;
    parameters without a gradient are skipped, NaN stays NaN (PyTorch's clamp_min then clamp_max)."""
    _check_foreach(foreach, "clip_grad_value_")
    clip_value = float(clip_value)
    gradients = _gradients(parameters, "clip_grad_value_")
    if not gradients:
        return
    clip.TensorGroups(gradients, "clip_grad_value_").clamp_(-clip_value, clip_value)
    for gradient in gradients:
        gradient._version_counter[0] += 1
