"""Adamax, NAdam, RAdam and Adadelta against torch.optim: 100-step trajectories, state, state dicts, errors."""

import numpy as np
import pytest
from helpers import assert_same_params, optim_problem, set_grads, step_together

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim.adadelta import Adadelta
from nbprop.optim.adamax import Adamax
from nbprop.optim.nadam import NAdam
from nbprop.optim.radam import RAdam

SHAPES = [(3, 4), (5,), (), (2, 3, 2), (0, 3), (7, 40)]
# Above kernels._jit.PARALLEL_THRESHOLD (65536 elements): the threaded kernel variant.
LARGE_SHAPES = [(260, 260), (3,)]
SMALL_SHAPES = [(4,), (2, 3), (3,)]
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
OURS = dict(Adamax=Adamax, NAdam=NAdam, RAdam=RAdam, Adadelta=Adadelta)

CASES = [
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-6, weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True, maximize=True)),
    ("NAdam", dict(betas=(0.3, 0.5), momentum_decay=0.0)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True)),
    ("RAdam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
    ("RAdam", dict(betas=(0.3, 0.5))),  # rho_inf = 3: never rectified
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict(rho=1.0)),
]


def _problem(dtype, shapes=SHAPES, steps=100, seed=0):
    return optim_problem(dtype, shapes, steps, seed)


def _ours(initial):
    return [Parameter(nbprop.tensor(array.copy())) for array in initial]


def _theirs(initial):
    import torch

    return [torch.tensor(array.copy(), requires_grad=True) for array in initial]


def _assert_same_state(ours, theirs, dtype):
    tolerance = TOLERANCE[dtype]
    mine, reference = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert sorted(mine) == sorted(reference)
    for index, entry in reference.items():
        assert list(mine[index]) == list(entry)
        for name, value in entry.items():
            assert mine[index][name].shape == tuple(value.shape)
            np.testing.assert_allclose(mine[index][name].numpy(), value.numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,options", CASES)
def test_trajectory_matches_torch(name, options, dtype):
    """100 steps on parameters of many shapes (0-d and empty included): parameters and state."""
    import torch

    initial, gradients = _problem(dtype)
    ours, theirs = _ours(initial), _theirs(initial)
    optimizer = OURS[name](ours, **options)
    reference = getattr(torch.optim, name)(theirs, **options)
    step_together([(optimizer, ours), (reference, theirs)], gradients)
    assert_same_params(ours, theirs, dtype)
    _assert_same_state(optimizer, reference, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name,options", [CASES[1], CASES[4], CASES[7], CASES[11]])
def test_threaded_trajectory_matches_torch(name, options):
    """A bucket above the threshold takes the prange kernel: still torch's trajectory (fewer steps: large)."""
    import torch

    initial, gradients = _problem(np.float32, shapes=LARGE_SHAPES, steps=10, seed=6)
    ours, theirs = _ours(initial), _theirs(initial)
    optimizer = OURS[name](ours, **options)
    reference = getattr(torch.optim, name)(theirs, **options)
    step_together([(optimizer, ours), (reference, theirs)], gradients)
    assert_same_params(ours, theirs, np.float32)
    _assert_same_state(optimizer, reference, np.float32)


@pytest.mark.torch
@pytest.mark.parametrize("name,options", CASES)
def test_param_groups_and_missing_grads(name, options):
    """Two groups with their own hyperparameters; a parameter without a gradient on some steps is skipped
    (its state and step count stand still) and one gets its first gradient late."""
    import torch

    initial, gradients = _problem(np.float64, shapes=SMALL_SHAPES, steps=100, seed=1)
    ours, theirs = _ours(initial), _theirs(initial)

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.3, "weight_decay": 0.2}]

    optimizer = OURS[name](groups(ours), **options)
    reference = getattr(torch.optim, name)(groups(theirs), **options)
    for step, step_gradients in enumerate(gradients):
        missing = {1} if step % 3 == 0 else set()
        if step < 7:
            missing.add(2)
        set_grads(ours, step_gradients, missing)
        set_grads(theirs, step_gradients, missing)
        optimizer.step()
        reference.step()
    assert_same_params(ours, theirs, np.float64)
    _assert_same_state(optimizer, reference, np.float64)


