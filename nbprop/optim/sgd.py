"""SGD: PyTorch's stochastic gradient descent (momentum, dampening, Nesterov, weight decay, maximize)."""

from nbprop.optim.optimizer import Optimizer


class SGD(Optimizer):
    """`SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False,
    foreach=None, differentiable=False, fused=None)`: torch.optim.SGD's update, one fused kernel call per
    group and dtype (`foreach` and `fused` are accepted and ignored: the update is always fused).

    State per parameter: 'momentum_buffer' when momentum is not 0 (no 'step', as in PyTorch).
    """

    _has_step = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False,
                 foreach=None, differentiable=False, fused=None):
        if differentiable:
            raise NotImplementedError("SGD: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=False, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group):
        if group["momentum"] < 0:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _update(self, group, bucket, lr, fresh):
        buffer = bucket.states.get("momentum_buffer", bucket.empty)
        scalar = bucket.dtype.type  # scalars in the parameters' dtype: float32 updates stay float32
        device = bucket.device
        device.call(
            "sgd_step", bucket.flat_param, bucket.flat_grad, buffer, bucket.chunk_start, bucket.chunk_end,
            bucket.chunk_segment, device.asarray(bucket.active), device.asarray(fresh), scalar(lr),
            scalar(group["momentum"]), scalar(1.0 - group["dampening"]), scalar(group["weight_decay"]),
            bool(group["nesterov"]), bool(group["maximize"]), work=bucket.size)
