"""Adagrad: PyTorch's adaptive gradient method (learning-rate decay, weight decay, initial accumulator)."""

from nbprop.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    """`Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
    foreach=None, *, maximize=False, differentiable=False, fused=None)`: torch.optim.Adagrad's update, one
    fused kernel call per group and dtype.

    State per parameter, created at construction as in PyTorch: 'step' and 'sum' (the running sum of squared
    gradients, starting at initial_accumulator_value).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if differentiable:
            raise NotImplementedError("Adagrad: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=False, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            if group[name] < 0:
                raise ValueError(f"Invalid {name} value: {group[name]}")

    def _state_names(self, group):
        return ("sum",)

    def _initialize_eagerly(self, group):
        return True

    def _initialize(self, bucket, index, group):
        bucket.device.fill(bucket.segment("sum", index), group["initial_accumulator_value"])

    def _update(self, group, bucket, lr, fresh):
        # The decayed learning rate per parameter in float64 (as PyTorch's Python float), then in the dtype.
        clr = (lr / (1.0 + (bucket.steps.clip(1.0) - 1.0) * float(group["lr_decay"]))).astype(bucket.dtype)
        scalar = bucket.dtype.type
        device = bucket.device
        device.call(
            "adagrad_step", bucket.flat_param, bucket.flat_grad, bucket.states["sum"], bucket.chunk_start,
            bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active), device.asarray(clr),
            scalar(group["weight_decay"]),
            scalar(group["eps"]), bool(group["maximize"]), work=bucket.size)
