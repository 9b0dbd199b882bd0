"""cross_entropy and nll_loss: log-softmax and NLL fused in one stable row kernel each way."""

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement
from nbprop.ops.elementwise import where
from nbprop.ops.loss_arguments import REDUCTIONS, check_floating, check_tensor, common_dtype, reduction_name
from nbprop.ops.softmax import _Rows
from nbprop.tensor import Tensor

# ------------------------------------------------------------------------------------- argument checks


def _class_weight(weight, classes, dtype, device, op):
    """The per-class weight array (ones when None), checked against the number of classes."""
    if weight is None:
        return DEVICES[device].full((classes,), 1, dtype)
    check_tensor(weight, "weight", op)
    if weight.ndim != 1 or weight.shape[0] != classes:
        raise RuntimeError(f"{op}: weight tensor should be defined either for all {classes} classes or no classes "
                           f"but got weight tensor of shape: {list(weight.shape)}")
    if weight.dtype != dtype:
        raise RuntimeError(f"{op}: expected a weight of the input's dtype {dtype}, got {weight.dtype}")
    return DEVICES[device].contiguous(weight._data)


def _check_class_target(input, target, op):  # noqa: A002 - PyTorch's argument name
    """PyTorch's nll_loss_nd checks of class-index targets against an input (C,), (N, C) or (N, C, d1, ...)."""
    check_tensor(target, "target", op)
    if target.dtype != dtypes.int64:
        raise RuntimeError(f"{op}: expected target dtype to be Long (int64 class indices), but got {target.dtype} "
                           f"(target shape {tuple(target.shape)}, input shape {tuple(input.shape)})")
    if input.ndim == 1:
        if target.ndim > 1:
            raise RuntimeError(f"{op}: 0D or 1D target tensor expected, multi-target not supported (input "
                               f"{tuple(input.shape)}, target {tuple(target.shape)})")
        if target.ndim == 1 and target.shape[0] != 1:
            raise ValueError(f"{op}: For 1D input, 1D target must have size 1, but got target size: "
                             f"{target.shape[0]}")
        return
    batch = target.shape[0] if target.ndim else 0
    if input.shape[0] != batch:
        raise ValueError(f"{op}: Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({batch}).")
    if input.ndim == 2 and target.ndim != 1:
        raise RuntimeError(f"{op}: 0D or 1D target tensor expected, multi-target not supported (input "
                           f"{tuple(input.shape)}, target {tuple(target.shape)})")
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise RuntimeError(f"{op}: Expected target size {list(expected)}, got {list(target.shape)} (input "
                           f"{tuple(input.shape)})")


def _class_input(input, op):  # noqa: A002
    if check_floating(input, "input", op).ndim == 0:
        raise ValueError(f"{op}: Expected 1 or more dimensions (got 0): the input is (C,), (N, C) or "
                         "(N, C, d1, ...)")
    return input


# ------------------------------------------------------------------------------ fused row Functions


def _rows_of(input):  # noqa: A002
    """The input's layout with the class dimension (0 for (C,), else 1) moved last."""
    return _Rows(input.shape, (0 if input.ndim == 1 else 1,))


def _scalar_or_rows(grad_output, device):
    return device.reshape(device.contiguous(grad_output._data), (-1,))


def _buffers(device, layout, dtype, store, reduction):
    """exps (empty unless a backward needs them), row max, row total, row losses, totals, result."""
    classes = layout.length
    return (device.empty((layout.rows, classes) if store else (0, classes), dtype),
            device.empty((layout.rows,), dtypes.float64), device.empty((layout.rows,), dtypes.float64),
            device.empty((layout.rows,), dtype), device.empty((2,), dtypes.float64),
            device.empty((0 if reduction == "none" else 1,), dtype))


def _loss_tensor(reduction, row_loss, result, shape, device_name):
    device = DEVICES[device_name]
    array = device.reshape(row_loss, tuple(shape)) if reduction == "none" else device.reshape(result, ())
    return Tensor._make(array, None, device_name)