@pytest.mark.torch
@pytest.mark.parametrize("name,options", [CASES[1], CASES[4], CASES[8], CASES[11]])
def test_resume_and_load_torch_state_dict(name, options):
    """Save after 50 steps and load into a fresh optimizer: the next 50 steps are bit-identical to the
    uninterrupted run; loading torch's state dict instead continues torch's trajectory."""
    import torch

    initial, gradients = _problem(np.float64, shapes=SMALL_SHAPES, seed=2)
    ours, theirs = _ours(initial), _theirs(initial)
    optimizer = OURS[name](ours[:2], **options)
    reference = getattr(torch.optim, name)(theirs[:2], **options)
    for step, step_gradients in enumerate(gradients[:50]):
        if step == 10:
            optimizer.add_param_group({"params": [ours[2]], "lr": 0.02})
            reference.add_param_group({"params": [theirs[2]], "lr": 0.02})
        missing = {2} if step < 10 else ({0} if step % 4 == 0 else set())
        set_grads(ours, step_gradients, missing)
        set_grads(theirs, step_gradients, missing)
        optimizer.step()
        reference.step()
    resumed = _ours([p.detach().numpy() for p in ours])
    fresh = OURS[name](resumed[:2], **options)
    fresh.add_param_group({"params": [resumed[2]], "lr": 0.5})
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.param_groups[1]["lr"] == 0.02
    from_torch = _ours([p.detach().numpy() for p in theirs])
    loaded = OURS[name](from_torch[:2], **options)
    loaded.add_param_group({"params": [from_torch[2]]})
    loaded.load_state_dict(reference.state_dict())
    for step_gradients in gradients[50:]:
        for params in (ours, theirs, resumed, from_torch):
            set_grads(params, step_gradients)
        for each in (optimizer, reference, fresh, loaded):
            each.step()
    for uninterrupted, continued in zip(ours, resumed):
        np.testing.assert_array_equal(uninterrupted.detach().numpy(), continued.detach().numpy())
    assert_same_params(ours, theirs, np.float64)
    assert_same_params(from_torch, theirs, np.float64)
    _assert_same_state(loaded, reference, np.float64)


@pytest.mark.torch
def test_nadam_mu_product_follows_default_dtype():
    """With float64 as the default dtype, 'mu_product' is float64 (as PyTorch's scalar state); float32 otherwise."""
    import torch

    initial, gradients = _problem(np.float64, shapes=SMALL_SHAPES, steps=60, seed=3)
    previous, previous_torch = nbprop.get_default_dtype(), torch.get_default_dtype()
    nbprop.set_default_dtype(nbprop.float64)
    torch.set_default_dtype(torch.float64)
    try:
        ours, theirs = _ours(initial), _theirs(initial)
        optimizer = NAdam(ours, lr=0.05, momentum_decay=0.02)
        reference = torch.optim.NAdam(theirs, lr=0.05, momentum_decay=0.02)
        for step_gradients in gradients:
            set_grads(ours, step_gradients)
            set_grads(theirs, step_gradients)
            optimizer.step()
            reference.step()
    finally:
        nbprop.set_default_dtype(previous)
        torch.set_default_dtype(previous_torch)
    assert optimizer.state[ours[0]]["mu_product"].dtype == nbprop.float64
    assert reference.state[theirs[0]]["mu_product"].dtype == torch.float64
    assert_same_params(ours, theirs, np.float64)
    _assert_same_state(optimizer, reference, np.float64)
    float32_optimizer = NAdam(_ours(initial))
    set_grads(float32_optimizer.param_groups[0]["params"], gradients[0])
    float32_optimizer.step()
    assert float32_optimizer.state_dict()["state"][0]["mu_product"].dtype == nbprop.float32


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(OURS))
def test_defaults_and_group_keys_match_torch(name):
    import torch

    ours = OURS[name](_ours([np.zeros(2)]))
    reference = getattr(torch.optim, name)(_theirs([np.zeros(2)]))
    mine = {key: value for key, value in ours.param_groups[0].items() if key != "params"}
    theirs = {key: value for key, value in reference.param_groups[0].items() if key != "params"}
    assert mine == theirs


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(OURS))
def test_schedule_lr_is_evaluated_at_steps_taken(name):
    """lr given as a schedule equals torch with group['lr'] set to schedule(k) before step k (k from 0)."""
    import torch

    def schedule(step):
        return 0.05 * 0.95 ** step

    initial, gradients = _problem(np.float64, shapes=SMALL_SHAPES, steps=40, seed=4)
    ours, theirs = _ours(initial), _theirs(initial)
    optimizer = OURS[name](ours, lr=schedule)
    reference = getattr(torch.optim, name)(theirs, lr=0.05)
    for step, step_gradients in enumerate(gradients):
        reference.param_groups[0]["lr"] = schedule(step)
        set_grads(ours, step_gradients)
        set_grads(theirs, step_gradients)
        optimizer.step()
        reference.step()
    assert_same_params(ours, theirs, np.float64)


