"""Lion: evolved sign momentum (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as optax.lion."""

from nbprop.optim.optimizer import Optimizer


class Lion(Optimizer):
    """`Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-3, *, maximize=False)`: optax.lion's update
    (its defaults; optax has no default learning rate, 1e-4 is the paper's advice of 3-10x below AdamW's):

        u = sign(beta1 m + (1 - beta1) g) + weight_decay p;  m = beta2 m + (1 - beta2) g;  p -= lr u

    (decoupled weight decay, scaled by the learning rate as in optax and the paper). One fused kernel call
    per group and dtype. State per parameter: 'step' and 'exp_avg' (the momentum m).
    """

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-3, *, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        beta1, beta2 = group["betas"]
        if not 0.0 <= beta1 <= 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 <= 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _state_names(self, group):
        return ("exp_avg",)

    def _update(self, group, bucket, lr, fresh):
        beta1, beta2 = group["betas"]
        device = bucket.device
        device.call(
            "lion_step", bucket.flat_param, bucket.flat_grad, bucket.states["exp_avg"], bucket.chunk_start,
            bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active), lr, float(beta1), float(beta2),
            float(group["weight_decay"]), bool(group["maximize"]), work=bucket.size)
