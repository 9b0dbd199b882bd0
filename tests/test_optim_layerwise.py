"""ASGD (against torch.optim.ASGD), LAMB and Adafactor (against NumPy references of optax.lamb/adafactor)."""

import numpy as np
import pytest
from helpers import step_together

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim.adafactor import OptaxAdafactor, factored_dims
from nbprop.optim.asgd import ASGD
from nbprop.optim.lamb import LAMB

SHAPES = [(3, 4), (5,), (), (2, 3, 2), (0, 3), (70, 30)]
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}


def _problem(dtype, shapes=SHAPES, steps=100, seed=0):
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = [[rng.standard_normal(shape).astype(dtype) for shape in shapes] for _ in range(steps)]
    return initial, gradients


def _params(initial):
    return [Parameter(nbprop.tensor(np.array(array, copy=True))) for array in initial]


def _set_grads(params, gradients):
    for parameter, gradient in zip(params, gradients):
        parameter.grad = nbprop.tensor(gradient.copy())


def _values(params):
    return [p.detach().numpy() for p in params]


def _assert_close(actual, expected, dtype):
    tolerance = TOLERANCE[dtype]
    for mine, reference in zip(actual, expected):
        np.testing.assert_allclose(mine, reference, rtol=tolerance, atol=tolerance)


def _run(optimizer_class, initial, gradients, **options):
    params = _params(initial)
    optimizer = optimizer_class(params, **options)
    for step_gradients in gradients:
        _set_grads(params, step_gradients)
        optimizer.step()
    return params, optimizer


# ------------------------------------------------------------------------------------------ ASGD


ASGD_CASES = [dict(), dict(lr=0.05, lambd=0.01, alpha=0.6, t0=20, weight_decay=0.1, maximize=True)]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", ASGD_CASES)
def test_asgd_trajectory_matches_torch(options, dtype):
    import torch

    initial, gradients = _problem(dtype)
    params, optimizer = _run(ASGD, initial, gradients, **options)
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]
    reference = torch.optim.ASGD(theirs, **options)
    for step_gradients in gradients:
        for tensor, gradient in zip(theirs, step_gradients):
            tensor.grad = torch.tensor(gradient.copy())
        reference.step()
    _assert_close(_values(params), [t.detach().numpy() for t in theirs], dtype)
    mine, expected = optimizer.state_dict()["state"], reference.state_dict()["state"]
    for index, entry in expected.items():
        assert sorted(mine[index]) == sorted(entry)
        for name, value in entry.items():
            assert mine[index][name].numpy().dtype == value.numpy().dtype, name
        _assert_close([mine[index][name].numpy() for name in entry], [v.numpy() for v in entry.values()], dtype)


@pytest.mark.torch
def test_asgd_resume_from_ours_and_torch():
    import torch

    options = dict(lr=0.05, lambd=0.01, t0=10)
    initial, gradients = _problem(np.float64, shapes=[(4,), (2, 3)], steps=40)
    params, optimizer = _run(ASGD, initial, gradients[:20], **options)
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]
    reference = torch.optim.ASGD(theirs, **options)
    for step_gradients in gradients[:20]:
        for tensor, gradient in zip(theirs, step_gradients):
            tensor.grad = torch.tensor(gradient.copy())
        reference.step()
    resumed, from_torch = _params(_values(params)), _params([t.detach().numpy() for t in theirs])
    fresh, loaded = ASGD(resumed, **options), ASGD(from_torch, **options)
    fresh.load_state_dict(optimizer.state_dict())
    loaded.load_state_dict(reference.state_dict())
    for step_gradients in gradients[20:]:
        for group, each in ((params, optimizer), (resumed, fresh), (from_torch, loaded)):
            _set_grads(group, step_gradients)
            each.step()
        for tensor, gradient in zip(theirs, step_gradients):
            tensor.grad = torch.tensor(gradient.copy())
        reference.step()
    for uninterrupted, again in zip(_values(params), _values(resumed)):
        np.testing.assert_array_equal(uninterrupted, again)
    _assert_close(_values(from_torch), [t.detach().numpy() for t in theirs], np.float64)


