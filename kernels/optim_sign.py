"""Fused sign-based optimizer updates (Rprop, Lion) over a group's flat parameter buffer, in place.

The layout is kernels/optim.py's: flat 1-D arrays cut into chunks `chunk_start[c]:chunk_end[c]` inside the
parameter `chunk_segment[c]`; `active[s]` says whether parameter s has a gradient this step, `first[s]`
whether its state is fresh.
"""

from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, parallel_cpu_kernel, scalar_function
from nbprop.kernels.optim_common import _signed_gradient


@scalar_function
def _sign(value):
    """-1, 0 or 1 as torch.sign (NaN stays NaN)."""
    if value > 0.0:
        return 1.0
    if value < 0.0:
        return -1.0
    return value * 0.0


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def rprop_step(param, grad, prev, step_size, chunk_start, chunk_end, chunk_segment, active, first,
               lr, etaminus, etaplus, step_size_min, step_size_max, maximize):
    """PyTorch Rprop: factor = etaplus where g * prev > 0, etaminus where < 0 (and then g = 0), else 1;
    step_size = clamp(step_size * factor, min, max) (step_size starts at lr); p -= sign(g) * step_size;
    prev = g."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        fresh = first[segment]
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _signed_gradient(grad, index, maximize)
            product = gradient * prev[index]
            if product > 0.0:
                factor = etaplus
            elif product < 0.0:
                factor = etaminus
            elif product == 0.0:
                factor = 1.0
            else:
                factor = product
            size = (lr if fresh else step_size[index]) * factor
            # torch.clamp: the lower bound first, so that min > max gives max; NaN passes through.
            if size < step_size_min:
                size = step_size_min
            if size > step_size_max:
                size = step_size_max
            step_size[index] = size
            if factor == etaminus:
                gradient = 0.0
            param[index] = param[index] - _sign(gradient) * size
            prev[index] = gradient


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def lion_step(param, grad, exp_avg, chunk_start, chunk_end, chunk_segment, active, lr, beta1, beta2,
              weight_decay, maximize):
    """Lion (optax.lion): u = sign(beta1 m + (1 - beta1) g) + weight_decay p; m = beta2 m + (1 - beta2) g;
    p -= lr u."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _signed_gradient(grad, index, maximize)
            average = exp_avg[index]
            value = param[index]
            update = _sign((1.0 - beta1) * gradient + beta1 * average) + weight_decay * value
            exp_avg[index] = (1.0 - beta2) * gradient + beta2 * average
            param[index] = value - lr * update
