"""Loss functions under torch.nn.functional's names: fused binary cross-entropy kernels, the rest composed.

cross_entropy and nll_loss live in nbprop/ops/cross_entropy.py and are re-exported here.
"""

import warnings

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import elementwise, unary
from nbprop.ops.broadcast import broadcast_shapes
from nbprop.ops.cross_entropy import cross_entropy, nll_loss
from nbprop.ops.elementwise_base import scalar_tensor
from nbprop.ops.loss_arguments import (
    apply_reduction,
    broadcast_weight,
    check_floating,
    check_tensor,
    common_dtype,
    reduction_name,
)
from nbprop.tensor import Tensor

# The floor of binary_cross_entropy's gradient denominator x (1 - x): PyTorch's float32 1e-12, widened (the
# EPSILON of kernels/loss.py).
BCE_EPSILON = 9.999999960041972e-13

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss", "kl_div",
    "l1_loss", "mse_loss", "nll_loss", "smooth_l1_loss",
]


# --------------------------------------------------------------------------- binary cross-entropy


def _map(name, *arguments):
    """Run elementwise kernel `name` over arrays of one shape into a new array of the first one's dtype."""
    first = arguments[0]
    device = DEVICES[first.device]
    out = device.empty(first.shape, first.dtype)
    device.map(name, *[a._data if isinstance(a, Tensor) else a for a in arguments], out)
    return Tensor._make(out, None, first.device)


class BinaryCrossEntropy(Function):
    @staticmethod
    def forward(ctx, input, target):  # noqa: A002
        ctx.save_for_backward(input, target)
        return _map("binary_cross_entropy", input, target)

    @staticmethod
    def backward(ctx, grad_output):
        input, target = ctx.saved_tensors
        return (_map("binary_cross_entropy_backward", grad_output, input, target) if ctx.needs_input_grad[0]
                else None,
                _map("binary_cross_entropy_backward_target", grad_output, input) if ctx.needs_input_grad[1]
                else None)

    @staticmethod
    def backward_graph(ctx, grad_output):
        input, target = ctx.saved_tensors
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output * (input - target) / elementwise.clamp((1.0 - input) * input, min=BCE_EPSILON)
        if ctx.needs_input_grad[1]:
            grad_target = -unary.log(input / (1.0 - input)) * grad_output
        return grad_input, grad_target


class BinaryCrossEntropyWithLogits(Function):
    @staticmethod
    def forward(ctx, input, target, pos_weight, has_pos_weight):  # noqa: A002
        ctx.save_for_backward(input, target, pos_weight)
        ctx.has_pos_weight = has_pos_weight
        return _map("binary_cross_entropy_with_logits", input, target, pos_weight)

    @staticmethod
    def backward(ctx, grad_output):
        input, target, pos_weight = ctx.saved_tensors
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input = _map("binary_cross_entropy_with_logits_backward", grad_output, input, target, pos_weight)
        if ctx.needs_input_grad[1]:
            grad_target = _map("binary_cross_entropy_with_logits_backward_target", grad_output, input, pos_weight,
                               ctx.has_pos_weight)
        return grad_input, grad_target, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # pos_weight is a constant here (binary_cross_entropy_with_logits passes it detached).
        input, target, pos_weight = ctx.saved_tensors
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            if ctx.has_pos_weight:
                log_weight = (pos_weight - 1.0) * target + 1.0
                grad_input = (log_weight * unary.sigmoid(input) - pos_weight * target) * grad_output
            else:
                grad_input = (unary.sigmoid(input) - target) * grad_output
        if ctx.needs_input_grad[1]:
            if ctx.has_pos_weight:
                derivative = unary.logsigmoid(-input) - pos_weight * unary.logsigmoid(input)
            else:
                derivative = -input
            grad_target = derivative * grad_output
        return grad_input, grad_target, None, None


def _same_size_target(input, target, op, message):  # noqa: A002
    check_floating(input, "input", op)
    check_floating(target, "target", op)
    if target.shape != input.shape:
        raise ValueError(f"{op}: " + message.format(target=tuple(target.shape), input=tuple(input.shape)))


def _check_unit_interval(tensor, name, op):
    device = DEVICES[tensor.device]
    values = device.reshape(device.contiguous(tensor._data), (-1,))
    status = device.empty((1,), dtypes.int64)
    device.call("find_outside_unit_interval", values, status)
    position = device.read_status(status)
    if position >= 0:
        value = device.item(device.region(values, (position,)))
        raise RuntimeError(f"{op}: all elements of {name} should be between 0 and 1 (found {value} in a tensor of "
                           f"shape {tuple(tensor.shape)})")


