"""Fused loss kernels: cross-entropy (log-softmax + NLL), NLL, binary cross-entropy with and without logits.

Cross-entropy kernels take C-contiguous (rows, classes) float32/float64 logits (the frontend moves the class
dimension last), int64 class targets (rows,) or float class-probability targets (rows, classes), and a
weight (classes,) of the logits' dtype (ones when the caller has none). One prange loop runs over the rows:
each row is reduced in one fixed order by a row function compiled once and called by both the serial and the
parallel variant, and the per-row losses are then summed serially in row order, so results are bit-identical
on reruns and between variants. Sums accumulate in float64 even for float32 data. Binary cross-entropy
kernels are elementwise over (rows, columns) arrays of one shape, any strides, for `device.map`.
"""

import math

from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel, scalar_function
from nbprop.kernels.scalar_bits import maximum_number

# Reduction codes, PyTorch's enum values.
NONE, MEAN, SUM = 0, 1, 2

# binary_cross_entropy clamps each log term at -100 and each gradient denominator at PyTorch's EPSILON, the
# float32 1e-12 (9.99999996e-13 once widened).
LOG_FLOOR = -100.0
EPSILON = 9.999999960041972e-13

# ------------------------------------------------------------------------------------------- one row


@scalar_function
def _row_max(x):
    """The row's max, skipping NaN (which then spreads through exp); -inf for an empty row. Kept in the row's
    dtype, so a float32 row calls the float32 exp."""
    largest = x.dtype.type(-math.inf)
    for column in range(x.shape[0]):
        largest = maximum_number(largest, x[column])  # vectorises, where a compare-and-select needs nnan
    return largest


@cpu_kernel
def _exponentials(x, exps):
    """The row's max and sum(exp(x - max)) (float64), writing exp(x - max) into `exps`; (-inf, 0) if empty."""
    largest = _row_max(x)
    total = 0.0
    for column in range(x.shape[0]):
        value = scalar.exp(x[column] - largest)
        exps[column] = value
        total += value
    return largest, total


@cpu_kernel
def _exponential_sum(x):
    """As `_exponentials`, without storing the exponentials (no backward will need them)."""
    largest = _row_max(x)
    total = 0.0
    for column in range(x.shape[0]):
        total += scalar.exp(x[column] - largest)
    return largest, total


@scalar_function
def _record_exponentials(logits, row, store, exps, row_max, row_total):
    """Row `row`'s max and sum(exp(x - max)), kept in row_max and row_total for the backward (and
    exp(x - max) in exps[row] when `store`)."""
    if store:
        largest, total = _exponentials(logits[row], exps[row])
    else:
        largest, total = _exponential_sum(logits[row])
    row_max[row] = largest
    row_total[row] = total
    return largest, total


@cpu_kernel
def _class_row_loss(x, largest, log_total, target_class, weight, smoothing):
    """(1 - s) * -w[t] * logp[t] + (s / C) * -sum_c w[c] * logp[c], with logp = (x - max) - log(total)."""
    loss = -weight[target_class] * ((x[target_class] - largest) - log_total)
    if smoothing > 0.0:
        smooth = 0.0
        for column in range(x.shape[0]):
            smooth -= weight[column] * ((x[column] - largest) - log_total)
        loss = (1.0 - smoothing) * loss + smooth * (smoothing / x.shape[0])
    return loss


@cpu_kernel
def _class_row_gradient(exps, total, target_class, weight, smoothing, weight_total, scale, out):
    """scale * (softmax * m - (s / C) * w - (1 - s) * w[t] * one_hot(t)), m = (1 - s) * w[t] + (s / C) * sum w."""
    target_weight = weight[target_class]
    inverse = scale / total
    if smoothing > 0.0:
        spread = smoothing / out.shape[0]
        factor = inverse * ((1.0 - smoothing) * target_weight + spread * weight_total)
        for column in range(out.shape[0]):
            out[column] = exps[column] * factor - scale * spread * weight[column]
        out[target_class] -= scale * (1.0 - smoothing) * target_weight
    else:
        factor = inverse * target_weight
        for column in range(out.shape[0]):
            out[column] = exps[column] * factor
        out[target_class] -= scale * target_weight


@cpu_kernel
def _smoothed(probability, smoothing, spread):
    """PyTorch's smoothed class probability: p * (1 - s) + s / C (p itself when s is 0)."""
    return probability * (1.0 - smoothing) + spread if smoothing > 0.0 else probability


