"""Fused optimizer updates: one call updates every parameter of a group, held in one flat buffer.

A group's parameters, gradients and state live in flat 1-D C-contiguous arrays of one dtype. The flat
range is cut into chunks (`chunk_start[c]:chunk_end[c]`, each inside one parameter, the segment
`chunk_segment[c]`), so that threads share the work evenly while per-parameter facts stay per parameter:
`active[s]` (the parameter has a gradient this step), `first[s]` (its state is fresh) and per-parameter
coefficients (bias corrections, decayed learning rates) computed by the caller from its step count. Every
scalar and coefficient comes in the parameters' dtype, so that float32 parameters are updated in float32
(as PyTorch does) and the loops vectorize; 1 - beta and similar are passed precomputed for the same reason.
Each kernel updates the parameters and state in place. Indices are unsigned: a signed index costs a
negative-index check per element, which keeps LLVM from vectorizing the loops.
"""

import math

import numpy as np
from numba import prange

from nbprop.kernels._jit import FASTMATH_UNFUSED, parallel_cpu_kernel


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def sgd_step(param, grad, momentum_buffer, chunk_start, chunk_end, chunk_segment, active, first,
             lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize):
    """PyTorch SGD: g += weight_decay * p; b = g on the first step, else momentum * b + (1 - dampening) * g;
    g = g + momentum * b (nesterov) or b; p -= lr * g. `momentum_buffer` is empty when momentum is 0."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        fresh = first[segment]
        if momentum == 0 and weight_decay == 0 and not maximize:
            # Plain SGD, branch-free so that LLVM vectorizes it.
            for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
                param[index] = param[index] - lr * grad[index]
            continue
        if momentum != 0 and weight_decay == 0 and not (fresh or nesterov or maximize):
            # Momentum, the other common case, branch-free too (LLVM does not vectorize the general loop).
            for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
                buffer = momentum * momentum_buffer[index] + one_minus_dampening * grad[index]
                momentum_buffer[index] = buffer
                param[index] = param[index] - lr * buffer
            continue
        for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
            gradient = -grad[index] if maximize else grad[index]
            if weight_decay != 0:
                gradient = gradient + weight_decay * param[index]
            if momentum != 0:
                if fresh:
                    buffer = gradient
                else:
                    buffer = momentum * momentum_buffer[index] + one_minus_dampening * gradient
                momentum_buffer[index] = buffer
                gradient = gradient + momentum * buffer if nesterov else buffer
            param[index] = param[index] - lr * gradient


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, chunk_start, chunk_end, chunk_segment, active,
              step_size, bias_correction2_sqrt, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay,
              decay_factor, decoupled, amsgrad, maximize):
    """PyTorch Adam (decoupled=False) and AdamW (decoupled=True), bias-corrected per parameter s:
    p *= decay_factor (= 1 - lr * wd, decoupled) or g += wd * p; m += (1 - beta1) (g - m);
    v = beta2 v + (1 - beta2) g^2; vmax = max(vmax, v) (amsgrad);
    p -= step_size[s] * m / (sqrt(v or vmax) / bias_correction2_sqrt[s] + eps), where
    step_size[s] = lr / (1 - beta1^t) and bias_correction2_sqrt[s] = sqrt(1 - beta2^t) at the step t of s.
    `max_exp_avg_sq` is empty unless amsgrad."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        size = step_size[segment]
        correction = bias_correction2_sqrt[segment]
        if weight_decay == 0 and not (amsgrad or maximize):
            # The common case as a branch-free loop, which LLVM vectorizes (the general loop it does not).
            for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
                gradient = grad[index]
                average = exp_avg[index] + one_minus_beta1 * (gradient - exp_avg[index])
                exp_avg[index] = average
                square = beta2 * exp_avg_sq[index] + one_minus_beta2 * gradient * gradient
                exp_avg_sq[index] = square
                param[index] = param[index] - size * average / (math.sqrt(square) / correction + eps)
            continue
        for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
            gradient = -grad[index] if maximize else grad[index]
            value = param[index]
            if weight_decay != 0:
                if decoupled:
                    value = value * decay_factor
                else:
                    gradient = gradient + weight_decay * value
            average = exp_avg[index] + one_minus_beta1 * (gradient - exp_avg[index])
            exp_avg[index] = average
            square = beta2 * exp_avg_sq[index] + one_minus_beta2 * gradient * gradient
            exp_avg_sq[index] = square
            if amsgrad:
                square = max(max_exp_avg_sq[index], square)
                max_exp_avg_sq[index] = square
            param[index] = value - size * average / (math.sqrt(square) / correction + eps)


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def adagrad_step(param, grad, state_sum, chunk_start, chunk_end, chunk_segment, active, clr,
                 weight_decay, eps, maximize):
    """PyTorch Adagrad: g += wd * p; s += g^2; p -= clr[s] * g / (sqrt(s) + eps), where
    clr[s] = lr / (1 + (t - 1) lr_decay) at the step t of parameter s."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        rate = clr[segment]
        for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
            gradient = -grad[index] if maximize else grad[index]
            if weight_decay != 0:
                gradient = gradient + weight_decay * param[index]
            total = state_sum[index] + gradient * gradient
            state_sum[index] = total
            param[index] = param[index] - rate * gradient / (math.sqrt(total) + eps)


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, chunk_start, chunk_end, chunk_segment,
                 active, lr, alpha, one_minus_alpha, eps, weight_decay, momentum, centered, maximize):
    """PyTorch RMSprop: g += wd * p; v = alpha v + (1 - alpha) g^2; centered: a += (1 - alpha) (g - a),
    d = sqrt(v - a^2) + eps, else d = sqrt(v) + eps; momentum: b = momentum b + g / d, p -= lr b; else
    p -= lr g / d. `grad_avg` is empty unless centered, `momentum_buffer` unless momentum > 0."""
    for chunk in prange(chunk_start.size):
        segment = chunk_segment[chunk]
        if not active[segment]:
            continue
        for index in range(np.uint64(chunk_start[chunk]), np.uint64(chunk_end[chunk])):
            gradient = -grad[index] if maximize else grad[index]
            if weight_decay != 0:
                gradient = gradient + weight_decay * param[index]
            square = alpha * square_avg[index] + one_minus_alpha * gradient * gradient
            square_avg[index] = square
            if centered:
                average = grad_avg[index] + one_minus_alpha * (gradient - grad_avg[index])
                grad_avg[index] = average
                denominator = math.sqrt(square - average * average) + eps
            else:
                denominator = math.sqrt(square) + eps
            if momentum > 0:
                buffer = momentum * momentum_buffer[index] + gradient / denominator
                momentum_buffer[index] = buffer
                param[index] = param[index] - lr * buffer
            else:
                param[index] = param[index] - lr * gradient / denominator
