"""The Optimizer base: errors, zero_grad, closures, schedules, re-flattening after dtype changes, determinism."""

import numpy as np
import pytest

import nbprop
from nbprop.nn.linear import Linear
from nbprop.nn.parameter import Parameter
from nbprop.optim.adam import Adam
from nbprop.optim.sgd import SGD


def _params(*shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(nbprop.tensor(rng.standard_normal(shape).astype(dtype))) for shape in shapes]


def test_errors():
    first, second = _params((2,), (3,))
    with pytest.raises(ValueError, match="Invalid learning rate"):
        SGD([first], lr=-1.0)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [first]}, {"params": [first, second]}])
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([first * 2.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="Invalid beta"):
        Adam([first], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([first], nesterov=True)
    optimizer = Adam([first], amsgrad=False)
    first.grad = nbprop.tensor(np.ones(2))
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["bogus"] = saved["state"][0]["exp_avg"]
    with pytest.raises(ValueError, match="unknown state"):
        Adam([second]).load_state_dict(saved)
    del saved["state"][0]["bogus"]
    with pytest.raises(ValueError, match="has shape"):
        Adam([second]).load_state_dict(saved)
    with pytest.raises(ValueError, match="doesn't match the size"):
        Adam([first, second]).load_state_dict(saved)
    first.grad = nbprop.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match="gradient of parameter 0"):
        optimizer.step()


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    (parameter,) = _params((3,))
    parameter.grad = nbprop.tensor(np.ones(3))
    SGD([parameter]).zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert parameter.grad is None
    else:
        np.testing.assert_array_equal(parameter.grad.numpy(), np.zeros(3))


def test_closure_and_parameters_stay_views():
    layer = Linear(3, 2).double()
    weight = layer.weight
    optimizer = SGD(layer.parameters(), lr=0.1)
    inputs = nbprop.tensor(np.ones((4, 3)))

    def closure():
        optimizer.zero_grad()
        loss = layer(inputs).sum()
        loss.backward()
        return loss

    with nbprop.no_grad():
        before = layer.weight.detach().numpy().copy()
        loss = optimizer.step(closure)
    assert loss.requires_grad
    assert layer.weight is weight and layer.weight.shape == (2, 3)
    np.testing.assert_allclose(layer.weight.detach().numpy(), before - 0.1 * 4.0)


def test_dtype_change_reflattens():
    layer = Linear(3, 2).double()
    optimizer = Adam(layer.parameters(), lr=0.1)
    for parameter in layer.parameters():
        parameter.grad = nbprop.tensor(np.ones(parameter.shape))
    optimizer.step()
    layer.float()
    for parameter in layer.parameters():
        parameter.grad = nbprop.tensor(np.ones(parameter.shape, np.float32))
    before = layer.weight.detach().numpy().copy()
    optimizer.step()
    assert layer.weight.dtype == np.float32
    # The second Adam step with a constant gradient moves by lr again.
    np.testing.assert_allclose(layer.weight.detach().numpy(), before - 0.1, rtol=1e-5)
    assert optimizer.state[layer.weight]["exp_avg"].dtype == np.float32
    assert float(optimizer.state[layer.weight]["step"].item()) == 2.0


def test_schedule_learning_rate_uses_steps_taken():
    (parameter,) = _params((2,))
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 / (1 + step)

    optimizer = SGD([parameter], lr=schedule)
    start = parameter.detach().numpy().copy()
    for _ in range(3):
        parameter.grad = nbprop.tensor(np.ones(2))
        optimizer.step()
    assert seen == [0, 1, 2]
    np.testing.assert_allclose(parameter.detach().numpy(), start - (0.1 + 0.05 + 0.1 / 3))


def test_deterministic_parallel_step():
    """A group above the parallel threshold: two identical runs give bit-identical parameters."""
    results = []
    for _ in range(2):
        params = _params((300, 300), (17,), dtype=np.float32)
        optimizer = Adam(params, lr=0.01, amsgrad=True)
        rng = np.random.default_rng(1)
        for _ in range(5):
            for parameter in params:
                parameter.grad = nbprop.tensor(rng.standard_normal(parameter.shape).astype(np.float32))
            optimizer.step()
        results.append([parameter.detach().numpy().copy() for parameter in params])
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)


def test_nonfinite_gradients_propagate():
    """Named optimizers apply the gradient as given (as PyTorch): a NaN gradient gives a NaN parameter."""
    (parameter,) = _params((3,))
    optimizer = Adam([parameter])
    parameter.grad = nbprop.tensor(np.array([np.nan, 1.0, np.inf]))
    optimizer.step()
    values = parameter.detach().numpy()
    assert np.isnan(values[0]) and np.isfinite(values[1]) and np.isnan(values[2])