@cpu_kernel
def _probability_row_loss(x, target, weight, largest, log_total, smoothing):
    """-sum_c logp[c] * q[c] * w[c], q the smoothed target probabilities."""
    spread = smoothing / x.shape[0]
    loss = 0.0
    for column in range(x.shape[0]):
        loss += ((x[column] - largest) - log_total) * _smoothed(target[column], smoothing, spread) * weight[column]
    return -loss


@cpu_kernel
def _probability_row_gradient(exps, total, target, weight, smoothing, scale, out):
    """scale * (softmax * sum_c w[c] q[c] - w * q), q the smoothed target probabilities."""
    spread = smoothing / out.shape[0]
    mass = 0.0
    for column in range(out.shape[0]):
        mass += weight[column] * _smoothed(target[column], smoothing, spread)
    factor = scale * mass / total
    for column in range(out.shape[0]):
        out[column] = exps[column] * factor - scale * weight[column] * _smoothed(target[column], smoothing, spread)


@cpu_kernel
def _row_scale(grad_output, row, reduction, denominator):
    """The gradient reaching one row's loss: its own for 'none', the scalar's (over the denominator) else."""
    if reduction == NONE:
        return grad_output[row]
    if reduction == MEAN:
        return grad_output[0] / denominator
    return grad_output[0]


@cpu_kernel
def _finish(row_loss, denominator, reduction, totals, result):
    """Sum the row losses in row order into totals[0], keep the mean's denominator in totals[1], and write
    the reduced loss (0 / 0 = NaN for a mean over nothing, as in PyTorch) into result[0]."""
    loss_sum = 0.0
    for row in range(row_loss.shape[0]):
        loss_sum += row_loss[row]
    totals[0] = loss_sum
    totals[1] = denominator
    if result.shape[0]:
        result[0] = loss_sum / denominator if reduction == MEAN else loss_sum


@cpu_kernel
def _first_invalid_target(target, classes, ignore_index):
    """The first row whose class is neither ignore_index nor in [0, classes), or -1."""
    for row in range(target.shape[0]):
        target_class = target[row]
        if target_class != ignore_index and (target_class < 0 or target_class >= classes):
            return row
    return -1


@scalar_function
def _adds_to_loss(target_class, classes, ignore_index):
    """Whether a row with this class adds to the loss: not ignored and a class in [0, classes), the only
    classes that index memory. Checked again at each read, besides `_first_invalid_target`'s pass, so that
    targets changed meanwhile (through .numpy(), by another thread) cannot send a read out of bounds."""
    return target_class != ignore_index and target_class >= 0 and target_class < classes


# ------------------------------------------------------------------------------------ cross-entropy


@parallel_cpu_kernel
def cross_entropy_forward(logits, target, weight, ignore_index, smoothing, reduction, exps, row_max, row_total,
                          row_loss, totals, result, status):
    """Cross-entropy of logits (rows, C) against class indices target (rows,) int64.

    row_loss[r] = (1 - s) * -w[t] * logp[r, t] + (s / C) * -sum_c w[c] * logp[r, c] with
    logp = (x - max) - log(sum exp(x - max)), s the label smoothing; 0 where t == ignore_index. The mean
    divides the sum by sum of w[t] over the rows not ignored (NaN if none). Writes row_max, row_total (sum of
    exp(x - max)), float64 (rows,), exps = exp(x - max) (rows, C) unless exps has 0 rows, totals (3,) float64
    (loss sum, mean denominator), result (1,) the reduced loss (0 rows for 'none'), status (1,) int64: the
    first row with a class out of range, or -1; nothing else is written when one is found.
    """
    rows, classes = logits.shape
    status[0] = _first_invalid_target(target, classes, ignore_index)
    if status[0] < 0:
        store = exps.shape[0] != 0
        for row in prange(rows):
            largest, total = _record_exponentials(logits, row, store, exps, row_max, row_total)
            target_class = target[row]
            if _adds_to_loss(target_class, classes, ignore_index):
                row_loss[row] = _class_row_loss(logits[row], largest, math.log(total), target_class, weight,
                                                smoothing)
            else:
                row_loss[row] = 0.0
        weight_sum = 0.0
        for row in range(rows):
            target_class = target[row]
            if _adds_to_loss(target_class, classes, ignore_index):
                weight_sum += weight[target_class]
        _finish(row_loss, weight_sum, reduction, totals, result)


