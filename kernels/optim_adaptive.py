"""Fused updates of the adaptive optimizers Adamax, NAdam, RAdam and Adadelta over flat parameter buffers.

The layout is that of kernels/optim.py: flat 1-D arrays of one dtype cut into chunks
(`chunk_start[c]:chunk_end[c]`, inside the parameter `chunk_segment[c]`); `active[s]` says whether parameter
s has a gradient this step and `steps[s]` is its step count, already incremented for this step (float64).
Per-parameter scalars (bias corrections) are computed once per chunk; each kernel updates in place.
"""

import math

from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, parallel_cpu_kernel
from nbprop.kernels.optim_common import _adam_moments, _coupled_gradient, _decayed_gradient, _lerp


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adamax_step(param, grad, exp_avg, exp_inf, chunk_start, chunk_end, chunk_segment, active, steps,
                lr, beta1, beta2, eps, weight_decay, maximize):
    """PyTorch Adamax: g += wd * p; m = lerp(m, g, 1 - beta1); u = max(beta2 u, |g| + eps) (NaN propagates);
    p -= lr / (1 - beta1^t) * m / u."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        negative_step_size = -lr / (1.0 - beta1 ** steps[segment])
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _coupled_gradient(param, grad, index, weight_decay, maximize)
            average = _lerp(exp_avg[index], gradient, 1.0 - beta1)
            exp_avg[index] = average
            decayed = exp_inf[index] * beta2
            bound = abs(gradient) + eps
            # torch.maximum propagates NaN from either side.
            norm = decayed if decayed > bound or decayed != decayed else bound
            exp_inf[index] = norm
            param[index] = param[index] + negative_step_size * average / norm


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def nadam_step(param, grad, exp_avg, exp_avg_sq, mu_product, chunk_start, chunk_end, chunk_segment, active,
               steps, lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize):
    """PyTorch NAdam (NAdamW with decoupled=True): mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2);
    `mu_product[s]` is the product mu_1 ... mu_t, already updated for this step by the caller.
    p *= 1 - lr wd (decoupled) or g += wd p; m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2;
    d = sqrt(v / (1 - beta2^t)) + eps; p -= lr (1 - mu_t) / (1 - mu_product) g / d;
    p -= lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / d."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        step = steps[segment]
        bias_correction2 = 1.0 - beta2 ** step
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1.0) * momentum_decay)))
        product = float(mu_product[segment])
        gradient_coefficient = -lr * (1.0 - mu) / (1.0 - product)
        average_coefficient = (-lr * mu_next) / (1.0 - product * mu_next)
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient, value = _decayed_gradient(param, grad, index, lr, weight_decay, decoupled, maximize)
            average, square = _adam_moments(exp_avg, exp_avg_sq, index, gradient, beta1, beta2)
            denominator = math.sqrt(square / bias_correction2) + eps
            value = value + gradient_coefficient * gradient / denominator
            param[index] = value + average_coefficient * average / denominator


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def radam_step(param, grad, exp_avg, exp_avg_sq, chunk_start, chunk_end, chunk_segment, active, steps,
               lr, beta1, beta2, eps, weight_decay, decoupled, maximize):
    """PyTorch RAdam (RAdamW with decoupled=True): p *= 1 - lr wd or g += wd p; m = lerp(m, g, 1 - beta1);
    v = beta2 v + (1 - beta2) g^2; rho_inf = 2 / (1 - beta2) - 1, rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t);
    if rho_t > 5: p -= lr m / (1 - beta1^t) sqrt(1 - beta2^t) / (sqrt(v) + eps) r_t with the rectification
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)); else p -= lr m / (1 - beta1^t).
    """
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        step = steps[segment]
        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2 = 1.0 - beta2 ** step
        rho_infinity = 2.0 / (1.0 - beta2) - 1.0
        rho = rho_infinity - 2.0 * step * (beta2 ** step) / bias_correction2
        rectified = rho > 5.0
        rectification = 0.0
        if rectified:
            rectification = math.sqrt((rho - 4.0) * (rho - 2.0) * rho_infinity
                                      / ((rho_infinity - 4.0) * (rho_infinity - 2.0) * rho))
        bias_correction2_sqrt = math.sqrt(bias_correction2)
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient, value = _decayed_gradient(param, grad, index, lr, weight_decay, decoupled, maximize)
            average, square = _adam_moments(exp_avg, exp_avg_sq, index, gradient, beta1, beta2)
            update = average / bias_correction1 * lr
            if rectified:
                update = update * (bias_correction2_sqrt / (math.sqrt(square) + eps)) * rectification
            param[index] = value - update


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adadelta_step(param, grad, square_avg, acc_delta, chunk_start, chunk_end, chunk_segment, active,
                  lr, rho, eps, weight_decay, maximize):
    """PyTorch Adadelta: g += wd p; v = rho v + (1 - rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) g;
    u = rho u + (1 - rho) delta^2; p -= lr delta."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = _coupled_gradient(param, grad, index, weight_decay, maximize)
            square = square_avg[index] * rho + (1.0 - rho) * gradient * gradient
            square_avg[index] = square
            delta = math.sqrt(acc_delta[index] + eps) / math.sqrt(square + eps) * gradient
            acc_delta[index] = acc_delta[index] * rho + (1.0 - rho) * delta * delta
            param[index] = param[index] - lr * delta
