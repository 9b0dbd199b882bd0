"""Composable transforms against hand computation (optax's formulas), and from_transform against torch."""

import numpy as np
import pytest

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim import transforms as T
from nbprop.optim.from_transform import from_transform


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)), rng.standard_normal(5)]


def test_chain_clip_by_global_norm_and_scale():
    grads = _arrays()
    expected_norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    transform = T.chain(T.clip_by_global_norm(1.0), T.scale(0.5))
    updates, _ = transform.update([g.copy() for g in grads], transform.init(grads))
    for update, grad in zip(updates, grads):
        np.testing.assert_allclose(update, grad / expected_norm * 0.5, rtol=1e-12)
    small = [g * 1e-3 for g in grads]
    updates, _ = transform.update([g.copy() for g in small], transform.init(grads))
    for update, grad in zip(updates, small):
        np.testing.assert_allclose(update, grad * 0.5, rtol=1e-12)


def test_scale_by_adam_and_trace_and_rms():
    grads = _arrays()
    params = _arrays(1)
    adam = T.scale_by_adam(b1=0.8, b2=0.9, eps=1e-3)
    state = adam.init(params)
    mu = [np.zeros_like(g) for g in grads]
    nu = [np.zeros_like(g) for g in grads]
    for step in range(1, 4):
        updates, state = adam.update([g.copy() for g in grads], state)
        for index, grad in enumerate(grads):
            mu[index] = 0.8 * mu[index] + 0.2 * grad
            nu[index] = 0.9 * nu[index] + 0.1 * grad ** 2
            expected = (mu[index] / (1 - 0.8 ** step)) / (np.sqrt(nu[index] / (1 - 0.9 ** step)) + 1e-3)
            np.testing.assert_allclose(updates[index], expected, rtol=1e-12)
    momentum = T.trace(0.9, nesterov=True)
    state = momentum.init(params)
    momentum.update([g.copy() for g in grads], state)
    updates, state = momentum.update([g.copy() for g in grads], state)
    np.testing.assert_allclose(updates[0], grads[0] + 0.9 * (grads[0] + 0.9 * grads[0]), rtol=1e-12)
    rms = T.scale_by_rms(decay=0.5, eps=1e-6)
    updates, _ = rms.update([g.copy() for g in grads], rms.init(params))
    np.testing.assert_allclose(updates[1], grads[1] / np.sqrt(0.5 * grads[1] ** 2 + 1e-6), rtol=1e-12)


def test_elementwise_transforms():
    grads = _arrays()
    params = _arrays(1)
    updates, _ = T.add_decayed_weights(0.1).update([g.copy() for g in grads], (), params)
    np.testing.assert_allclose(updates[0], grads[0] + 0.1 * params[0], rtol=1e-12)
    updates, _ = T.clip_by_value(0.5).update([g.copy() for g in grads], ())
    np.testing.assert_array_equal(updates[1], np.clip(grads[1], -0.5, 0.5))
    nan = [np.array([1.0, np.nan, np.inf])]
    transform = T.zero_nans()
    updates, state = transform.update(nan, transform.init(nan))
    np.testing.assert_array_equal(updates[0], [1.0, 0.0, np.inf])
    assert state[0]
    schedule = T.scale_by_schedule(lambda count: 10.0 ** -count)
    state = schedule.init(grads)
    schedule.update([g.copy() for g in grads], state)
    updates, state = schedule.update([g.copy() for g in grads], state)
    np.testing.assert_allclose(updates[0], grads[0] * 0.1, rtol=1e-12)


def test_adaptive_grad_clip_per_output_unit():
    param = np.array([[3.0, 4.0], [0.0, 0.0]])
    grad = np.array([[30.0, 40.0], [1e-4, 0.0]])
    updates, _ = T.adaptive_grad_clip(0.1, eps=1e-3).update([grad.copy()], (), [param])
    # Row 0: limit 0.1 * 5 = 0.5 < |g| = 50 -> scaled to norm 0.5; row 1: limit 1e-4 -> not above, kept.
    np.testing.assert_allclose(updates[0][0], grad[0] * 0.5 / 50.0, rtol=1e-12)
    np.testing.assert_allclose(updates[0][1], grad[1] * 1e-4 / 1e-4, rtol=1e-12)


