"""RMSprop: PyTorch's root-mean-square propagation (centered, momentum, weight decay)."""

from nbprop.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """`RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
    capturable=False, foreach=None, maximize=False, differentiable=False)`: torch.optim.RMSprop's update, one
    fused kernel call per group and dtype.

    State per parameter: 'step', 'square_avg', 'momentum_buffer' (momentum > 0), 'grad_avg' (centered).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if differentiable:
            raise NotImplementedError("RMSprop: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=False)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("eps", "momentum", "weight_decay", "alpha"):
            if group[name] < 0:
                raise ValueError(f"Invalid {name} value: {group[name]}")

    def _state_names(self, group):
        names = ("square_avg",)
        if group["momentum"] > 0:
            names += ("momentum_buffer",)
        if group["centered"]:
            names += ("grad_avg",)
        return names

    def _update(self, group, bucket, lr, fresh):
        empty = bucket.empty
        scalar = bucket.dtype.type  # scalars in the parameters' dtype: float32 updates stay float32
        device = bucket.device
        device.call(
            "rmsprop_step", bucket.flat_param, bucket.flat_grad, bucket.states["square_avg"],
            bucket.states.get("grad_avg", empty), bucket.states.get("momentum_buffer", empty), bucket.chunk_start,
            bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active), scalar(lr), scalar(group["alpha"]),
            scalar(1.0 - group["alpha"]),
            scalar(group["eps"]), scalar(group["weight_decay"]), scalar(group["momentum"]), bool(group["centered"]),
            bool(group["maximize"]), work=bucket.size)
