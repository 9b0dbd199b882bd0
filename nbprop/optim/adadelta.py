"""Adadelta: PyTorch's adaptive learning-rate method from running averages of squared gradients and steps."""

from nbprop.optim.optimizer import Optimizer


class Adadelta(Optimizer):
    """`Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
    maximize=False, differentiable=False)`: torch.optim.Adadelta's update, one fused kernel call per group and
    dtype (`foreach` and `capturable` are accepted and ignored).

    State per parameter: 'step', 'square_avg' (of gradients) and 'acc_delta' (of updates).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        if differentiable:
            raise NotImplementedError("Adadelta: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=False)
        super().__init__(params, defaults)

    def _check_group(self, group):
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {group['rho']}")
        if not 0.0 <= group["eps"]:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        if not 0.0 <= group["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _state_names(self, group):
        return ("square_avg", "acc_delta")

    def _update(self, group, bucket, lr, fresh):
        device = bucket.device
        device.call(
            "adadelta_step", bucket.flat_param, bucket.flat_grad, bucket.states["square_avg"],
            bucket.states["acc_delta"], bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment,
            device.asarray(bucket.active), lr, float(group["rho"]), float(group["eps"]), float(group["weight_decay"]),
            bool(group["maximize"]), work=bucket.size)