@parallel_cpu_kernel
def cross_entropy_backward(grad_output, target, weight, ignore_index, smoothing, reduction, exps, row_total,
                           totals, out, status):
    """d cross_entropy / d logits, out (rows, C), from the forward's exps, row_total and totals.

    out[r] = g_r * (softmax[r] * m - (s / C) * w - (1 - s) * w[t] * one_hot(t)), m = (1 - s) * w[t] +
    (s / C) * sum w; 0 for ignored rows. g_r is grad_output[r] for 'none' ((rows,)), else grad_output[0]
    ((1,)), divided by the weight sum totals[1] for 'mean'. status (1,) int64: the first row whose class is
    now out of range (targets written through .numpy() since the forward), or -1; out is not written then.
    """
    classes = out.shape[1]
    status[0] = _first_invalid_target(target, classes, ignore_index)
    if status[0] >= 0:
        return
    weight_total = 0.0
    if smoothing > 0.0:
        for column in range(weight.shape[0]):
            weight_total += weight[column]
    for row in prange(out.shape[0]):
        target_class = target[row]
        if _adds_to_loss(target_class, classes, ignore_index):
            scale = _row_scale(grad_output, row, reduction, totals[1])
            _class_row_gradient(exps[row], row_total[row], target_class, weight, smoothing, weight_total, scale,
                                out[row])
        else:
            for column in range(classes):
                out[row, column] = 0.0


@parallel_cpu_kernel
def cross_entropy_probabilities_forward(logits, target, weight, smoothing, reduction, exps, row_max, row_total,
                                        row_loss, totals, result):
    """Cross-entropy of logits (rows, C) against class probabilities target (rows, C).

    row_loss[r] = -sum_c logp[r, c] * q[r, c] * w[c], q = target * (1 - s) + s / C (target when s = 0).
    The mean divides by the number of rows (NaN for none). Writes as cross_entropy_forward.
    """
    store = exps.shape[0] != 0
    for row in prange(logits.shape[0]):
        largest, total = _record_exponentials(logits, row, store, exps, row_max, row_total)
        row_loss[row] = _probability_row_loss(logits[row], target[row], weight, largest, math.log(total), smoothing)
    # PyTorch's mean over an empty input is NaN even when there are rows (of zero classes).
    denominator = float(logits.shape[0]) if logits.shape[1] else 0.0
    _finish(row_loss, denominator, reduction, totals, result)


@parallel_cpu_kernel
def cross_entropy_probabilities_backward(grad_output, target, weight, smoothing, reduction, exps, row_total, totals,
                                         out):
    """d cross_entropy / d logits for probability targets: out[r] = g_r * (softmax[r] * sum_c w q[r] - w q[r]),
    shapes as cross_entropy_backward, q as in the forward."""
    for row in prange(out.shape[0]):
        scale = _row_scale(grad_output, row, reduction, totals[1])
        _probability_row_gradient(exps[row], row_total[row], target[row], weight, smoothing, scale, out[row])


@parallel_cpu_kernel
def cross_entropy_probabilities_backward_target(grad_output, logits, weight, smoothing, reduction, row_max,
                                                row_total, totals, out):
    """d cross_entropy / d target for probability targets: out[r] = -g_r * (1 - s) * w * logp[r], (rows, C)."""
    keep = 1.0 - smoothing if smoothing > 0.0 else 1.0
    for row in prange(out.shape[0]):
        scale = _row_scale(grad_output, row, reduction, totals[1]) * keep
        log_total = math.log(row_total[row])
        for column in range(out.shape[1]):
            out[row, column] = -scale * weight[column] * ((logits[row, column] - row_max[row]) - log_total)


# ------------------------------------------------------------------------------------------------ NLL


@cpu_kernel
def nll_loss_forward(log_probabilities, target, weight, ignore_index, reduction, row_loss, totals, result, status):
    """row_loss[r] = -w[t] * x[r, t] for x (rows, C), t = target[r] (0 where t == ignore_index); the mean
    divides by the sum of w[t] over rows not ignored. Writes totals, result and status as
    cross_entropy_forward. Serial: one element per row."""
    classes = log_probabilities.shape[1]
    status[0] = _first_invalid_target(target, classes, ignore_index)
    if status[0] < 0:
        weight_sum = 0.0
        for row in range(target.shape[0]):
            target_class = target[row]
            if _adds_to_loss(target_class, classes, ignore_index):
                row_loss[row] = -weight[target_class] * log_probabilities[row, target_class]
                weight_sum += weight[target_class]
            else:
                row_loss[row] = 0.0
        _finish(row_loss, weight_sum, reduction, totals, result)


