"""Adafactor: torch.optim.Adafactor's update (factored second moments over the last two axes, relative steps)."""

import math

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.optim.lamb import _scratch
from nbprop.optim.optimizer import Optimizer
from nbprop.optim.shaped_state import ShapedStateMixin


def _check_hyperparameters(name, lr, beta2_decay, eps, d, weight_decay):
    """torch.optim.Adafactor's checks, in its order and with its messages, prefixed by the optimizer's name."""
    if not callable(lr) and not 0.0 <= lr:
        raise ValueError(f"{name}: Learning rate should be >= 0 but is: {lr}")
    if not 0.0 >= beta2_decay:
        raise ValueError(f"{name}: beta2_decay should be <= 0 but is: {beta2_decay}")
    if isinstance(eps, (str, bytes)) or not hasattr(eps, "__len__") or len(eps) != 2:
        raise ValueError(f"{name}: eps should be a pair (epsilon1 or None, epsilon2) but is: {eps!r}")
    if eps[0] is not None and not 0.0 <= eps[0]:
        raise ValueError(f"{name}: epsilon1 should be >= 0 but is: {eps[0]}")
    if not 0.0 <= eps[1]:
        raise ValueError(f"{name}: epsilon2 should be >= 0 but is: {eps[1]}")
    if not 1.0 <= d:
        raise ValueError(f"{name}: Clipping threshold d should be >= 1 but is: {d}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"{name}: weight_decay should be >= 0 but is: {weight_decay}")


class Adafactor(ShapedStateMixin, Optimizer):
    """`Adafactor(params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *, foreach=None,
    maximize=False)`: torch.optim.Adafactor's update (not optax's: see OptaxAdafactor), one fused kernel call per
    group and dtype (`foreach` is accepted and ignored: the update is always fused). Per parameter, at its step
    t, with w = t^beta2_decay, rho = min(lr, 1 / sqrt(t)) and g the gradient (negated with maximize):

    - alpha = max(eps2, rms(p)) rho, with p before weight decay; then p *= 1 - lr weight_decay.
    - A parameter of two or more dimensions keeps 'row_var' (shape (..., M, 1)) and 'col_var' (shape
      (..., 1, N)), factored over its last two axes (leading axes kept): row_var = lerp(row_var, mean of g^2
      over the last axis, w), col_var = lerp(col_var, mean of g^2 over the second last axis, w), and
      v = row_var col_var / max(mean of row_var over M, eps1). A 0-d or 1-d parameter keeps 'variance':
      variance = lerp(variance, g^2, w) and v = variance.
    - u = g / sqrt(max(v, eps1^2)); p -= alpha u / max(1, rms(u) / d).

    An empty parameter is left as it is, its state at zero (torch.optim.Adafactor raises ZeroDivisionError on
    one). eps1 = None takes the machine epsilon of the dtype of the group's first parameter with a gradient, for the
    whole group, as torch does. State per parameter: 'step', and 'row_var' and 'col_var' or 'variance'.
    """

    _extra_names = ("row_var", "col_var", "variance")

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False):
        _check_hyperparameters(type(self).__name__, lr, beta2_decay, eps, d, weight_decay)
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check_hyperparameters(type(self).__name__, group["lr"], group["beta2_decay"], group["eps"], group["d"],
                               group["weight_decay"])

    def _extra_shapes(self, group, parameter):
        shape = parameter._data.shape
        dtype = parameter._data.dtype
        if len(shape) < 2:
            return {"variance": (shape, dtype)}
        return {"row_var": (shape[:-1] + (1,), dtype), "col_var": (shape[:-2] + (1, shape[-1]), dtype)}

    def _layout(self, bucket):
        """The kernel's description of the bucket's parameters, made once per bucket (in host memory, then on
        the bucket's device)."""
        layout = getattr(bucket, "adafactor_torch_layout", None)
        if layout is not None:
            return layout
        count = len(bucket.params)
        host = DEVICES[HOST]
        factored = host.zeros((count,), np.bool_)
        rows = host.zeros((count,), np.int64)
        columns = host.zeros((count,), np.int64)
        unit_start = host.zeros((count,), np.int64)
        unit_segment, unit_batch = [], []
        for index, shape in enumerate(bucket.shapes):
            unit_start[index] = len(unit_segment)
            if len(shape) < 2:
                continue
            factored[index] = True
            rows[index], columns[index] = shape[-2], shape[-1]
            batches = math.prod(shape[:-2])
            unit_segment.extend([index] * batches)
            unit_batch.extend(range(batches))
        no_state = host.zeros((count + 1,), np.int64)
        arrays = (factored, rows, columns, unit_start, host.asarray(unit_segment, np.int64),
                  host.asarray(unit_batch, np.int64), bucket.extra_offsets.get("variance", no_state),
                  bucket.extra_offsets.get("row_var", no_state), bucket.extra_offsets.get("col_var", no_state))
        layout = bucket.adafactor_torch_layout = tuple(bucket.device.asarray(array) for array in arrays)
        return layout

    @staticmethod
    def _epsilon1(group):
        """eps1, or for None the machine epsilon of the group's first parameter with a gradient: torch resolves
        it once per group and step and keeps it for the group's other parameters, whatever their dtype."""
        eps1 = group["eps"][0]
        if eps1 is not None:
            return float(eps1)
        for parameter in group["params"]:
            if parameter.grad is not None:
                return float(np.finfo(parameter._data.dtype).eps)
        raise RuntimeError("Adafactor: a step without any gradient in the group reached the update")

    def _update(self, group, bucket, lr, fresh):
        self._extras(bucket, group)
        factored, rows, columns, unit_start, unit_segment, unit_batch, variance_offsets, row_offsets, \
            column_offsets = self._layout(bucket)
        # Per-parameter scalars in float64, as torch's Python floats; parameters without state yet (step 0) are
        # inactive, and are taken at step 1 only to keep 0^beta2_decay out.
        steps = bucket.steps.clip(1.0)
        weights = steps ** float(group["beta2_decay"])
        relative_steps = (1.0 / steps ** 0.5).clip(None, lr)
        weight_decay = float(group["weight_decay"])
        eps1 = self._epsilon1(group)
        scalar = bucket.dtype.type
        empty = bucket.empty
        device = bucket.device
        device.call(
            "adafactor_torch_step", bucket.flat_param, bucket.flat_grad, _scratch(bucket),
            bucket.extra.get("variance", empty), bucket.extra.get("row_var", empty), bucket.extra.get("col_var", empty),
            bucket.device_offsets, variance_offsets, row_offsets, column_offsets, factored, rows, columns, unit_start,
            unit_segment, unit_batch, bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment,
            device.asarray(bucket.active), device.asarray(weights), device.asarray(relative_steps),
            1.0 - lr * weight_decay if weight_decay != 0.0 else 1.0, scalar(eps1), scalar(eps1 * eps1),
            float(group["eps"][1]), float(group["d"]), bool(group["maximize"]), work=bucket.size)
