"""Activation modules: PyTorch's constructor arguments, reprs, values and gradients, in-place, errors."""

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch

import nbprop
from nbprop.nn import activation as nn

# (module name, constructor arguments) for nbprop.nn.activation and torch.nn alike.
MODULES = [
    ("ReLU", {}), ("ReLU", {"inplace": True}), ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.3}),
    ("ELU", {}), ("ELU", {"alpha": 0.5}), ("SELU", {}), ("GELU", {}), ("GELU", {"approximate": "tanh"}),
    ("SiLU", {}), ("Softplus", {}), ("Softplus", {"beta": 2.0, "threshold": 1.0}), ("Sigmoid", {}),
    ("Tanh", {}), ("Hardtanh", {}), ("Hardtanh", {"min_val": -2.0, "max_val": 0.5}), ("Softmax", {"dim": 1}),
    ("Softmax", {"dim": -1}), ("LogSoftmax", {"dim": 0}), ("LogSoftmax", {"dim": 1}),
]


def _ids(case):
    name, arguments = case
    return name + "".join(f"-{key}={value}" for key, value in arguments.items())


@pytest.mark.torch
@pytest.mark.parametrize("case", MODULES, ids=[_ids(case) for case in MODULES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)])
def test_module_matches_torch(case, dtype, shape):
    import torch

    name, arguments = case
    ours_module, torch_module = getattr(nn, name)(**arguments), getattr(torch.nn, name)(**arguments)
    assert repr(ours_module) == repr(torch_module)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3
    ours = leaf(x, dtype)
    theirs = to_torch(ours)
    # In-place modules write into their input: feed them a non-leaf, as PyTorch requires.
    result, expected = ours_module(ours * 1.0), torch_module(theirs * 1.0)
    grad_output = rng.standard_normal(shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert result.dtype == dtype
    assert_close(result, expected, **tolerance)
    assert_close(ours.grad, theirs.grad, **tolerance)


@pytest.mark.parametrize("case", MODULES, ids=[_ids(case) for case in MODULES])
def test_gradcheck(case):
    name, arguments = case
    module = getattr(nn, name)(**arguments)
    # Values away from every kink (0, +-1, -2, 0.5, the softplus thresholds).
    x = np.array([[-2.7, -1.3, -0.6, 0.2, 0.8], [1.4, 2.6, -0.25, 0.35, -1.7]])
    assert nbprop.gradcheck(lambda u: module(u * 1.0), (leaf(x),))


def test_inplace_modules_overwrite_their_input():
    for name in ("ReLU", "LeakyReLU", "ELU", "SELU", "SiLU", "Hardtanh"):
        x = nbprop.tensor([-1.5, 0.5, 2.0])
        expected = getattr(nn, name)()(x)
        assert getattr(nn, name)(inplace=True)(x) is x
        assert_close(x, expected)
    x = nbprop.tensor([-1.5, 0.5, 2.0])
    result = nn.ReLU()(x)
    assert result is not x and x.tolist() == [-1.5, 0.5, 2.0]


def test_softmax_implicit_dim_follows_pytorch():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        result = nn.Softmax()(nbprop.tensor(x))
    assert_close(result.sum(0), np.ones((3, 4)))  # 3-d input: PyTorch's legacy choice is dim 0
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax"):
        result = nn.LogSoftmax()(nbprop.tensor(x[0]))
    assert_close(result.exp().sum(1), np.ones(3))  # 2-d input: dim 1


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"Hardtanh: max_val \(-1.0\) must be greater than min_val \(1.0\)"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match=r"GELU: approximate must be 'none' or 'tanh', got 'erf'"):
        nn.GELU("erf")
    with pytest.warns(FutureWarning, match="min_value"):
        module = nn.Hardtanh(min_value=-3.0)
    assert module.min_val == -3.0


def test_modules_have_no_parameters():
    for name, arguments in MODULES:
        module = getattr(nn, name)(**arguments)
        assert list(module.parameters()) == [] and module.state_dict() == {}