@parallel_cpu_kernel
def nll_loss_backward(grad_output, target, weight, ignore_index, reduction, totals, out, status):
    """d nll_loss / d x: out[r, t] = -w[t] * g_r (g_r as in cross_entropy_backward), 0 elsewhere; (rows, C).
    status as in cross_entropy_backward."""
    classes = out.shape[1]
    status[0] = _first_invalid_target(target, classes, ignore_index)
    if status[0] >= 0:
        return
    for row in prange(out.shape[0]):
        for column in range(classes):
            out[row, column] = 0.0
        target_class = target[row]
        if _adds_to_loss(target_class, classes, ignore_index):
            out[row, target_class] = -weight[target_class] * _row_scale(grad_output, row, reduction, totals[1])


# ----------------------------------------------------------------------------- binary cross-entropy


@scalar_function
def log_sigmoid(x):
    """log(1 / (1 + exp(-x))) = min(x, 0) - log1p(exp(-|x|)): exp only of a non-positive number."""
    return min(x, 0.0) - math.log1p(scalar.exp(-abs(x)))


@cpu_kernel
def find_outside_unit_interval(values, status):
    """status[0] = the first index of values (1-D) not in [0, 1] (NaN included), or -1."""
    status[0] = -1
    for index in range(values.shape[0]):
        if not (values[index] >= 0.0 and values[index] <= 1.0):
            status[0] = index
            return


@parallel_cpu_kernel
def binary_cross_entropy(x, target, out):
    """out = -(t * max(log x, -100) + (1 - t) * max(log(1 - x), -100)), x and t in [0, 1] (PyTorch's order)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value, probability = x[row, column], target[row, column]
            out[row, column] = ((probability - 1.0) * max(math.log1p(-value), LOG_FLOOR)
                                - probability * max(math.log(value), LOG_FLOOR))


@parallel_cpu_kernel
def binary_cross_entropy_backward(grad_output, x, target, out):
    """d bce / dx = g * (x - t) / max(x * (1 - x), 1e-12), PyTorch's clamped form."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = (grad_output[row, column] * (value - target[row, column])
                                / max((1.0 - value) * value, EPSILON))


@parallel_cpu_kernel
def binary_cross_entropy_backward_target(grad_output, x, out):
    """d bce / dt = -g * log(x / (1 - x)) (PyTorch's unclamped logit)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            out[row, column] = -math.log(value / (1.0 - value)) * grad_output[row, column]


@parallel_cpu_kernel
def binary_cross_entropy_with_logits(x, target, pos_weight, out):
    """out = (1 - t) * x - (1 + (p - 1) * t) * log_sigmoid(x), p the positive-class weight (1 for none).

    Never takes exp of a positive number: finite for any finite x.
    """
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value, probability = x[row, column], target[row, column]
            log_weight = 1.0 + (pos_weight[row, column] - 1.0) * probability
            out[row, column] = (1.0 - probability) * value - log_weight * log_sigmoid(value)


@parallel_cpu_kernel
def binary_cross_entropy_with_logits_backward(grad_output, x, target, pos_weight, out):
    """d / dx = g * ((1 + (p - 1) * t) * sigmoid(x) - p * t) (= g * (sigmoid(x) - t) for p = 1)."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            probability, weight = target[row, column], pos_weight[row, column]
            log_weight = 1.0 + (weight - 1.0) * probability
            out[row, column] = (log_weight * scalar.sigmoid(x[row, column]) - weight * probability) \
                * grad_output[row, column]


@parallel_cpu_kernel
def binary_cross_entropy_with_logits_backward_target(grad_output, x, pos_weight, has_pos_weight, out):
    """d / dt = g * (log_sigmoid(-x) - p * log_sigmoid(x)), or exactly -g * x without a pos_weight."""
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = x[row, column]
            if has_pos_weight:
                derivative = log_sigmoid(-value) - pos_weight[row, column] * log_sigmoid(value)
            else:
                derivative = -value
            out[row, column] = derivative * grad_output[row, column]