def _raise_out_of_bounds(device, status, targets, classes, ignore_index, op, backward=False):
    row = device.read_status(status)
    if row >= 0:
        # In backward the targets passed the forward's check and no in-place op changed them (the version
        # counter would have said so): they were written through .numpy() or another alias.
        cause = ("; the targets were changed after the forward without an in-place op (e.g. through .numpy())"
                 if backward else "")
        target = device.item(device.region(targets, (row,)))
        raise IndexError(f"{op}: Target {target} is out of bounds. (classes are 0 to {classes - 1}, "
                         f"ignore_index={ignore_index}){cause}")


# ----------------------------------------------------------------- recorded backward (create_graph=True)


def _to_rows(tensor, layout):
    """`tensor` in the kernels' (rows, classes) layout, recorded: the class dimension moved last."""
    if layout.moved:
        tensor = movement.permute(tensor, layout.order)
    return movement.reshape(tensor, layout.rows_shape)


def _from_rows(tensor, layout):
    """A recorded (rows, classes) gradient back in the input's dimension order and shape."""
    tensor = movement.reshape(tensor, layout.moved_shape)
    return movement.permute(tensor, layout.inverse) if layout.moved else tensor


def _row_gradient(grad_output, reduction, layout, totals):
    """The gradient reaching each row's loss, recorded in grad_output: (rows, 1) for 'none', else (1, 1),
    the mean's divided by the forward's denominator totals[1], as the kernels' _row_scale."""
    if reduction == REDUCTIONS["none"]:
        return movement.reshape(grad_output, (layout.rows, 1))
    grad = movement.reshape(grad_output, (1, 1))
    if reduction == REDUCTIONS["mean"]:
        device = DEVICES[grad_output.device]
        grad = grad / device.item(device.region(totals, (1,)))
    return grad


def _class_masks(targets, layout, ignore_index, dtype, device_name):
    """Constants from the class targets (rows,): the one-hot (rows, C) of each row's class in `dtype` (a zero
    row where ignored), and the bool (rows, 1) of the rows that add to the loss (None when all do)."""
    device = DEVICES[device_name]
    target = Tensor._make(device.reshape(targets, (layout.rows, 1)), None, device_name)
    classes = Tensor._make(device.arange(0, layout.length, 1, dtypes.int64), None, device_name)
    valid = target != ignore_index
    one_hot = ((target == classes) & valid).to(dtype)
    return one_hot, None if device.count_nonzero(valid._data) == layout.rows else valid


def _shifted_rows(logits, layout, row_max):
    """The logits as (rows, C) minus the forward's row max, recorded: a constant shift, which changes no
    derivative of softmax or log_softmax and keeps exp from overflowing."""
    shift = Tensor._make(DEVICES[logits.device].reshape(row_max, (layout.rows, 1)), None, logits.device)
    return _to_rows(logits, layout) - shift.to(logits.dtype)


def _softmax(shifted):
    exponentials = shifted.exp()
    return exponentials / exponentials.sum(1, keepdim=True)


def _kept_logits(ctx):
    """The logits a CrossEntropy forward kept for a recorded backward, unless changed in place since."""
    logits, version = ctx.logits, ctx.logits_version
    if logits._version_counter[0] != version:
        raise RuntimeError(f"cross_entropy backward with create_graph=True: the input (logits of shape "
                           f"{tuple(logits.shape)}) was modified by an in-place operation after the forward "
                           f"(version {version} then, {logits._version_counter[0]} now), and the recorded "
                           "backward differentiates through it")
    return logits


