"""Composable gradient transforms (optax's design): Transform(init, update), chain, and the building blocks.

A transform works on lists of C-contiguous arrays, one per parameter: NumPy arrays, or the arrays of a
device handed over as a `DeviceArrays` list (what `from_transform` does), whose device then runs the kernels
and holds the state. `init(params) -> state` allocates its state; `update(grads, state, params=None) ->
(updates, state)` writes the updates IN PLACE over `grads` (hand over a scratch copy: the optimizer built by
`from_transform` does) and updates its state in place. Counters stay in host memory (1-element NumPy arrays).
Updates are descent directions: `from_transform` applies `param -= lr * update`, so unlike optax a chain
does not end in `scale(-lr)`. Formulas follow optax (`optax/_src/transform.py`, `clipping.py`,
`constrain.py`, `wrappers.py`) and are stated on each function.

Example: Adam with global-norm clipping and decoupled weight decay, skipping steps with NaN/inf gradients::

    transform = apply_if_finite(chain(clip_by_global_norm(1.0), scale_by_adam(), add_decayed_weights(1e-4)))
    optimizer = from_transform(model.parameters(), transform, lr=1e-3)
    loss.backward(); optimizer.step(); optimizer.zero_grad()
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from nbprop.backend import DEVICES, HOST


class Transform(NamedTuple):
    """A gradient transformation: `init(params) -> state`, `update(grads, state, params) -> (updates, state)`."""

    init: Callable
    update: Callable


class DeviceArrays(list):
    """A list of arrays of one device (`device`, an entry of nbprop.backend.DEVICES), to hand to a transform;
    a plain list holds NumPy arrays."""

    def __init__(self, arrays, device):
        super().__init__(arrays)
        self.device = device


def device_of(arrays):
    """The device of a list of arrays handed to a transform."""
    return getattr(arrays, "device", None) or DEVICES[HOST]


def _flat(device, array, name):
    if not device.is_contiguous(array):
        raise ValueError(f"{name}: transforms update arrays in place and need C-contiguous arrays, got strides "
                         f"{device.strides(array)} (in elements) for shape {array.shape}")
    return device.view(array, (array.size,))


def _zeros_like(params):
    device = device_of(params)
    return [device.zeros(param.shape, param.dtype) for param in params]


def _counter():
    return DEVICES[HOST].zeros((1,), np.int64)


def chain(*transforms):
    """Apply transforms in order, each to the updates of the previous one; state is the tuple of states."""

    def init(params):
        return tuple(transform.init(params) for transform in transforms)

    def update(grads, state, params=None):
        states = []
        for transform, inner in zip(transforms, state):
            grads, inner = transform.update(grads, inner, params)
            states.append(inner)
        return grads, tuple(states)

    return Transform(init, update)


def scale(step_size):
    """updates = step_size * g."""

    def update(grads, state, params=None):
        device = device_of(grads)
        for grad in grads:
            device.call("scale_values", float(step_size), _flat(device, grad, "scale"))
        return grads, state

    return Transform(lambda params: (), update)


def scale_by_schedule(step_size_fn):
    """updates = step_size_fn(count) * g, count the number of earlier updates (from 0)."""

    def update(grads, state, params=None):
        factor = float(step_size_fn(int(state[0])))
        device = device_of(grads)
        for grad in grads:
            device.call("scale_values", factor, _flat(device, grad, "scale_by_schedule"))
        state[0] += 1
        return grads, state

    return Transform(lambda params: _counter(), update)


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
    """Adam's scaling: mu = b1 mu + (1 - b1) g, nu = b2 nu + (1 - b2) g^2, t = count + 1;
    updates = (mu / (1 - b1^t)) / (sqrt(nu / (1 - b2^t) + eps_root) + eps). State (count, mu, nu)."""

    def init(params):
        return (_counter(), _zeros_like(params), _zeros_like(params))

    def update(grads, state, params=None):
        count, mu, nu = state
        count[0] += 1
        bias_correction1 = 1.0 - b1 ** int(count[0])
        bias_correction2 = 1.0 - b2 ** int(count[0])
        device = device_of(grads)
        for grad, first, second in zip(grads, mu, nu):
            device.call("adam_moments", _flat(device, first, "scale_by_adam"), _flat(device, second, "scale_by_adam"),
                        float(b1), float(b2), float(eps), float(eps_root), bias_correction1, bias_correction2,
                        _flat(device, grad, "scale_by_adam"))
        return grads, state

    return Transform(init, update)


def scale_by_rms(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True):
    """RMSprop's scaling: nu = decay nu + (1 - decay) g^2 (nu starts at initial_scale);
    updates = g / sqrt(nu + eps) (eps_in_sqrt, optax's default) or g / (sqrt(nu) + eps)."""

    def init(params):
        device = device_of(params)
        return [device.full(param.shape, initial_scale, param.dtype) for param in params]

    def update(grads, state, params=None):
        device = device_of(grads)
        for grad, nu in zip(grads, state):
            device.call("rms_scale", _flat(device, nu, "scale_by_rms"), float(decay), float(eps), bool(eps_in_sqrt),
                        _flat(device, grad, "scale_by_rms"))
        return grads, state

    return Transform(init, update)


def trace(decay, nesterov=False):
    """Momentum: t = g + decay t; updates = g + decay t (nesterov) or t."""

    def update(grads, state, params=None):
        device = device_of(grads)
        for grad, momentum in zip(grads, state):
            device.call("trace_momentum", _flat(device, momentum, "trace"), float(decay), bool(nesterov),
                        _flat(device, grad, "trace"))
        return grads, state

    return Transform(_zeros_like, update)


def add_decayed_weights(weight_decay=0.0):
    """updates = g + weight_decay * params (needs params)."""

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights: update needs params")
        device = device_of(grads)
        for grad, param in zip(grads, params):
            device.call("add_scaled", device.reshape(param, (param.size,)), float(weight_decay),
                        _flat(device, grad, "add_decayed_weights"))
        return grads, state

    return Transform(lambda params: (), update)


def clip_by_value(max_delta):
    """updates = clip(g, -max_delta, max_delta), element by element."""

    def update(grads, state, params=None):
        device = device_of(grads)
        for grad in grads:
            device.call("clip_values", float(max_delta), _flat(device, grad, "clip_by_value"))
        return grads, state

    return Transform(lambda params: (), update)


def global_norm(arrays):
    """sqrt(sum of squares of all elements of all arrays), in float64."""
    device = device_of(arrays)
    return math.sqrt(sum(device.call("sum_of_squares", _flat(device, array, "global_norm")) for array in arrays))


def clip_by_global_norm(max_norm):
    """With n = global_norm(g): updates = g where n < max_norm, else g * (max_norm / n) (NaN if n is NaN)."""

    def update(grads, state, params=None):
        norm = global_norm(grads)
        if not norm < max_norm:
            factor = max_norm / norm
            device = device_of(grads)
            for grad in grads:
                device.call("scale_values", factor, _flat(device, grad, "clip_by_global_norm"))
        return grads, state

    return Transform(lambda params: (), update)


def adaptive_grad_clip(clipping, eps=1e-3):
    """Adaptive gradient clipping (Brock et al. 2021, optax's formula) per unit: m = max(|p_u|, eps) *
    clipping; g_u *= m / max(|g_u|, 1e-6) where |g_u| >= m. Units are PyTorch's output units: the norm runs
    over every axis but the first (0-d and 1-d tensors: the whole tensor is one unit)."""

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("adaptive_grad_clip: update needs params")
        device = device_of(grads)
        for grad, param in zip(grads, params):
            _flat(device, grad, "adaptive_grad_clip")
            rows = 1 if grad.ndim <= 1 else grad.shape[0]
            if grad.size:
                shape = (rows, grad.size // rows)
                device.call("adaptive_clip_rows", device.reshape(param, shape), float(clipping), float(eps),
                            device.view(grad, shape))
        return grads, state

    return Transform(lambda params: (), update)


def zero_nans():
    """Replace NaN gradients by 0 (infinities pass). State: per array, whether the last update had a NaN."""

    def init(params):
        return DEVICES[HOST].zeros((len(params),), np.bool_)

    def update(grads, state, params=None):
        device = device_of(grads)
        for index, grad in enumerate(grads):
            state[index] = device.call("zero_nan_values", _flat(device, grad, "zero_nans")) > 0
        return grads, state

    return Transform(init, update)


class ApplyIfFiniteState(NamedTuple):
    """Counters (1-element int64 arrays, updated in place) and the inner transform's state."""

    notfinite_count: np.ndarray
    last_finite: np.ndarray
    total_notfinite: np.ndarray
    inner_state: object


def apply_if_finite(inner, max_consecutive_errors=0):
    """Skip the step (zero updates, inner state untouched) when any gradient is NaN or inf, unless that is
    the (max_consecutive_errors + 1)-th non-finite step in a row: then the inner update runs anyway (optax).
    State counts consecutive (`notfinite_count`) and total (`total_notfinite`) skips-or-failures."""

    def init(params):
        return ApplyIfFiniteState(_counter(), DEVICES[HOST].full((1,), True, np.bool_), _counter(), inner.init(params))

    def update(grads, state, params=None):
        device = device_of(grads)
        finite = all(device.call("count_nonfinite", _flat(device, grad, "apply_if_finite")) == 0 for grad in grads)
        state.notfinite_count[0] = 0 if finite else state.notfinite_count[0] + 1
        state.total_notfinite[0] += 0 if finite else 1
        state.last_finite[0] = finite
        if finite or state.notfinite_count[0] > max_consecutive_errors:
            grads, inner_state = inner.update(grads, state.inner_state, params)
            return grads, state._replace(inner_state=inner_state)
        for grad in grads:
            device.fill(grad, 0)
        return grads, state

    return Transform(init, update)


class MultiStepsState(NamedTuple):
    """mini_step and gradient_step (1-element int64 arrays), the running mean of gradients, inner state."""

    mini_step: np.ndarray
    gradient_step: np.ndarray
    acc_grads: list
    inner_state: object


def multi_steps(inner, every_k_schedule):
    """Gradient accumulation (optax.MultiSteps): k = every_k_schedule(gradient_step) (or an int); the first
    k - 1 calls keep the running mean acc += (g - acc) / (mini_step + 1) and return zero updates; the k-th
    applies `inner` to the mean of the k gradients and resets the mean."""

    def steps_for(gradient_step):
        return int(every_k_schedule(gradient_step) if callable(every_k_schedule) else every_k_schedule)

    def init(params):
        return MultiStepsState(_counter(), _counter(), _zeros_like(params), inner.init(params))

    def update(grads, state, params=None):
        count = int(state.mini_step[0])
        device = device_of(grads)
        for grad, accumulated in zip(grads, state.acc_grads):
            device.call("lerp_into", _flat(device, grad, "multi_steps"), 1.0 / (count + 1),
                        _flat(device, accumulated, "multi_steps"))
        if count + 1 < steps_for(int(state.gradient_step[0])):
            state.mini_step[0] = count + 1
            for grad in grads:
                device.fill(grad, 0)
            return grads, state
        for grad, accumulated in zip(grads, state.acc_grads):
            device.copy_into(grad, accumulated)
            device.fill(accumulated, 0)
        grads, inner_state = inner.update(grads, state.inner_state, params)
        state.mini_step[0] = 0
        state.gradient_step[0] += 1
        return grads, state._replace(inner_state=inner_state)

    return Transform(init, update)