def test_apply_if_finite_skips_and_counts():
    inner = T.trace(0.5)
    transform = T.apply_if_finite(inner, max_consecutive_errors=1)
    grads = [np.ones(3)]
    state = transform.init(grads)
    updates, state = transform.update([np.ones(3)], state)
    np.testing.assert_array_equal(updates[0], np.ones(3))
    bad = [np.array([1.0, np.nan, 1.0])]
    updates, state = transform.update([b.copy() for b in bad], state)
    np.testing.assert_array_equal(updates[0], np.zeros(3))
    np.testing.assert_array_equal(state.inner_state[0], np.ones(3))
    assert state.notfinite_count[0] == 1 and state.total_notfinite[0] == 1 and not state.last_finite[0]
    # The second consecutive failure exceeds max_consecutive_errors=1: the inner update runs anyway.
    updates, state = transform.update([b.copy() for b in bad], state)
    assert np.isnan(updates[0][1]) and state.total_notfinite[0] == 2
    updates, state = transform.update([np.ones(3)], state)
    assert state.notfinite_count[0] == 0 and state.total_notfinite[0] == 2


def test_multi_steps_accumulates_mean():
    transform = T.multi_steps(T.scale(2.0), every_k_schedule=3)
    grads = _arrays()
    state = transform.init(grads)
    sequence = [_arrays(seed) for seed in range(3)]
    for step, arrays in enumerate(sequence):
        updates, state = transform.update([a.copy() for a in arrays], state)
        if step < 2:
            assert all(not update.any() for update in updates)
    for index in range(2):
        expected = 2.0 * np.mean([arrays[index] for arrays in sequence], axis=0)
        np.testing.assert_allclose(updates[index], expected, rtol=1e-12)
    assert state.mini_step[0] == 0 and state.gradient_step[0] == 1


def test_transform_requires_contiguous():
    with pytest.raises(ValueError, match="C-contiguous"):
        T.scale(1.0).update([np.ones((3, 4))[:, ::2]], ())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_from_transform_adamw_recipe_matches_torch(dtype):
    """chain(scale_by_adam(), add_decayed_weights(wd)) with param -= lr * update is torch.optim.AdamW's rule
    (sqrt(v / bc2) + eps equals sqrt(v) / sqrt(bc2) + eps up to rounding)."""
    import torch

    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in [(4, 3), (5,)]]
    ours = [Parameter(nbprop.tensor(a.copy())) for a in initial]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
    transform = T.chain(T.scale_by_adam(eps=1e-8), T.add_decayed_weights(0.01))
    optimizer = from_transform(ours, transform, lr=1e-2)
    reference = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=0.01)
    for _ in range(100):
        for parameter, tensor in zip(ours, theirs):
            gradient = rng.standard_normal(parameter.shape).astype(dtype)
            parameter.grad = nbprop.tensor(gradient.copy())
            tensor.grad = torch.tensor(gradient)
        optimizer.step()
        reference.step()
    tolerance = 1e-5 if dtype == np.float32 else 1e-10
    for parameter, tensor in zip(ours, theirs):
        np.testing.assert_allclose(parameter.detach().numpy(), tensor.detach().numpy(), rtol=tolerance, atol=tolerance)
    saved = optimizer.state_dict()
    fresh = from_transform([Parameter(nbprop.tensor(p.detach().numpy().copy())) for p in ours], transform, 1e-2)
    fresh.load_state_dict(saved)
    loaded_mu = fresh.state_dict()["transform_state"][0][0][1][0]
    np.testing.assert_array_equal(loaded_mu, saved["transform_state"][0][0][1][0])