def test_asgd_load_state_dict_checks_shapes():
    params = _params([np.zeros(3)])
    optimizer = ASGD(params)
    params[0].grad = nbprop.tensor(np.ones(3))
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["eta"] = nbprop.tensor(np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"state 'eta' of parameter 0 has shape \(2,\), expected \(\)"):
        ASGD(_params([np.zeros(3)])).load_state_dict(saved)
    with pytest.raises(ValueError, match="Invalid weight_decay value"):
        ASGD(params, weight_decay=-0.5)


# ------------------------------------------------------------------------------------------ LAMB


def _lamb_reference(initial, gradients, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, eps_root=0.0,
                    maximize=False):
    """optax.lamb = chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio, scale(-lr)) in NumPy."""
    beta1, beta2 = betas
    params = [array.astype(np.float64) for array in initial]
    first = [np.zeros_like(array) for array in params]
    second = [np.zeros_like(array) for array in params]
    for step, step_gradients in enumerate(gradients, start=1):
        for index, gradient in enumerate(step_gradients):
            gradient = -gradient.astype(np.float64) if maximize else gradient.astype(np.float64)
            first[index] = beta1 * first[index] + (1 - beta1) * gradient
            second[index] = beta2 * second[index] + (1 - beta2) * gradient ** 2
            update = (first[index] / (1 - beta1 ** step)) / (
                np.sqrt(second[index] / (1 - beta2 ** step) + eps_root) + eps)
            update = update + weight_decay * params[index]
            param_norm, update_norm = np.linalg.norm(params[index]), np.linalg.norm(update)
            ratio = 1.0 if param_norm == 0 or update_norm == 0 else param_norm / update_norm
            params[index] = params[index] - lr * ratio * update
    return params


LAMB_CASES = [dict(), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1, eps_root=1e-10, maximize=True)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", LAMB_CASES)
def test_lamb_trajectory_matches_reference(options, dtype):
    initial, gradients = _problem(dtype)
    # A zero parameter (trust ratio 1 by the 0-norm convention) and one with zero gradients.
    initial[1][...] = 0
    for step_gradients in gradients:
        step_gradients[3][...] = 0
    params, _ = _run(LAMB, initial, gradients, **options)
    _assert_close(_values(params), _lamb_reference(initial, gradients, **options), dtype)


# ------------------------------------------------------------------------------------------ Adafactor


def _adafactor_reference(initial, gradients, lr=None, decay_rate=0.8, decay_offset=0, min_dim_size_to_factor=128,
                         eps=1e-30, clipping_threshold=1.0, multiply_by_parameter_scale=True, momentum=None,
                         weight_decay_rate=None, factored=True):
    """optax.adafactor (scale_by_factored_rms, clip_by_block_rms, scale by lr, scale_by_param_block_rms, ema,
    add_decayed_weights, scale(-1)) in float64 NumPy."""
    params = [array.astype(np.float64) for array in initial]
    state = [dict(v=np.zeros(p.shape), row=None, col=None, m=np.zeros(p.shape)) for p in params]
    for count, step_gradients in enumerate(gradients):
        decay = 1.0 - (count - decay_offset + 1.0) ** -decay_rate
        for index, gradient in enumerate(step_gradients):
            gradient = gradient.astype(np.float64)
            entry, param = state[index], params[index]
            dims = factored_dims(param.shape, factored, min_dim_size_to_factor)
            square = gradient ** 2 + eps
            if dims is not None:
                second, largest = dims
                if entry["row"] is None:
                    entry["row"] = np.zeros(np.delete(param.shape, largest))
                    entry["col"] = np.zeros(np.delete(param.shape, second))
                entry["row"] = decay * entry["row"] + (1 - decay) * square.mean(axis=largest)
                entry["col"] = decay * entry["col"] + (1 - decay) * square.mean(axis=second)
                reduced = second - 1 if second > largest else second
                row_mean = entry["row"].mean(axis=reduced, keepdims=True)
                update = (gradient * np.expand_dims((entry["row"] / row_mean) ** -0.5, largest)
                          * np.expand_dims(entry["col"] ** -0.5, second))
            else:
                entry["v"] = decay * entry["v"] + (1 - decay) * square
                update = gradient * entry["v"] ** -0.5
            if param.size == 0:
                continue
            if clipping_threshold is not None:
                update = update / max(1.0, np.sqrt(np.mean(update ** 2)) / clipping_threshold)
            if lr is not None:
                update = update * lr
            if multiply_by_parameter_scale:
                update = update * max(np.sqrt(np.mean(param ** 2)), 1e-3)
            if momentum is not None:
                entry["m"] = (1 - momentum) * update + momentum * entry["m"]
                update = entry["m"]
            if weight_decay_rate is not None:
                update = update + weight_decay_rate * param
            params[index] = param - update
    return params, state


