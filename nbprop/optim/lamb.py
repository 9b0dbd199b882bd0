"""LAMB: layer-wise adaptive moments (You et al. 2019, "Large Batch Optimization for Deep Learning"), as optax.lamb."""

from nbprop.optim.optimizer import Optimizer, check_moment_hyperparameters


class LAMB(Optimizer):
    """`LAMB(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, *, eps_root=0.0, maximize=False)`:
    optax.lamb's update (its defaults), one fused kernel call per group and dtype:

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
        u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t) + eps_root) + eps) + weight_decay p;
        p -= lr * (||p|| / ||u||) * u

    with the trust ratio ||p|| / ||u|| taken per parameter tensor, and 1 where either norm is 0 (optax's
    scale_by_trust_ratio with min_norm=0, trust_coefficient=1). State per parameter: 'step', 'exp_avg' (m)
    and 'exp_avg_sq' (v).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, *, eps_root=0.0,
                 maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, eps_root=eps_root,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_moment_hyperparameters(group)
        if not 0.0 <= group["eps_root"]:
            raise ValueError(f"Invalid eps_root value: {group['eps_root']}")

    def _state_names(self, group):
        return ("exp_avg", "exp_avg_sq")

    def _update(self, group, bucket, lr, fresh):
        beta1, beta2 = group["betas"]
        device = bucket.device
        device.call(
            "lamb_step", bucket.flat_param, bucket.flat_grad, _scratch(bucket), bucket.states["exp_avg"],
            bucket.states["exp_avg_sq"], bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment,
            device.asarray(bucket.active), device.asarray(bucket.steps), lr, float(beta1), float(beta2),
            float(group["eps"]), float(group["eps_root"]), float(group["weight_decay"]), bool(group["maximize"]),
            work=bucket.size)


def _scratch(bucket):
    """A flat buffer of the bucket's layout for the update between the kernel's passes, made once."""
    scratch = getattr(bucket, "update_scratch", None)
    if scratch is None:
        scratch = bucket.update_scratch = bucket.device.empty((bucket.size,), bucket.dtype)
    return scratch
