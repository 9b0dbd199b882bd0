"""nn.init (statistics, bounds, orthogonality, gains, seeding, errors) and the L1/L2 penalties."""

import math

import numpy as np
import pytest

import nbprop
from nbprop.nn import init
from nbprop.nn.linear import Linear
from nbprop.nn.parameter import Parameter
from nbprop.nn.regularization import l1_penalty, l2_penalty
from tests.helpers import assert_close, leaf


def _filled(function, shape=(400, 300), dtype=nbprop.float32, **kwargs):
    tensor = nbprop.empty(*shape, dtype=dtype)
    assert function(tensor, **kwargs) is tensor
    return tensor.numpy()


def _check_moments(values, mean, std):
    """Mean and standard deviation within 5 standard errors of the sample (values.size draws)."""
    count = values.size
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(count)
    # The standard error of a sample standard deviation is about std / sqrt(2 n).
    assert abs(values.std() - std) < 5 * std / math.sqrt(2 * count)


def test_uniform_normal_constant():
    values = _filled(init.uniform_, a=-2.0, b=3.0)
    assert values.min() >= -2 and values.max() <= 3
    _check_moments(values, 0.5, 5 / math.sqrt(12))
    _check_moments(_filled(init.normal_, mean=1.5, std=0.5, dtype=nbprop.float64), 1.5, 0.5)
    assert (_filled(init.constant_, shape=(3,), val=2.5) == 2.5).all()
    assert (_filled(init.zeros_, shape=(2, 2)) == 0).all() and (_filled(init.ones_, shape=(2,)) == 1).all()
    assert (_filled(init.constant_, shape=(2,), dtype=nbprop.int64, val=4) == 4).all()


def test_xavier():
    fan_in, fan_out = 300, 400
    std = math.sqrt(2 / (fan_in + fan_out))
    values = _filled(init.xavier_uniform_, gain=2.0)
    assert np.abs(values).max() <= 2 * math.sqrt(3) * std
    _check_moments(values, 0, 2 * std)
    _check_moments(_filled(init.xavier_normal_), 0, std)
    # A convolution weight (out, in, kh, kw): fans multiply by the receptive field.
    values = _filled(init.xavier_normal_, shape=(64, 32, 3, 3))
    _check_moments(values, 0, math.sqrt(2 / (32 * 9 + 64 * 9)))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming(mode):
    fan = 300 if mode == "fan_in" else 400
    std = math.sqrt(2) / math.sqrt(fan)
    values = _filled(init.kaiming_uniform_, mode=mode, nonlinearity="relu")
    assert np.abs(values).max() <= math.sqrt(3) * std
    _check_moments(values, 0, std)
    _check_moments(_filled(init.kaiming_normal_, mode=mode, nonlinearity="relu"), 0, std)
    leaky = math.sqrt(2 / (1 + 5)) / math.sqrt(fan)
    _check_moments(_filled(init.kaiming_uniform_, a=math.sqrt(5), mode=mode), 0, leaky)


@pytest.mark.parametrize("shape", [(30, 30), (20, 50), (50, 20), (8, 3, 2, 2)])
def test_orthogonal(shape):
    values = _filled(init.orthogonal_, shape=shape, dtype=nbprop.float64, gain=2.0).reshape(shape[0], -1)
    rows, columns = values.shape
    if rows <= columns:
        assert_close(values @ values.T, 4 * np.eye(rows), rtol=0, atol=1e-12)
    else:
        assert_close(values.T @ values, 4 * np.eye(columns), rtol=0, atol=1e-12)


@pytest.mark.torch
def test_calculate_gain_equals_torch():
    import torch

    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == torch.nn.init.calculate_gain(name), name
    for slope in [0, 0.2, 1, 3.5]:
        assert init.calculate_gain("leaky_relu", slope) == torch.nn.init.calculate_gain("leaky_relu", slope)


@pytest.mark.torch
def test_fans_and_bounds_equal_torch():
    import torch

    for shape in [(4, 3), (5, 2, 3), (6, 4, 3, 3)]:
        assert init._calculate_fan_in_and_fan_out(nbprop.empty(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    # Linear's default init: the same bounds as PyTorch's layer.
    ours, theirs = Linear(37, 5), torch.nn.Linear(37, 5)
    bound = 1 / math.sqrt(37)
    assert np.abs(ours.weight.detach().numpy()).max() <= bound
    assert np.abs(theirs.weight.detach().numpy()).max() <= bound


def test_seeded_and_generator_argument():
    nbprop.manual_seed(9)
    first = _filled(init.normal_, shape=(5,))
    nbprop.manual_seed(9)
    assert np.array_equal(first, _filled(init.normal_, shape=(5,)))
    own = _filled(init.uniform_, shape=(5,), generator=np.random.default_rng(1))
    assert np.array_equal(own, _filled(init.uniform_, shape=(5,), generator=np.random.default_rng(1)))


def test_init_in_place_on_parameter_and_errors():
    parameter = Parameter(nbprop.zeros(3, 3))
    version = parameter._version
    init.orthogonal_(parameter)
    assert parameter.requires_grad and parameter.grad_fn is None and parameter._version > version
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(nbprop.empty(3))
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions"):
        init.orthogonal_(nbprop.empty(3))
    with pytest.raises(ValueError, match="Mode fan_middle not supported"):
        init.kaiming_uniform_(nbprop.empty(3, 3), mode="fan_middle")
    with pytest.raises(ValueError, match="Unsupported nonlinearity softsign"):
        init.calculate_gain("softsign")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "x")
    with pytest.raises(TypeError, match="floating-point"):
        init.normal_(nbprop.zeros(2, dtype=nbprop.int64))
    with pytest.raises(TypeError, match="expects a Tensor"):
        init.zeros_(np.zeros(2))
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_normal_(nbprop.empty(0, 3))


# ------------------------------------------------------------------------------------------- penalties


def test_penalties_values_and_gradients():
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((3, 4)), rng.standard_normal(5)
    first[0, 0] = 0.0
    a, b = leaf(first), leaf(second)
    l1 = l1_penalty([a, b])
    assert_close(l1, np.abs(first).sum() + np.abs(second).sum())
    l1.backward()
    assert_close(a.grad, np.sign(first))
    assert a.grad.numpy()[0, 0] == 0
    a.grad = None
    l2 = l2_penalty(iter([a, b]))
    assert_close(l2, (first ** 2).sum() + (second ** 2).sum())
    l2.backward()
    assert_close(a.grad, 2 * first)
    assert nbprop.gradcheck(lambda x, y: l2_penalty([x, y]), (leaf(first), leaf(second)))
    assert nbprop.gradcheck(lambda x: l1_penalty(x), (leaf(second),))


def test_penalties_over_model_and_errors():
    model = Linear(3, 2)
    penalty = l2_penalty(model.parameters())
    expected = sum(float((p.detach().numpy().astype(np.float64) ** 2).sum()) for p in model.parameters())
    assert abs(penalty.item() - expected) < 1e-5
    assert l1_penalty([]).item() == 0.0
    with pytest.raises(TypeError, match="model.parameters"):
        l1_penalty(model)
    with pytest.raises(TypeError, match="not a Tensor"):
        l2_penalty([np.zeros(2)])
    with pytest.raises(TypeError, match="not floating point"):
        l2_penalty([nbprop.arange(3)])