ADAFACTOR_SHAPES = [(3, 4), (4, 3), (5,), (), (2, 3, 2), (3, 2, 4, 2), (0, 3), (2, 0, 3), (130, 129)]
ADAFACTOR_CASES = [
    dict(),
    dict(min_dim_size_to_factor=2, lr=0.05, momentum=0.9, weight_decay_rate=0.01),
    dict(min_dim_size_to_factor=3, clipping_threshold=None, multiply_by_parameter_scale=False, lr=0.01,
         decay_rate=0.5, eps=1e-3, momentum=0.0),
    dict(factored=False, clipping_threshold=0.5),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", ADAFACTOR_CASES)
def test_adafactor_trajectory_matches_reference(options, dtype):
    if not options and dtype == np.float32:
        # lr=None takes steps as large as the parameters: they grow ~e^t and float32 rounding with them.
        options = dict(lr=0.05)
    initial, gradients = _problem(dtype, shapes=ADAFACTOR_SHAPES, steps=30)
    params, optimizer = _run(OptaxAdafactor, initial, gradients, **options)
    expected, reference_state = _adafactor_reference(initial, gradients, **options)
    _assert_close(_values(params), expected, dtype)
    state = optimizer.state_dict()["state"]
    for index, entry in enumerate(reference_state):
        if entry["row"] is not None:
            assert "v" not in state[index]
            _assert_close([state[index]["v_row"].numpy(), state[index]["v_col"].numpy()],
                          [entry["row"], entry["col"]], dtype)
        else:
            assert "v_row" not in state[index]
            _assert_close([state[index]["v"].numpy()], [entry["v"]], dtype)


def test_adafactor_resume_and_unsupported_options():
    initial, gradients = _problem(np.float64, shapes=[(3, 4), (5,), (2, 3, 2)], steps=20)
    options = dict(min_dim_size_to_factor=2, momentum=0.5)
    params, optimizer = _run(OptaxAdafactor, initial, gradients[:10], **options)
    resumed = _params(_values(params))
    fresh = OptaxAdafactor(resumed, **options)
    fresh.load_state_dict(optimizer.state_dict())
    step_together([(optimizer, params), (fresh, resumed)], gradients[10:])
    for uninterrupted, again in zip(_values(params), _values(resumed)):
        np.testing.assert_array_equal(uninterrupted, again)
    with pytest.raises(NotImplementedError, match="weight_decay_mask"):
        OptaxAdafactor(params, weight_decay_mask=lambda p: p)
    with pytest.raises(NotImplementedError, match="dtype_momentum"):
        OptaxAdafactor(params, dtype_momentum=np.float32)
    with pytest.raises(ValueError, match="Invalid clipping_threshold"):
        OptaxAdafactor(params, clipping_threshold=0.0)
    saved = optimizer.state_dict()
    saved["state"][0]["v"] = saved["state"][0].pop("v_row")
    with pytest.raises(ValueError, match="has state 'v', which a parameter of shape"):
        OptaxAdafactor(_params(initial), **options).load_state_dict(saved)


@pytest.mark.parametrize("name", ["LAMB", "Adafactor", "ASGD"])
def test_deterministic_parallel(name):
    """Above the parallel threshold (a factored (270, 260) matrix for Adafactor): bit-identical reruns."""
    initial, gradients = _problem(np.float64, shapes=[(270, 260), (7,)], steps=4)
    optimizer_class = dict(LAMB=LAMB, Adafactor=OptaxAdafactor, ASGD=ASGD)[name]
    first, _ = _run(optimizer_class, initial, gradients)
    second, _ = _run(optimizer_class, initial, gradients)
    for one, other in zip(_values(first), _values(second)):
        np.testing.assert_array_equal(one, other)
    if name == "Adafactor":
        _assert_close(_values(first), _adafactor_reference(initial, gradients)[0], np.float64)
    if name == "LAMB":
        _assert_close(_values(first), _lamb_reference(initial, gradients), np.float64)
