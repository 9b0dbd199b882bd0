"""Per-element steps shared by the fused optimizer kernels (optim_adaptive, optim_sign, optim_layerwise).

Inlined helpers only (`scalar_function`), no kernels: this module is not a backend family, and its names
start with an underscore so that they never shadow a kernel's name in the families that import them.
"""

import numpy as np

from nbprop.kernels._jit import scalar_function


@scalar_function
def _lerp(start, end, weight):
    """torch.lerp's formula: its two branches (small and large weight) round differently."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


@scalar_function
def _signed_gradient(grad, index, maximize):
    """grad[index], negated when maximizing."""
    return -grad[index] if maximize else grad[index]


@scalar_function
def _coupled_gradient(param, grad, index, weight_decay, maximize):
    """The signed gradient with L2 weight decay folded in: g += weight_decay * p."""
    gradient = _signed_gradient(grad, index, maximize)
    if weight_decay == 0.0:
        return gradient
    return gradient + weight_decay * param[index]


@scalar_function
def _decayed_gradient(param, grad, index, lr, weight_decay, decoupled, maximize):
    """(gradient, parameter) after weight decay: p *= 1 - lr wd (decoupled) or g += wd p (coupled)."""
    gradient = _signed_gradient(grad, index, maximize)
    value = param[index]
    if weight_decay != 0.0:
        if decoupled:
            value = value * (1.0 - lr * weight_decay)
        else:
            gradient = gradient + weight_decay * value
    return gradient, value


@scalar_function
def _adam_moments(exp_avg, exp_avg_sq, index, gradient, beta1, beta2):
    """PyTorch's moment updates in place, returned: m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2."""
    average = _lerp(exp_avg[index], gradient, 1.0 - beta1)
    exp_avg[index] = average
    square = exp_avg_sq[index] * beta2 + (1.0 - beta2) * gradient * gradient
    exp_avg_sq[index] = square
    return average, square


@scalar_function
def _chunk_partials(chunks):
    """Zeroed per-chunk partial sums (float64) of the parameters' squares and of the updates' squares."""
    return np.zeros(chunks, np.float64), np.zeros(chunks, np.float64)