@pytest.mark.parametrize("name", sorted(OURS))
def test_threaded_update_is_deterministic(name):
    """A parameter above PARALLEL_THRESHOLD takes the prange kernel: reruns are bit-identical."""
    initial, gradients = _problem(np.float32, shapes=LARGE_SHAPES, steps=5, seed=5)
    results = []
    for _ in range(2):
        params = _ours(initial)
        optimizer = OURS[name](params, weight_decay=0.01)
        for step_gradients in gradients:
            set_grads(params, step_gradients)
            optimizer.step()
        results.append([p.detach().numpy().copy() for p in params])
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)


def test_step_without_gradients_changes_nothing_and_returns_closure_loss():
    params = _ours([np.ones(3)])
    optimizer = NAdam(params)
    assert optimizer.step(lambda: 1.5) == 1.5
    np.testing.assert_array_equal(params[0].detach().numpy(), np.ones(3))
    assert optimizer.state_dict()["state"] == {}


BAD_OPTIONS = [
    (Adamax, dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (Adamax, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (Adamax, dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (Adamax, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (Adamax, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (NAdam, dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1"),
    (NAdam, dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (RAdam, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (RAdam, dict(lr=-0.5), "Invalid learning rate: -0.5"),
    (Adadelta, dict(rho=1.5), "Invalid rho value: 1.5"),
    (Adadelta, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (Adadelta, dict(weight_decay=-2.0), "Invalid weight_decay value: -2.0"),
]


@pytest.mark.parametrize("cls,options,message", BAD_OPTIONS)
def test_invalid_hyperparameters_raise(cls, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        cls(_ours([np.zeros(2)]), **options)


@pytest.mark.parametrize("name", sorted(OURS))
def test_invalid_group_and_unsupported_options_raise(name):
    params = _ours([np.zeros(2), np.zeros(3)])
    optimizer = OURS[name](params[:1])
    with pytest.raises(ValueError, match="Invalid weight_decay value"):
        optimizer.add_param_group({"params": [params[1]], "weight_decay": -1.0})
    with pytest.raises(NotImplementedError, match="differentiable=True is not supported"):
        OURS[name](params[1:], differentiable=True)


def test_nadam_load_requires_mu_product():
    params = _ours([np.zeros(2)])
    optimizer = NAdam(params)
    set_grads(params, [np.ones(2)])
    optimizer.step()
    saved = optimizer.state_dict()
    del saved["state"][0]["mu_product"]
    with pytest.raises(ValueError, match="has no 'mu_product'"):
        NAdam(_ours([np.zeros(2)])).load_state_dict(saved)


@pytest.mark.torch
def test_nadam_state_survives_rebuilt_buffers():
    """Replacing a parameter's array rebuilds the flat buffers: 'mu_product' and the moments carry over."""
    import torch

    initial, gradients = _problem(np.float64, shapes=SMALL_SHAPES, steps=30, seed=7)
    ours, theirs = _ours(initial), _theirs(initial)
    optimizer = NAdam(ours, lr=0.05)
    reference = torch.optim.NAdam(theirs, lr=0.05)
    for step, step_gradients in enumerate(gradients):
        if step == 15:
            ours[1]._data = ours[1]._data.copy()
        set_grads(ours, step_gradients, {2} if step % 5 == 0 else ())
        set_grads(theirs, step_gradients, {2} if step % 5 == 0 else ())
        optimizer.step()
        reference.step()
    assert_same_params(ours, theirs, np.float64)
    _assert_same_state(optimizer, reference, np.float64)
