"""ASGD: PyTorch's averaged stochastic gradient descent (decaying step size eta, Polyak averaging in 'ax')."""

import numpy as np

from nbprop.optim.optimizer import Optimizer
from nbprop.optim.shaped_state import ShapedStateMixin


class ASGD(ShapedStateMixin, Optimizer):
    """`ASGD(params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None, maximize=False,
    differentiable=False, capturable=False)`: torch.optim.ASGD's (non-capturable) update, one fused kernel
    call per group and dtype:

        g += wd p;  p = p (1 - lambd eta) - eta g;  ax = p if mu == 1 else ax + (p - ax) mu;
        then eta = lr / (1 + lambd lr t)^alpha and mu = 1 / max(1, t - t0)

    State per parameter: 'step', 'eta' (starts at the learning rate of the first step), 'mu' (starts at 1) and
    'ax' (the average). As in PyTorch (default dtype float32), 'eta' and 'mu' are float32 0-d tensors: their
    rounding is part of the trajectory.
    """

    _extra_names = ("eta", "mu")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        if differentiable:
            raise NotImplementedError("ASGD: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=False, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group):
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _state_names(self, group):
        return ("ax",)

    def _extra_shapes(self, group, parameter):
        return {"eta": ((), np.float32), "mu": ((), np.float32)}

    def _initialize_extra(self, bucket, index, group):
        lr = group["lr"]
        # A schedule's value is set at the first step (see _update); a float is known now.
        bucket.device.fill(self._extra_segment(bucket, "eta", index), 0.0 if callable(lr) else lr)
        bucket.device.fill(self._extra_segment(bucket, "mu", index), 1.0)

    def _update(self, group, bucket, lr, fresh):
        eta, mu = bucket.extra["eta"], bucket.extra["mu"]
        device = bucket.device
        # One 0-d eta and mu per parameter, so their flat arrays are indexed by parameter; the new values are
        # computed in host memory (float64, as PyTorch's Python floats) and rounded into the float32 state.
        if fresh.any():
            device.put(eta, (device.asarray(fresh.nonzero()[0]),), lr)
        active = bucket.active
        device.call(
            "asgd_step", bucket.flat_param, bucket.flat_grad, bucket.states["ax"], eta, mu, bucket.chunk_start,
            bucket.chunk_end, bucket.chunk_segment, device.asarray(active), float(group["lambd"]),
            float(group["weight_decay"]), bool(group["maximize"]), work=bucket.size)
        positions = device.asarray(active.nonzero()[0])
        steps = bucket.steps[active]
        lambd, alpha = float(group["lambd"]), float(group["alpha"])
        device.put(eta, (positions,), device.asarray(lr / ((1.0 + lambd * lr * steps) ** alpha)))
        device.put(mu, (positions,), device.asarray(1.0 / (steps - float(group["t0"])).clip(1.0)))
