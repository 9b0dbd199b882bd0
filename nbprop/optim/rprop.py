"""Rprop: PyTorch's resilient backpropagation (per-element step sizes adapted by the sign of the gradient)."""

from nbprop.optim.optimizer import Optimizer


class Rprop(Optimizer):
    """`Rprop(params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
    maximize=False, differentiable=False)`: torch.optim.Rprop's update, one fused kernel call per group and
    dtype (`foreach` and `capturable` are accepted and ignored).

    Each element's step size starts at the group's learning rate at the parameter's first step (`lr` only
    sets this start), grows by etas[1] while the gradient keeps its sign and shrinks by etas[0] when it
    flips (that step then skips the element), clamped to step_sizes; p -= sign(g) * step size.

    State per parameter: 'step', 'prev' (the last gradient used) and 'step_size'.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False):
        if differentiable:
            raise NotImplementedError("Rprop: differentiable=True is not supported (updates are fused kernels)")
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), foreach=foreach, maximize=maximize,
                        differentiable=False, capturable=capturable)
        super().__init__(params, defaults)

    def _check_group(self, group):
        etaminus, etaplus = group["etas"]
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")
        if len(group["step_sizes"]) != 2:
            raise ValueError(f"Rprop: step_sizes must be a pair (minimum, maximum), got {group['step_sizes']}")

    def _state_names(self, group):
        return ("prev", "step_size")

    def _update(self, group, bucket, lr, fresh):
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        device = bucket.device
        device.call(
            "rprop_step", bucket.flat_param, bucket.flat_grad, bucket.states["prev"], bucket.states["step_size"],
            bucket.chunk_start, bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active),
            device.asarray(fresh), lr,
            float(etaminus), float(etaplus), float(step_size_min), float(step_size_max), bool(group["maximize"]),
            work=bucket.size)