class CrossEntropy(Function):
    """log_softmax + nll_loss over class-index targets in one kernel each way."""

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, smoothing, reduction):  # noqa: A002
        device = DEVICES[input.device]
        layout = _rows_of(input)
        rows = layout.to_rows(input._data, device)
        targets = device.reshape(device.contiguous(target._data), (layout.rows,))
        weights = _class_weight(weight, layout.length, input.dtype, input.device, "cross_entropy")
        exps, row_max, row_total, row_loss, totals, result = _buffers(
            device, layout, rows.dtype, ctx.needs_input_grad[0], reduction)
        status = device.empty((1,), dtypes.int64)
        device.call("cross_entropy_forward", rows, targets, weights, ignore_index, smoothing, REDUCTIONS[reduction],
                    exps, row_max, row_total, row_loss, totals, result, status, work=rows.size)
        _raise_out_of_bounds(device, status, targets, layout.length, ignore_index, "cross_entropy")
        ctx.save_for_backward(target, weight)
        ctx.arrays = (targets, weights, exps, row_total, totals)
        # Only a recorded backward reads the logits (the fast one reads exps): kept outside the saved tensors,
        # so that changing them in place after the forward stays allowed, as in PyTorch.
        if ctx.needs_input_grad[0]:
            ctx.logits, ctx.logits_version, ctx.row_max = input, input._version_counter[0], row_max
        ctx.layout, ctx.options = layout, (ignore_index, smoothing, REDUCTIONS[reduction])
        return _loss_tensor(reduction, row_loss, result, target.shape if input.ndim > 1 else (), input.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if the target or weight was modified in place since forward
        device = DEVICES[grad_output.device]
        targets, weights, exps, row_total, totals = ctx.arrays
        ignore_index, smoothing, reduction = ctx.options
        out = device.empty(exps.shape, exps.dtype)
        status = device.empty((1,), dtypes.int64)
        device.call("cross_entropy_backward", _scalar_or_rows(grad_output, device), targets, weights, ignore_index,
                    smoothing, reduction, exps, row_total, totals, out, status, work=out.size)
        _raise_out_of_bounds(device, status, targets, ctx.layout.length, ignore_index, "cross_entropy backward", True)
        grad_input = Tensor._make(ctx.layout.from_rows(out, device), None, grad_output.device)
        return grad_input, None, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # backward's formula in recorded ops: g * (softmax * sum(q) - q) per row, q the weighted smoothed
        # target (1 - s) * w[t] * one_hot(t) + (s / C) * w (zero for ignored rows); the weight is a constant,
        # as in the fast backward and PyTorch.
        ctx.saved_tensors  # noqa: B018 - raises if the target or weight was modified in place since forward
        logits = _kept_logits(ctx)
        targets, weights, _, _, totals = ctx.arrays
        ignore_index, smoothing, reduction = ctx.options
        layout, device_name = ctx.layout, grad_output.device
        one_hot, valid = _class_masks(targets, layout, ignore_index, logits.dtype, device_name)
        weight = Tensor._make(weights, None, device_name)
        target = one_hot * weight
        if smoothing > 0.0:
            # one_hot's row sums are 1 on the rows that add to the loss and 0 on the ignored ones
            target = target * (1.0 - smoothing) + one_hot.sum(1, keepdim=True) * weight * (smoothing / layout.length)
        probabilities = _softmax(_shifted_rows(logits, layout, ctx.row_max))
        grad = _row_gradient(grad_output, reduction, layout, totals) * (
            probabilities * target.sum(1, keepdim=True) - target)
        if valid is not None:  # not 0 * (g / 0): the mean over no row divides by 0
            grad = where(valid, grad, 0.0)
        return _from_rows(grad, layout), None, None, None, None, None


class ProbabilityCrossEntropy(Function):
    """log_softmax + the weighted dot with class-probability targets; gradients for input and target."""

    @staticmethod
    def forward(ctx, input, target, weight, smoothing, reduction):  # noqa: A002
        device = DEVICES[input.device]
        layout = _rows_of(input)
        rows = layout.to_rows(input._data, device)
        probabilities = layout.to_rows(target._data, device)
        weights = _class_weight(weight, layout.length, input.dtype, input.device, "cross_entropy")
        exps, row_max, row_total, row_loss, totals, result = _buffers(
            device, layout, rows.dtype, ctx.needs_input_grad[0], reduction)
        device.call("cross_entropy_probabilities_forward", rows, probabilities, weights, smoothing,
                    REDUCTIONS[reduction], exps, row_max, row_total, row_loss, totals, result, work=rows.size)
        ctx.save_for_backward(input, target, weight)
        ctx.arrays = (rows, probabilities, weights, exps, row_max, row_total, totals)
        ctx.layout, ctx.options = layout, (smoothing, REDUCTIONS[reduction])
        shape = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
        return _loss_tensor(reduction, row_loss, result, shape, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if an input was modified in place since forward
        device = DEVICES[grad_output.device]
        rows, probabilities, weights, exps, row_max, row_total, totals = ctx.arrays
        smoothing, reduction = ctx.options
        grad = _scalar_or_rows(grad_output, device)
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            out = device.empty(rows.shape, rows.dtype)
            device.call("cross_entropy_probabilities_backward", grad, probabilities, weights, smoothing, reduction,
                        exps, row_total, totals, out, work=out.size)
            grad_input = Tensor._make(ctx.layout.from_rows(out, device), None, grad_output.device)
        if ctx.needs_input_grad[1]:
            out = device.empty(rows.shape, rows.dtype)
            device.call("cross_entropy_probabilities_backward_target", grad, rows, weights, smoothing, reduction,
                        row_max, row_total, totals, out, work=out.size)
            grad_target = Tensor._make(ctx.layout.from_rows(out, device), None, grad_output.device)
        return grad_input, grad_target, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # backward's formulas in recorded ops, from the saved logits and target; the weight is a constant.
        input, target, _ = ctx.saved_tensors  # noqa: A001 - PyTorch's argument name
        _, _, weights, _, row_max, _, totals = ctx.arrays
        smoothing, reduction = ctx.options
        layout = ctx.layout
        weight = Tensor._make(weights, None, grad_output.device)
        scale = _row_gradient(grad_output, reduction, layout, totals)
        shifted = _shifted_rows(input, layout, row_max)
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            probability = _to_rows(target, layout)
            if smoothing > 0.0:
                probability = probability * (1.0 - smoothing) + smoothing / layout.length
            weighted = probability * weight
            grad_input = _from_rows(scale * (_softmax(shifted) * weighted.sum(1, keepdim=True) - weighted), layout)
        if ctx.needs_input_grad[1]:
            log_probabilities = shifted - shifted.exp().sum(1, keepdim=True).log()
            keep = 1.0 - smoothing if smoothing > 0.0 else 1.0
            grad_target = _from_rows(-(scale * keep) * weight * log_probabilities, layout)
        return grad_input, grad_target, None, None, None


class NllLoss(Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction):  # noqa: A002
        device = DEVICES[input.device]
        layout = _rows_of(input)
        rows = layout.to_rows(input._data, device)
        targets = device.reshape(device.contiguous(target._data), (layout.rows,))
        weights = _class_weight(weight, layout.length, input.dtype, input.device, "nll_loss")
        _, _, _, row_loss, totals, result = _buffers(device, layout, rows.dtype, False, reduction)
        status = device.empty((1,), dtypes.int64)
        device.call("nll_loss_forward", rows, targets, weights, ignore_index, REDUCTIONS[reduction], row_loss, totals,
                    result, status)
        _raise_out_of_bounds(device, status, targets, layout.length, ignore_index, "nll_loss")
        ctx.save_for_backward(target, weight)
        ctx.arrays = (targets, weights, totals)
        ctx.layout, ctx.options = layout, (ignore_index, REDUCTIONS[reduction])
        return _loss_tensor(reduction, row_loss, result, target.shape if input.ndim > 1 else (), input.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if the target or weight was modified in place since forward
        device = DEVICES[grad_output.device]
        targets, weights, totals = ctx.arrays
        ignore_index, reduction = ctx.options
        out = device.empty((ctx.layout.rows, ctx.layout.length), grad_output.dtype)
        status = device.empty((1,), dtypes.int64)
        device.call("nll_loss_backward", _scalar_or_rows(grad_output, device), targets, weights, ignore_index,
                    reduction, totals, out, status, work=out.size)
        _raise_out_of_bounds(device, status, targets, ctx.layout.length, ignore_index, "nll_loss backward", True)
        return Tensor._make(ctx.layout.from_rows(out, device), None, grad_output.device), None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # -w[t] * g at each row's target class: linear in g, constant in the input, so recorded in g only.
        ctx.saved_tensors  # noqa: B018 - raises if the target or weight was modified in place since forward
        targets, weights, totals = ctx.arrays
        ignore_index, reduction = ctx.options
        layout, device_name = ctx.layout, grad_output.device
        one_hot, valid = _class_masks(targets, layout, ignore_index, grad_output.dtype, device_name)
        target = one_hot * Tensor._make(weights, None, device_name)
        grad = _row_gradient(grad_output, reduction, layout, totals) * -target
        if valid is not None:  # not 0 * (g / 0): the mean over no row divides by 0
            grad = where(valid, grad, 0.0)
        return _from_rows(grad, layout), None, None, None, None


def _smoothing(label_smoothing, op):
    if not isinstance(label_smoothing, (int, float)) or isinstance(label_smoothing, bool):
        raise TypeError(f"{op}: label_smoothing must be a float, got {type(label_smoothing).__name__}")
    if label_smoothing > 1.0:
        raise RuntimeError(f"{op}: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    return max(float(label_smoothing), 0.0)  # PyTorch ignores a negative smoothing


def _ignore_index(ignore_index, op):
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
        raise TypeError(f"{op}: ignore_index must be an int, got {type(ignore_index).__name__}")
    return ignore_index


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,  # noqa: A002
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits `input` (C,), (N, C) or (N, C, d1, ...) and `target`: class indices
    (int64 of shape (), (N,) or (N, d1, ...); rows whose class is `ignore_index` add nothing) or class
    probabilities (floating, the input's shape). `weight` (C,) rescales each class; 'mean' divides by the
    summed weights of the target classes (by the number of rows for probabilities). `label_smoothing` s mixes
    the target with the uniform distribution: q = (1 - s) * target + s / C. Fused and stable: finite for any
    finite logits, however large."""
    op = "cross_entropy"
    reduction = reduction_name(reduction, size_average, reduce, op)
    _class_input(input, op)
    smoothing = _smoothing(label_smoothing, op)
    ignore_index = _ignore_index(ignore_index, op)
    if isinstance(target, Tensor) and target.shape == input.shape:
        if target.dtype.kind != "f":
            raise RuntimeError(f"{op}: Expected floating point type for target with class probabilities, got "
                               f"{target.dtype} (a target of the input's shape {tuple(input.shape)} holds class "
                               "probabilities)")
        if ignore_index >= 0:
            raise RuntimeError(f"{op}: ignore_index is not supported for floating point target")
        input, target = common_dtype([input, target])
        return ProbabilityCrossEntropy.apply(input, target, weight, smoothing, reduction)
    _check_class_target(input, target, op)
    return CrossEntropy.apply(input, target, weight, ignore_index, smoothing, reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,  # noqa: A002
             reduction="mean"):
    """Negative log-likelihood: -weight[t] * input[n, t] for log-probabilities `input` (C,), (N, C) or
    (N, C, d1, ...) and class indices `target`; 'mean' divides by the summed weights of the rows not ignored
    (NaN when every row is ignored, as in PyTorch)."""
    op = "nll_loss"
    reduction = reduction_name(reduction, size_average, reduce, op)
    _class_input(input, op)
    _check_class_target(input, target, op)
    return NllLoss.apply(input, target, weight, _ignore_index(ignore_index, op), reduction)
