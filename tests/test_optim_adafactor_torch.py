"""Adafactor against torch.optim.Adafactor: 100-step trajectories, state layout, resuming, argument checks."""

import numpy as np
import pytest
from helpers import OPTIM_TOLERANCE, assert_same_params, optim_problem, set_grads, step_together

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim import Adafactor

# 0-, 1-, 2-, 3- and 4-d parameters (torch factors those of 2 or more dimensions over their last two axes),
# matrices with a single row or column, and one large enough for the threaded kernel variant in tests.
SHAPES = [(3, 4), (5,), (), (2, 3, 2), (2, 1, 3, 4), (1, 5), (5, 1), (70, 1000)]

CASES = [
    dict(),
    dict(lr=0.05, weight_decay=0.1, maximize=True),
    # rho = min(lr, 1 / sqrt(t)) switches from lr to 1 / sqrt(t) at step 12.
    dict(lr=0.3, beta2_decay=-0.5, eps=(1e-30, 1e-2), d=2.0),
    # beta2_decay = 0: the variances are the last squared gradient; no floor on either epsilon.
    dict(beta2_decay=0.0, eps=(0.0, 0.0), d=1.5, foreach=True),
    # An eps1 that does clamp: v is floored at 1e-2 ** 2 and the row means at 1e-2.
    dict(lr=0.02, eps=(1e-2, 1e-3), weight_decay=0.5),
]


def _pair(initial):
    import torch

    ours = [Parameter(nbprop.tensor(array.copy())) for array in initial]
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]
    return ours, theirs


def _copies(params):
    return [Parameter(nbprop.tensor(p.detach().numpy().copy())) for p in params]


def _assert_same_state(ours, theirs, dtype):
    """The same state entries as torch's, of the same shapes and dtypes, with the same values."""
    tolerance = OPTIM_TOLERANCE[dtype]
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert [sorted(group) for group in mine["param_groups"]] == [sorted(group) for group in reference["param_groups"]]
    assert sorted(mine["state"]) == sorted(reference["state"])
    for index, entry in reference["state"].items():
        assert sorted(mine["state"][index]) == sorted(entry)
        for name, value in entry.items():
            expected = value.numpy()
            actual = mine["state"][index][name].numpy()
            assert actual.shape == expected.shape and actual.dtype == expected.dtype, (index, name)
            np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance)


def _torch_state(state_dict):
    """Our state_dict with torch tensors, for torch.optim.Adafactor.load_state_dict."""
    import torch

    state = {index: {name: torch.from_numpy(value.numpy().copy()) for name, value in entry.items()}
             for index, entry in state_dict["state"].items()}
    return {"state": state, "param_groups": state_dict["param_groups"]}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", CASES)