def _weighted(loss, weight):
    return loss if weight is None else loss * weight


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,  # noqa: A002
                         reduction="mean"):
    """-weight * (t * log(x) + (1 - t) * log(1 - x)) for probabilities x and targets t in [0, 1], each log
    clamped at -100 as in PyTorch (so x = 0 or 1 gives a finite loss and gradient)."""
    op = "binary_cross_entropy"
    reduction = reduction_name(reduction, size_average, reduce, op)
    _same_size_target(input, target, op, "Using a target size ({target}) that is different to the input size "
                      "({input}) is deprecated. Please ensure they have the same size.")
    _check_unit_interval(input, "input", op)
    _check_unit_interval(target, "target", op)
    if weight is not None:
        broadcast_weight(weight, input.shape, "weight", op)
    input, target, weight = common_dtype([input, target, weight])
    return apply_reduction(_weighted(BinaryCrossEntropy.apply(input, target), weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,  # noqa: A002
                                     reduction="mean", pos_weight=None):
    """weight * ((1 - t) * x - (1 + (pos_weight - 1) * t) * log_sigmoid(x)): sigmoid + binary cross-entropy
    fused, stable for any logits x (no exp of a large positive number). `pos_weight` broadcasts against the
    input (one weight per class along the last dimension, typically)."""
    op = "binary_cross_entropy_with_logits"
    reduction = reduction_name(reduction, size_average, reduce, op)
    _same_size_target(input, target, op, "Target size ({target}) must be the same as input size ({input})")
    if weight is not None:
        broadcast_weight(weight, input.shape, "weight", op)
    if pos_weight is not None:
        broadcast_weight(pos_weight, input.shape, "pos_weight", op)
    input, target, weight, pos_weight = common_dtype([input, target, weight, pos_weight])
    if pos_weight is None:
        expanded = scalar_tensor(1.0, input.dtype, input.shape, input.device)
    else:
        expanded = pos_weight.detach().expand(input.shape)
    loss = BinaryCrossEntropyWithLogits.apply(input, target, expanded, pos_weight is not None)
    return apply_reduction(_weighted(loss, None if weight is None else weight.detach()), reduction)


# ------------------------------------------------------------------- regression losses and KL divergence


def _difference(input, target, op):  # noqa: A002
    """input - target, broadcast with PyTorch's warning when the sizes differ."""
    check_floating(input, "input", op)
    check_tensor(target, "target", op)
    if target.shape != input.shape:
        warnings.warn(f"{op}: Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)
        broadcast_shapes(tuple(input.shape), tuple(target.shape), op)
    return input - target


def _elementwise_weighted(loss, weight, input, reduction, op, weight_normalises):  # noqa: A002
    """PyTorch's optional per-element weight: mean is sum(w * loss) / sum(w) for MSE and L1, the plain mean of
    w * loss for Huber."""
    if weight is None:
        return apply_reduction(loss, reduction)
    if check_floating(weight, "weight", op).shape != input.shape:
        raise ValueError(f"{op}: Weights and input must have the same size (weight {tuple(weight.shape)}, input "
                         f"{tuple(input.shape)})")
    loss = loss * weight
    if reduction == "mean" and weight_normalises:
        return loss.sum() / weight.sum()
    return apply_reduction(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):  # noqa: A002
    """(input - target) ** 2, reduced; the gradient is 2 * (input - target)."""
    reduction = reduction_name(reduction, size_average, reduce, "mse_loss")
    difference = _difference(input, target, "mse_loss")
    return _elementwise_weighted(difference * difference, weight, input, reduction, "mse_loss", True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):  # noqa: A002
    """|input - target|, reduced; the gradient is sign(input - target), 0 at 0 as in PyTorch."""
    reduction = reduction_name(reduction, size_average, reduce, "l1_loss")
    difference = _difference(input, target, "l1_loss")
    return _elementwise_weighted(unary.abs(difference), weight, input, reduction, "l1_loss", True)


def _quadratic_or_linear(difference, threshold, divisor, linear_scale):
    """where(|d| < threshold, 0.5 * d * d / divisor, linear_scale * (|d| - 0.5 * threshold)), in PyTorch's
    order of operations, so the values are PyTorch's to the last bit.

    The quadratic branch sees d clamped to the threshold, so that the branch where() drops has a finite
    derivative (an infinite d would otherwise give 0 * inf = NaN); at |d| == threshold the linear branch is
    taken, whose gradient linear_scale * sign(d) equals PyTorch's there.
    """
    absolute = unary.abs(difference)
    clipped = elementwise.clamp(difference, -threshold, threshold)
    quadratic = clipped * clipped * 0.5
    if divisor != 1.0:
        quadratic = quadratic / divisor
    linear = absolute - 0.5 * threshold
    if linear_scale != 1.0:
        linear = linear * linear_scale
    return elementwise.where(absolute < threshold, quadratic, linear)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):  # noqa: A002
    """0.5 * d ** 2 / beta where |d| < beta, else |d| - 0.5 * beta (d = input - target); beta = 0 is L1."""
    reduction = reduction_name(reduction, size_average, reduce, "smooth_l1_loss")
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta (got beta={beta}).")
    difference = _difference(input, target, "smooth_l1_loss")
    if beta == 0:
        return apply_reduction(unary.abs(difference), reduction)
    return apply_reduction(_quadratic_or_linear(difference, float(beta), float(beta), 1.0), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):  # noqa: A002
    """0.5 * d ** 2 where |d| < delta, else delta * (|d| - 0.5 * delta) (d = input - target)."""
    reduction = reduction_name(reduction, None, None, "huber_loss")
    if not delta > 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta (got delta={delta}).")
    difference = _difference(input, target, "huber_loss")
    loss = _quadratic_or_linear(difference, float(delta), 1.0, float(delta))
    return _elementwise_weighted(loss, weight, input, reduction, "huber_loss", False)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):  # noqa: A002
    """Pointwise KL divergence target * (log(target) - input) for log-probabilities `input` (0 where target
    is 0; with log_target, exp(target) * (target - input)). 'batchmean' divides the sum by input.size(0), the
    true KL divergence per sample; 'mean' divides by every element (PyTorch warns about it)."""
    op = "kl_div"
    if size_average is not None or reduce is not None:
        reduction = reduction_name(reduction, size_average, reduce, op)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    elif reduction != "batchmean":
        reduction = reduction_name(reduction, None, None, op)
    check_floating(input, "input", op)
    check_floating(target, "target", op)
    broadcast_shapes(tuple(input.shape), tuple(target.shape), op)
    if log_target:
        loss = unary.exp(target) * (target - input)
    else:
        # xlogy(target, target): 0 where the target is 0 (where() drops the NaN of 0 * log 0).
        entropy = elementwise.where(target == 0, 0.0, target * unary.log(target))
        loss = entropy - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return apply_reduction(loss, reduction)
