"""Fused optimizer updates: one call updates every parameter of a group, held in one flat buffer.

A group's parameters, gradients and state live in flat 1-D C-contiguous arrays of one dtype. The flat
range is cut into chunks (`chunk_start[c]:chunk_end[c]`, each inside one parameter, the segment
`chunk_segment[c]`), so that threads share the work evenly while per-parameter facts stay per parameter:
`active[s]` (the parameter has a gradient this step), `steps[s]` (its step count, already incremented for
this step, float64) and `first[s]` (its state is fresh). Each kernel updates the parameters in place.
"""

import math

from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel


@parallel_cpu_kernel
def sgd_step(param, grad, momentum_buffer, chunk_start, chunk_end, chunk_segment, active, first,
             lr, momentum, dampening, weight_decay, nesterov, maximize):
    """PyTorch SGD: g += weight_decay * p; b = g on the first step, else momentum * b + (1 - dampening) * g;
    g = g + momentum * b (nesterov) or b; p -= lr * g. `momentum_buffer` is empty when momentum is 0."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        fresh = first[segment]
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = -grad[index] if maximize else grad[index]
            if weight_decay != 0.0:
                gradient = gradient + weight_decay * param[index]
            if momentum != 0.0:
                if fresh:
                    buffer = gradient
                else:
                    buffer = momentum * momentum_buffer[index] + (1.0 - dampening) * gradient
                momentum_buffer[index] = buffer
                gradient = gradient + momentum * buffer if nesterov else buffer
            param[index] = param[index] - lr * gradient


@parallel_cpu_kernel
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, chunk_start, chunk_end, chunk_segment, active,
              steps, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    """PyTorch Adam (decoupled=False) and AdamW (decoupled=True), bias-corrected with each parameter's step t:
    p *= 1 - lr * wd (decoupled) or g += wd * p; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
    vmax = max(vmax, v) (amsgrad); p -= lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps).
    `max_exp_avg_sq` is empty unless amsgrad."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        step = steps[segment]
        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
        step_size = lr / bias_correction1
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = -grad[index] if maximize else grad[index]
            value = param[index]
            if weight_decay != 0.0:
                if decoupled:
                    value = value * (1.0 - lr * weight_decay)
                else:
                    gradient = gradient + weight_decay * value
            average = exp_avg[index] + (1.0 - beta1) * (gradient - exp_avg[index])
            exp_avg[index] = average
            square = beta2 * exp_avg_sq[index] + (1.0 - beta2) * gradient * gradient
            exp_avg_sq[index] = square
            if amsgrad:
                square = max(max_exp_avg_sq[index], square)
                max_exp_avg_sq[index] = square
            param[index] = value - step_size * average / (math.sqrt(square) / bias_correction2_sqrt + eps)


@parallel_cpu_kernel
def adagrad_step(param, grad, state_sum, chunk_start, chunk_end, chunk_segment, active, steps,
                 lr, lr_decay, weight_decay, eps, maximize):
    """PyTorch Adagrad: g += wd * p; s += g^2; p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        clr = lr / (1.0 + (steps[segment] - 1.0) * lr_decay)
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = -grad[index] if maximize else grad[index]
            if weight_decay != 0.0:
                gradient = gradient + weight_decay * param[index]
            total = state_sum[index] + gradient * gradient
            state_sum[index] = total
            param[index] = param[index] - clr * gradient / (math.sqrt(total) + eps)


@parallel_cpu_kernel
def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, chunk_start, chunk_end, chunk_segment,
                 active, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    """PyTorch RMSprop: g += wd * p; v = alpha v + (1 - alpha) g^2; centered: a = alpha a + (1 - alpha) g,
    d = sqrt(v - a^2) + eps, else d = sqrt(v) + eps; momentum: b = momentum b + g / d, p -= lr b; else
    p -= lr g / d. `grad_avg` is empty unless centered, `momentum_buffer` unless momentum > 0."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        for index in range(chunk_start[chunk], chunk_end[chunk]):
            gradient = -grad[index] if maximize else grad[index]
            if weight_decay != 0.0:
                gradient = gradient + weight_decay * param[index]
            square = alpha * square_avg[index] + (1.0 - alpha) * gradient * gradient
            square_avg[index] = square
            if centered:
                average = grad_avg[index] + (1.0 - alpha) * (gradient - grad_avg[index])
                grad_avg[index] = average
                denominator = math.sqrt(square - average * average) + eps
            else:
                denominator = math.sqrt(square) + eps
            if momentum > 0.0:
                buffer = momentum * momentum_buffer[index] + gradient / denominator
                momentum_buffer[index] = buffer
                param[index] = param[index] - lr * buffer
            else:
                param[index] = param[index] - lr * gradient / denominator
