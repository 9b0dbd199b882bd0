"""Adamax: PyTorch's Adam variant on the infinity norm of past gradients."""

from nbprop.optim.optimizer import Optimizer, check_moment_hyperparameters


class Adamax(Optimizer):
    """`Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *, maximize=False,
    differentiable=False, capturable=False)`: torch.optim.Adamax's update, one fused kernel call per group and
    dtype (`foreach` and `capturable` are accepted and ignored: the update is always fused).

    State per parameter: 'step', 'exp_avg' (first moment) and 'exp_inf' (decayed infinity norm).
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        if differentiable:
            raise NotImplementedError("Adamax: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=False, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_moment_hyperparameters(group)

    def _state_names(self, group):
        return ("exp_avg", "exp_inf")

    def _update(self, group, bucket, lr, fresh):
        beta1, beta2 = group["betas"]
        device = bucket.device
        device.call(
            "adamax_step", bucket.flat_param, bucket.flat_grad, bucket.states["exp_avg"], bucket.states["exp_inf"],
            bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active),
            device.asarray(bucket.steps), lr,
            float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]), bool(group["maximize"]),
            work=bucket.size)
