"""RAdam: PyTorch's rectified Adam (variance rectification of the adaptive step), with RAdamW's decay."""

from nbprop.optim.optimizer import Optimizer, check_moment_hyperparameters


class RAdam(Optimizer):
    """`RAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False, *,
    foreach=None, maximize=False, capturable=False, differentiable=False)`: torch.optim.RAdam's update (with
    decoupled_weight_decay, p *= 1 - lr * weight_decay before the step, as RAdamW), one fused kernel call per
    group and dtype. While the variance estimate is unreliable (rho_t <= 5, the first steps) the step is plain
    bias-corrected momentum, as in PyTorch.

    State per parameter: 'step', 'exp_avg', 'exp_avg_sq'.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        if differentiable:
            raise NotImplementedError("RAdam: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=False)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_moment_hyperparameters(group)

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq")

    def _update(self, group, bucket, lr, fresh):
        beta1, beta2 = group["betas"]
        device = bucket.device
        device.call(
            "radam_step", bucket.flat_param, bucket.flat_grad, bucket.states["exp_avg"], bucket.states["exp_avg_sq"],
            bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active),
            device.asarray(bucket.steps), lr, float(beta1), float(beta2), float(group["eps"]),
            float(group["weight_decay"]), bool(group["decoupled_weight_decay"]), bool(group["maximize"]),
            work=bucket.size)