def test_trajectory_matches_torch(options, dtype):
    import torch

    initial, gradients = optim_problem(dtype, SHAPES)
    ours, theirs = _pair(initial)
    optimizer = Adafactor(ours, **options)
    reference = torch.optim.Adafactor(theirs, **options)
    step_together([(optimizer, ours), (reference, theirs)], gradients)
    assert_same_params(ours, theirs, dtype)
    _assert_same_state(optimizer, reference, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps", [(None, 1e-3), (1e-30, 1e-3), (1e-3, 0.0)])
def test_zero_and_sparse_gradients(eps, dtype):
    """Gradients of whole zeros, of zero rows and columns, ~90% zeros, and a parameter starting at zero
    (rms(p) = 0: the step is eps2 rho)."""
    import torch

    shapes = [(4, 6), (7,), (3, 5), (2, 4, 3), ()]
    initial, gradients = optim_problem(dtype, shapes)
    initial[1][...] = 0
    rng = np.random.default_rng(1)
    for step, step_gradients in enumerate(gradients):
        # Zero for the first 10 steps (state created at zero), then a zero row and a zero column.
        if step < 10:
            step_gradients[0][...] = 0
        else:
            step_gradients[0][1, :] = 0
            step_gradients[0][:, 2] = 0
        for index in (1, 2, 3):
            step_gradients[index] *= rng.random(shapes[index]) < 0.1
        if step % 2:
            step_gradients[4][...] = 0
    ours, theirs = _pair(initial)
    optimizer = Adafactor(ours, lr=0.05, eps=eps)
    reference = torch.optim.Adafactor(theirs, lr=0.05, eps=eps)
    step_together([(optimizer, ours), (reference, theirs)], gradients)
    assert_same_params(ours, theirs, dtype)
    _assert_same_state(optimizer, reference, dtype)


@pytest.mark.torch
def test_param_groups_missing_grads_and_mixed_dtypes():
    """Groups with different hyperparameters; parameters without a gradient on some steps (skipped, their step
    not counted); eps1 = None in a group of float32 and float64 parameters takes, as torch, the epsilon of the
    first parameter with a gradient for the whole group (visible with gradients of ~1e-9, whose squares lie
    between float64's and float32's epsilon squared)."""
    import torch

    initial, gradients = optim_problem(np.float64, [(3, 4), (6,), (2, 3, 2), (5,), (4, 3)])
    initial[0] = initial[0].astype(np.float32)
    initial[3] = initial[3].astype(np.float32)
    for step_gradients in gradients:
        step_gradients[0] = step_gradients[0].astype(np.float32)
        step_gradients[3] = step_gradients[3].astype(np.float32)
        step_gradients[1] *= 1e-9
        step_gradients[4] *= 1e-9
    ours, theirs = _pair(initial)

    def groups(params):
        return [{"params": params[:2]},
                {"params": params[2:], "lr": 0.2, "beta2_decay": -0.6, "d": 1.2, "weight_decay": 0.05,
                 "maximize": True}]

    optimizer = Adafactor(groups(ours), lr=0.03)
    reference = torch.optim.Adafactor(groups(theirs), lr=0.03)
    for step, step_gradients in enumerate(gradients):
        # Parameter 0 (float32) and 3 (float32) lead their groups on some steps only.
        missing = {0} if step % 3 == 0 else {3, 1} if step % 4 == 1 else set()
        set_grads(ours, step_gradients, missing)
        set_grads(theirs, step_gradients, missing)
        optimizer.step()
        reference.step()
    assert_same_params(ours, theirs, np.float32)
    mine, expected = optimizer.state_dict()["state"], reference.state_dict()["state"]
    for index, entry in expected.items():
        assert float(mine[index]["step"].numpy()) == float(entry["step"])
        for name, value in entry.items():
            np.testing.assert_allclose(mine[index][name].numpy(), value.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_state_dict_round_trip_and_add_param_group():
    """add_param_group mid-run; after 50 steps, our state_dict resumes a fresh optimizer to a bit-identical
    trajectory, torch's state_dict resumes ours, and ours resumes torch's, to the same parameters."""
    import torch

    options = dict(lr=0.04, eps=(None, 1e-2), weight_decay=0.01)
    initial, gradients = optim_problem(np.float64, [(3, 4), (5,), (2, 3, 2), ()])
    ours, theirs = _pair(initial)
    optimizer = Adafactor(ours[:3], **options)
    reference = torch.optim.Adafactor(theirs[:3], **options)
    for step, step_gradients in enumerate(gradients[:50]):
        if step == 10:
            optimizer.add_param_group({"params": [ours[3]], "lr": 0.1})
            reference.add_param_group({"params": [theirs[3]], "lr": 0.1})
        missing = {3} if step < 10 else set()
        set_grads(ours, step_gradients, missing)
        set_grads(theirs, step_gradients, missing)
        optimizer.step()
        reference.step()
    _assert_same_state(optimizer, reference, np.float64)

    def fresh(params, state_dict):
        resumed = Adafactor(params[:3], **options)
        resumed.add_param_group({"params": [params[3]]})
        resumed.load_state_dict(state_dict)
        return resumed

    resumed_params, from_torch_params = _copies(ours), _copies(theirs)
    resumed = fresh(resumed_params, optimizer.state_dict())
    from_torch = fresh(from_torch_params, reference.state_dict())
    torch_params = [torch.tensor(p.detach().numpy().copy(), requires_grad=True) for p in ours]
    torch_resumed = torch.optim.Adafactor(torch_params[:3], **options)
    torch_resumed.add_param_group({"params": [torch_params[3]]})
    torch_resumed.load_state_dict(_torch_state(optimizer.state_dict()))
    step_together([(optimizer, ours), (resumed, resumed_params), (from_torch, from_torch_params),
                   (reference, theirs), (torch_resumed, torch_params)], gradients[50:])
    for uninterrupted, again in zip(ours, resumed_params):
        np.testing.assert_array_equal(uninterrupted.detach().numpy(), again.detach().numpy())
    assert_same_params(ours, theirs, np.float64)
    assert_same_params(from_torch_params, theirs, np.float64)
    assert_same_params(ours, torch_params, np.float64)


def test_load_state_dict_checks_state_shapes():
    params = [Parameter(nbprop.tensor(np.ones((3, 4)))), Parameter(nbprop.tensor(np.ones(5)))]
    optimizer = Adafactor(params)
    set_grads(params, [np.ones((3, 4)), np.ones(5)])
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["row_var"] = nbprop.tensor(np.zeros((3,)))
    with pytest.raises(ValueError, match=r"Adafactor.load_state_dict: state 'row_var' of parameter 0 has shape "
                                         r"\(3,\), expected \(3, 1\)"):
        Adafactor(params).load_state_dict(saved)
    saved = optimizer.state_dict()
    saved["state"][1]["row_var"] = saved["state"][1].pop("variance")
    with pytest.raises(ValueError, match="has state 'row_var', which a parameter of shape"):
        Adafactor(params).load_state_dict(saved)


@pytest.mark.torch
@pytest.mark.parametrize("options", [dict(lr=-1.0), dict(beta2_decay=0.5), dict(eps=(-1.0, 1e-3)),
                                     dict(eps=(None, -1.0)), dict(d=0.5), dict(weight_decay=-0.1)])
def test_bad_arguments_raise_like_torch(options):
    import torch

    with pytest.raises(ValueError) as expected:
        torch.optim.Adafactor([torch.zeros(2, requires_grad=True)], **options)
    with pytest.raises(ValueError, match="^Adafactor: ") as raised:
        Adafactor([Parameter(nbprop.tensor(np.zeros(2)))], **options)
    assert str(expected.value) in str(raised.value)


def test_bad_eps_and_group_hyperparameters():
    params = [Parameter(nbprop.tensor(np.zeros(2)))]
    with pytest.raises(ValueError, match=r"Adafactor: eps should be a pair \(epsilon1 or None, epsilon2\)"):
        Adafactor(params, eps=1e-3)
    with pytest.raises(ValueError, match=r"Adafactor: eps should be a pair"):
        Adafactor(params, eps=(None, 1e-3, 1e-3))
    optimizer = Adafactor(params)
    with pytest.raises(ValueError, match="Adafactor: Clipping threshold d should be >= 1 but is: 0.5"):
        optimizer.add_param_group({"params": [Parameter(nbprop.tensor(np.zeros(3)))], "d": 0.5})


@pytest.mark.torch
def test_empty_parameters_are_left_alone():
    """torch.optim.Adafactor divides by a parameter's element count in Python and fails on an empty one; here
    an empty parameter keeps its (empty) values and zero state, and the others step as torch steps them."""
    import torch

    shapes = [(0, 3), (3, 0), (2, 0, 3), (0,), (3, 4)]
    initial, gradients = optim_problem(np.float64, shapes, steps=20)
    ours = [Parameter(nbprop.tensor(array.copy())) for array in initial]
    theirs = [torch.tensor(initial[4].copy(), requires_grad=True)]
    optimizer = Adafactor(ours, lr=0.05)
    reference = torch.optim.Adafactor(theirs, lr=0.05)
    for step_gradients in gradients:
        set_grads(ours, step_gradients)
        set_grads(theirs, step_gradients[4:])
        optimizer.step()
        reference.step()
    assert_same_params(ours[4:], theirs, np.float64)
    state = optimizer.state_dict()["state"]
    assert state[0]["col_var"].shape == (1, 3) and state[1]["row_var"].shape == (3, 1)
    for index in range(4):
        assert float(state[index]["step"].numpy()) == 20.0
        for name, value in state[index].items():
            if name != "step":
                np.testing.assert_array_equal(value.numpy(), 0.0)
    empty = torch.zeros((0, 3), requires_grad=True)
    empty.grad = torch.zeros((0, 3))
    with pytest.raises(ZeroDivisionError):
        torch.optim.Adafactor([empty]).step()


@pytest.mark.torch
def test_threaded_variant_is_deterministic():
    """Above the tests' parallel threshold, with several matrices of a 3-d parameter as separate units:
    bit-identical reruns, equal to torch."""
    import torch

    initial, gradients = optim_problem(np.float64, [(8, 90, 100), (7,), (300, 250)], steps=5)
    runs = []
    for _ in range(2):
        params = [Parameter(nbprop.tensor(array.copy())) for array in initial]
        step_together([(Adafactor(params, lr=0.1), params)], gradients)
        runs.append(params)
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first.detach().numpy(), second.detach().numpy())
    theirs = [torch.tensor(array.copy(), requires_grad=True) for array in initial]
    step_together([(torch.optim.Adafactor(theirs, lr=0.1), theirs)], gradients)
    assert_same_params(runs[0], theirs, np.float64)
