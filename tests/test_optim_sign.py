"""Rprop (against torch.optim.Rprop) and Lion (against a NumPy reference of optax.lion): trajectories, state."""

import numpy as np
import pytest
from helpers import step_together

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim.lion import Lion
from nbprop.optim.rprop import Rprop

# Small shapes keep the file fast; test_deterministic_parallel runs the parallel variants (above
# kernels._jit.PARALLEL_THRESHOLD elements).
SHAPES = [(3, 4), (5,), (), (2, 3, 2), (0, 3), (70, 30)]
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}


def _problem(dtype, shapes=SHAPES, steps=100, seed=0):
    """Initial values and a gradient sequence; some gradient entries are exactly 0 (Rprop's third case)."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = [[np.where(rng.random(shape) < 0.1, 0.0, rng.standard_normal(shape)).astype(dtype)
                  for shape in shapes] for _ in range(steps)]
    return initial, gradients


def _params(initial):
    return [Parameter(nbprop.tensor(array.copy())) for array in initial]


def _set_grads(params, gradients):
    for parameter, gradient in zip(params, gradients):
        parameter.grad = nbprop.tensor(gradient.copy())


def _set_torch_grads(tensors, gradients):
    import torch

    for tensor, gradient in zip(tensors, gradients):
        tensor.grad = torch.tensor(gradient.copy())


def _assert_close(actual, expected, dtype):
    tolerance = TOLERANCE[dtype]
    for mine, reference in zip(actual, expected):
        np.testing.assert_allclose(mine, reference, rtol=tolerance, atol=tolerance)


def _values(params):
    return [p.detach().numpy() for p in params]


# ------------------------------------------------------------------------------------------ Rprop


RPROP_CASES = [
    dict(),
    dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.5), maximize=True),
    dict(lr=0.2, step_sizes=(0.1, 0.05)),  # minimum above maximum: torch.clamp gives the maximum
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", RPROP_CASES)
def test_rprop_trajectory_matches_torch(options, dtype):
    import torch

    initial, gradients = _problem(dtype)
    ours = _params(initial)
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]
    optimizer, reference = Rprop(ours, **options), torch.optim.Rprop(theirs, **options)
    for step_gradients in gradients:
        _set_grads(ours, step_gradients)
        _set_torch_grads(theirs, step_gradients)
        optimizer.step()
        reference.step()
    _assert_close(_values(ours), [t.detach().numpy() for t in theirs], dtype)
    mine, expected = optimizer.state_dict()["state"], reference.state_dict()["state"]
    assert sorted(mine) == sorted(expected)
    for index, entry in expected.items():
        assert sorted(mine[index]) == sorted(entry)
        _assert_close([mine[index][name].numpy() for name in entry], [value.numpy() for value in entry.values()],
                      dtype)


@pytest.mark.torch
def test_rprop_groups_missing_grads_and_resume():
    """Two groups, a parameter without gradient every third step; after 50 steps the state is saved and loaded
    into fresh optimizers (from ours and from torch's state_dict): the next 50 steps are the same."""
    import torch

    initial, gradients = _problem(np.float64, shapes=[(4,), (2, 3), (3,)])
    ours = _params(initial)
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.3, "etas": (0.4, 1.3)}]

    optimizer, reference = Rprop(groups(ours), lr=0.01), torch.optim.Rprop(groups(theirs), lr=0.01)
    for step, step_gradients in enumerate(gradients[:50]):
        _set_grads(ours, step_gradients)
        _set_torch_grads(theirs, step_gradients)
        if step % 3 == 0:
            ours[1].grad = theirs[1].grad = None
        optimizer.step()
        reference.step()
    resumed = _params(_values(ours))
    fresh = Rprop(groups(resumed), lr=0.01)
    fresh.load_state_dict(optimizer.state_dict())
    from_torch = _params([t.detach().numpy() for t in theirs])
    loaded = Rprop(groups(from_torch), lr=0.01)
    loaded.load_state_dict(reference.state_dict())
    for step_gradients in gradients[50:]:
        for params in (ours, resumed, from_torch):
            _set_grads(params, step_gradients)
        _set_torch_grads(theirs, step_gradients)
        for each in (optimizer, fresh, loaded, reference):
            each.step()
    for uninterrupted, again in zip(_values(ours), _values(resumed)):
        np.testing.assert_array_equal(uninterrupted, again)
    expected = [t.detach().numpy() for t in theirs]
    _assert_close(_values(ours), expected, np.float64)
    _assert_close(_values(from_torch), expected, np.float64)


