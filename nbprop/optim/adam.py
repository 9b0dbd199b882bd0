"""Adam and AdamW: PyTorch's adaptive moment estimation, with L2 or decoupled weight decay, and AMSGrad."""

from nbprop.optim.optimizer import Optimizer, check_moment_hyperparameters


class Adam(Optimizer):
    """`Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, foreach=None,
    maximize=False, capturable=False, differentiable=False, fused=None, decoupled_weight_decay=False)`:
    torch.optim.Adam's update, one fused kernel call per group and dtype (`foreach`, `fused` and
    `capturable` are accepted and ignored: the update is always fused).

    State per parameter: 'step', 'exp_avg', 'exp_avg_sq', and 'max_exp_avg_sq' with amsgrad.
    """

    _decoupled_default = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=None, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=None):
        if differentiable:
            raise NotImplementedError(f"{type(self).__name__}: differentiable=True is not supported (updates are "
                                      "fused kernels)")
        if weight_decay is None:
            weight_decay = 1e-2 if self._decoupled_default else 0
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled_default
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=False,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_moment_hyperparameters(group)

    def _state_names(self, group):
        names = ("exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if group["amsgrad"] else names

    def _update(self, group, bucket, lr, fresh):
        beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
        weight_decay = float(group["weight_decay"])
        # Bias corrections per parameter in float64 (as PyTorch's Python floats), then in the parameters' dtype.
        # The steps are in host memory; a parameter not started yet counts as at step 1 (NumPy's ** 0.5 is sqrt).
        steps = bucket.steps.clip(1.0)
        step_size = (lr / (1.0 - beta1 ** steps)).astype(bucket.dtype)
        bias_correction2_sqrt = ((1.0 - beta2 ** steps) ** 0.5).astype(bucket.dtype)
        scalar = bucket.dtype.type
        maximum = bucket.states.get("max_exp_avg_sq", bucket.empty)
        device = bucket.device
        device.call(
            "adam_step", bucket.flat_param, bucket.flat_grad, bucket.states["exp_avg"], bucket.states["exp_avg_sq"],
            maximum, bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active),
            device.asarray(step_size), device.asarray(bias_correction2_sqrt), scalar(beta2), scalar(1.0 - beta1),
            scalar(1.0 - beta2), scalar(group["eps"]), scalar(weight_decay), scalar(1.0 - lr * weight_decay),
            bool(group["decoupled_weight_decay"]), bool(group["amsgrad"]), bool(group["maximize"]), work=bucket.size)


class AdamW(Adam):
    """`AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, ...)`: Adam with
    decoupled weight decay (p *= 1 - lr * weight_decay before the Adam update), as torch.optim.AdamW."""

    _decoupled_default = True
