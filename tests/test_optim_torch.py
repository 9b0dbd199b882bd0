"""Optimizer trajectories against torch.optim: 100 steps on the same parameters and gradients, every option."""

import numpy as np
import pytest
from helpers import OPTIM_TOLERANCE, assert_same_params, optim_problem

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim.adagrad import Adagrad
from nbprop.optim.adam import Adam, AdamW
from nbprop.optim.rmsprop import RMSprop
from nbprop.optim.sgd import SGD

SHAPES = [(3, 4), (5,), (), (2, 3, 2), (0, 3), (70, 1000)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, decoupled_weight_decay=True, weight_decay=0.05)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-8)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.001, alpha=0.9, weight_decay=0.1, momentum=0.8, centered=True, maximize=True)),
    ("RMSprop", dict(centered=True)),
]
OURS = dict(SGD=SGD, Adam=Adam, AdamW=AdamW, Adagrad=Adagrad, RMSprop=RMSprop)


def _problem(dtype, shapes=SHAPES, steps=100, seed=0):
    return optim_problem(dtype, shapes, steps, seed)


def _pair(initial):
    import torch

    ours = [Parameter(nbprop.tensor(array.copy())) for array in initial]
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]
    return ours, theirs


def _set_grads(ours, theirs, gradients):
    import torch

    for parameter, tensor, gradient in zip(ours, theirs, gradients):
        parameter.grad = nbprop.tensor(gradient.copy())
        if tensor is not None:
            tensor.grad = torch.tensor(gradient.copy())


def _assert_same_state(ours, theirs, dtype):
    tolerance = OPTIM_TOLERANCE[dtype]
    mine, reference = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert sorted(mine) == sorted(reference)
    for index, entry in reference.items():
        expected = {name: value for name, value in entry.items() if value is not None}
        assert sorted(mine[index]) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(mine[index][name].numpy(), value.numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,options", CASES)
def test_trajectory_matches_torch(name, options, dtype):
    import torch

    initial, gradients = _problem(dtype)
    ours, theirs = _pair(initial)
    optimizer = OURS[name](ours, **options)
    reference = getattr(torch.optim, name)(theirs, **options)
    for step_gradients in gradients:
        _set_grads(ours, theirs, step_gradients)
        optimizer.step()
        reference.step()
    assert_same_params(ours, theirs, dtype)
    _assert_same_state(optimizer, reference, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(OURS))
def test_param_groups_and_missing_grads(name):
    """Groups with different hyperparameters; a parameter without a gradient on some steps is skipped."""
    import torch

    initial, gradients = _problem(np.float64, shapes=[(4,), (2, 3), (3,)], steps=30)
    ours, theirs = _pair(initial)

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.3, "weight_decay": 0.2}]

    optimizer = OURS[name](groups(ours), lr=0.01)
    reference = getattr(torch.optim, name)(groups(theirs), lr=0.01)
    for step, step_gradients in enumerate(gradients):
        _set_grads(ours, theirs, step_gradients)
        if step % 3 == 0:
            ours[1].grad = None
            theirs[1].grad = None
        optimizer.step()
        reference.step()
    assert_same_params(ours, theirs, np.float64)
    _assert_same_state(optimizer, reference, np.float64)


@pytest.mark.torch
@pytest.mark.parametrize("name,options", [CASES[1], CASES[4], CASES[9], CASES[11]])
def test_add_param_group_and_resume(name, options):
    """add_param_group mid-run; save after 50 steps, load into a fresh optimizer: same next 50 steps."""
    import torch

    initial, gradients = _problem(np.float64, shapes=[(4,), (2, 3), (3,)])
    ours, theirs = _pair(initial)
    resumed_params = [Parameter(nbprop.tensor(array.copy())) for array in initial]
    optimizer = OURS[name](ours[:2], **options)
    reference = getattr(torch.optim, name)(theirs[:2], **options)
    for step, step_gradients in enumerate(gradients[:50]):
        if step == 10:
            optimizer.add_param_group({"params": [ours[2]], "lr": 0.02})
            reference.add_param_group({"params": [theirs[2]], "lr": 0.02})
        _set_grads(ours, theirs, step_gradients)
        if step < 10:
            ours[2].grad = theirs[2].grad = None
        optimizer.step()
        reference.step()
    for target, source in zip(resumed_params, ours):
        target._data[...] = source._data
    saved = optimizer.state_dict()
    fresh = OURS[name](resumed_params[:2], **options)
    fresh.add_param_group({"params": [resumed_params[2]], "lr": 0.02})
    fresh.load_state_dict(saved)
    from_torch = OURS[name]([Parameter(nbprop.tensor(p.detach().numpy().copy())) for p in theirs[:2]], **options)
    from_torch.add_param_group({"params": [Parameter(nbprop.tensor(theirs[2].detach().numpy().copy()))]})
    from_torch.load_state_dict(reference.state_dict())
    torch_loaded = [p for group in from_torch.param_groups for p in group["params"]]
    for step_gradients in gradients[50:]:
        _set_grads(ours, theirs, step_gradients)
        _set_grads(resumed_params, [None] * 3, step_gradients)
        _set_grads(torch_loaded, [None] * 3, step_gradients)
        optimizer.step()
        fresh.step()
        from_torch.step()
        reference.step()
    for uninterrupted, resumed in zip(ours, resumed_params):
        np.testing.assert_array_equal(uninterrupted.detach().numpy(), resumed.detach().numpy())
    assert_same_params(ours, theirs, np.float64)
    assert_same_params(torch_loaded, theirs, np.float64)