def test_rprop_invalid_arguments():
    parameter = Parameter(nbprop.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="Invalid eta values: 1.5, 2"):
        Rprop([parameter], etas=(1.5, 2))
    with pytest.raises(ValueError, match="Invalid learning rate"):
        Rprop([parameter], lr=-1.0)
    with pytest.raises(ValueError, match="step_sizes must be a pair"):
        Rprop([parameter], step_sizes=(1.0,))
    with pytest.raises(NotImplementedError, match="differentiable"):
        Rprop([parameter], differentiable=True)


# ------------------------------------------------------------------------------------------ Lion


def _lion_reference(initial, gradients, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-3, maximize=False):
    """optax.lion in float64 NumPy: u = sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g; p -= lr (u + wd p)."""
    beta1, beta2 = betas
    params = [array.astype(np.float64) for array in initial]
    moments = [np.zeros_like(array) for array in params]
    for step, step_gradients in enumerate(gradients):
        rate = lr(step) if callable(lr) else lr
        for index, gradient in enumerate(step_gradients):
            gradient = -gradient.astype(np.float64) if maximize else gradient.astype(np.float64)
            update = np.sign(beta1 * moments[index] + (1 - beta1) * gradient)
            moments[index] = beta2 * moments[index] + (1 - beta2) * gradient
            params[index] = params[index] - rate * (update + weight_decay * params[index])
    return params, moments


LION_CASES = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, maximize=True),
    dict(lr=lambda step: 0.01 / (1.0 + step), weight_decay=0.0),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", LION_CASES)
def test_lion_trajectory_matches_reference(options, dtype):
    initial, gradients = _problem(dtype)
    params = _params(initial)
    optimizer = Lion(params, **options)
    for step_gradients in gradients:
        _set_grads(params, step_gradients)
        optimizer.step()
    expected, moments = _lion_reference(initial, gradients, **options)
    _assert_close(_values(params), expected, dtype)
    state = optimizer.state_dict()["state"]
    _assert_close([state[index]["exp_avg"].numpy() for index in range(len(params))], moments, dtype)
    assert all(float(state[index]["step"].numpy()) == 100 for index in range(len(params)))


def test_lion_resume_and_add_param_group():
    initial, gradients = _problem(np.float64, shapes=[(4,), (2, 3), (3,)], steps=40)
    params = _params(initial)
    optimizer = Lion(params[:2], lr=0.01)
    for step, step_gradients in enumerate(gradients[:20]):
        if step == 5:
            optimizer.add_param_group({"params": [params[2]], "weight_decay": 0.5})
        _set_grads(params, step_gradients)
        optimizer.step()
    resumed = _params(_values(params))
    fresh = Lion(resumed[:2], lr=0.01)
    fresh.add_param_group({"params": [resumed[2]]})
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.param_groups[1]["weight_decay"] == 0.5
    step_together([(optimizer, params), (fresh, resumed)], gradients[20:])
    for uninterrupted, again in zip(_values(params), _values(resumed)):
        np.testing.assert_array_equal(uninterrupted, again)


@pytest.mark.parametrize("name", ["Rprop", "Lion"])
def test_deterministic_parallel(name):
    """Above the parallel threshold, two runs give bit-identical parameters."""
    initial, gradients = _problem(np.float64, shapes=[(300, 300), (7,)], steps=5)
    results = []
    for _ in range(2):
        params = _params(initial)
        optimizer = (Rprop if name == "Rprop" else Lion)(params, lr=0.01)
        for step_gradients in gradients:
            _set_grads(params, step_gradients)
            optimizer.step()
        results.append(_values(params))
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)


def test_lion_invalid_arguments_and_versions():
    parameter = Parameter(nbprop.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.5"):
        Lion([parameter], betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="Invalid weight_decay value: -1"):
        Lion([parameter], weight_decay=-1)
    optimizer = Lion([parameter])
    version = parameter._version_counter[0]
    parameter.grad = nbprop.tensor(np.ones(3))
    optimizer.step()
    assert parameter._version_counter[0] == version + 1
    np.testing.assert_allclose(parameter.detach().numpy(), -1e-4 * np.ones(3), rtol=1e-12)
