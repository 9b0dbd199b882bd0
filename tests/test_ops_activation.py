"""Functional activations: forward against NumPy/SciPy, gradcheck, PyTorch's values and gradients (kinks
included), extremes, in-place semantics, errors and determinism."""

import math

import numpy as np
import pytest
import scipy.special
from helpers import arrays, assert_close, leaf, nonempty_shapes, shapes, to_torch
from hypothesis import given, settings

import nbprop
from nbprop.ops import activation as functional

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _softplus(x, beta, threshold):
    return np.where(beta * x > threshold, x, np.logaddexp(0.0, beta * x) / beta)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


# name: (nbprop function, NumPy reference (float64), PyTorch call, the kinks gradcheck stays away from)
CASES = {
    "relu": (functional.relu, lambda x: np.maximum(x, 0.0), lambda F, t: F.relu(t), (0.0,)),
    "leaky_relu": (lambda t: functional.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda F, t: F.leaky_relu(t, 0.2), (0.0,)),
    "leaky_relu_default": (functional.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x),
                           lambda F, t: F.leaky_relu(t), (0.0,)),
    "elu": (lambda t: functional.elu(t, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)),
            lambda F, t: F.elu(t, 1.5), (0.0,)),
    "selu": (functional.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
             lambda F, t: F.selu(t), (0.0,)),
    "gelu": (functional.gelu, lambda x: 0.5 * x * scipy.special.erfc(-x / math.sqrt(2.0)),
             lambda F, t: F.gelu(t), ()),
    "gelu_tanh": (lambda t: functional.gelu(t, approximate="tanh"), _gelu_tanh,
                  lambda F, t: F.gelu(t, approximate="tanh"), ()),
    "silu": (functional.silu, lambda x: x * scipy.special.expit(x), lambda F, t: F.silu(t), ()),
    "softplus": (functional.softplus, lambda x: _softplus(x, 1.0, 20.0), lambda F, t: F.softplus(t), ()),
    "softplus_beta": (lambda t: functional.softplus(t, 2.0, 3.0), lambda x: _softplus(x, 2.0, 3.0),
                      lambda F, t: F.softplus(t, 2.0, 3.0), (1.5,)),
    "hardtanh": (functional.hardtanh, lambda x: np.clip(x, -1.0, 1.0), lambda F, t: F.hardtanh(t), (-1.0, 1.0)),
    "hardtanh_bounds": (lambda t: functional.hardtanh(t, -0.5, 2.0), lambda x: np.clip(x, -0.5, 2.0),
                        lambda F, t: F.hardtanh(t, -0.5, 2.0), (-0.5, 2.0)),
}
NAMES = sorted(CASES)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15)
@given(x=shapes.flatmap(lambda shape: arrays(shape, np.float64, -6.0, 6.0)))
def test_forward_matches_numpy(name, x):
    function, reference, _, _ = CASES[name]
    result = function(nbprop.tensor(x))
    assert result.dtype == np.float64
    assert_close(result, reference(x))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10)
@given(x=shapes.flatmap(lambda shape: arrays(shape, np.float32, -6.0, 6.0)))
def test_forward_float32(name, x):
    function, reference, _, _ = CASES[name]
    result = function(nbprop.tensor(x))
    assert result.dtype == np.float32
    assert_close(result, reference(x.astype(np.float64)).astype(np.float32), rtol=1e-5, atol=1e-6)


def _away_from_kinks(x, kinks):
    """Move values within 1e-3 of a kink off it, so central differences do not straddle it."""
    for kink in kinks:
        near = np.abs(x - kink) < 1e-3
        x = np.where(near, kink + 0.01, x)
    return x


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8)
@given(x=nonempty_shapes.flatmap(lambda shape: arrays(shape, np.float64, -4.0, 4.0)))
def test_gradcheck(name, x):
    function, _, _, kinks = CASES[name]
    assert nbprop.gradcheck(function, (leaf(_away_from_kinks(x, kinks)),))


def _torch_pair(name, x, dtype):
    """Values and gradients (for a non-uniform grad_output) of nbprop and PyTorch on the same input."""
    import torch
    import torch.nn.functional as torch_functional

    function, _, torch_call, _ = CASES[name]
    ours = leaf(x, dtype)
    theirs = to_torch(ours)
    result, expected = function(ours), torch_call(torch_functional, theirs)
    grad_output = np.cos(np.arange(max(x.size, 1)))[:x.size].reshape(x.shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    return result, expected, ours.grad, theirs.grad


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (), (2, 0, 3), (1, 1, 1, 6)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(name, shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape) * 3
    result, expected, gradient, expected_gradient = _torch_pair(name, x, dtype)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert result.dtype == dtype and gradient.dtype == dtype
    assert_close(result, expected, **tolerance)
    assert_close(gradient, expected_gradient, **tolerance)


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kinks_and_extremes_match_torch(name, dtype):
    # The kinks themselves (0, +-1, the hardtanh bounds, softplus's threshold), +-1e4, and values in between.
    x = np.array([0.0, -0.0, 1.0, -1.0, -0.5, 2.0, 1.5, 20.0, 10.0, -1e4, 1e4, -30.0, 30.0, 1e-8, -1e-8, 0.3])
    result, expected, gradient, expected_gradient = _torch_pair(name, x, dtype)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert np.isfinite(result.detach().numpy()).all() and np.isfinite(gradient.numpy()).all()
    assert_close(result, expected, **tolerance)
    assert_close(gradient, expected_gradient, **tolerance)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stable_at_extremes(dtype):
    x = nbprop.tensor(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype))
    assert_close(functional.softplus(x), np.array([0.0, math.exp(-100.0), math.log(2.0), 100.0, 1e4], dtype))
    # beta x below the threshold but exp(beta x) would overflow without the log1p(exp(-|bx|)) form.
    assert_close(functional.softplus(x, beta=1.0, threshold=math.inf),
                 np.array([0.0, math.exp(-100.0), math.log(2.0), 100.0, 1e4], dtype))
    assert_close(functional.gelu(x), np.array([0.0, 0.0, 0.0, 100.0, 1e4], dtype))
    assert_close(functional.silu(x), np.array([0.0, -100.0 * math.exp(-100.0), 0.0, 100.0, 1e4], dtype))
    assert_close(functional.elu(x), np.array([-1.0, -1.0, 0.0, 100.0, 1e4], dtype))
    # The exact GELU's left tail keeps its tiny values (1 + erf(x) would round them to 0).
    tail = functional.gelu(nbprop.tensor(np.array([-10.0])))
    assert_close(tail, [-10.0 * 0.5 * scipy.special.erfc(10.0 / math.sqrt(2.0))], rtol=1e-12, atol=0)
    assert tail.item() < 0


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "selu", "silu", "hardtanh"])
def test_inplace(name):
    function = getattr(functional, name)
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    expected = function(nbprop.tensor(x))
    target = nbprop.tensor(x)
    version = target._version
    assert function(target, inplace=True) is target
    assert target._version == version + 1
    assert_close(target, expected)
    # Through the tape: the gradient of the in-place result of a non-leaf is that of the plain op.
    ours = leaf(x)
    intermediate = ours * 1.0
    function(intermediate, inplace=True).sum().backward()
    plain = leaf(x)
    function(plain).sum().backward()
    assert_close(ours.grad, plain.grad)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        function(leaf(x), inplace=True)


@pytest.mark.torch
def test_inplace_gradient_matches_torch():
    import torch

    x = np.array([-2.0, -0.5, 0.5, 2.0])
    ours = leaf(x)
    theirs = to_torch(ours)
    middle = ours * 2.0
    functional.elu(middle, 0.7, inplace=True)
    (middle * middle).sum().backward()
    torch_middle = theirs * 2.0
    torch.nn.functional.elu(torch_middle, 0.7, inplace=True)
    (torch_middle * torch_middle).sum().backward()
    assert_close(middle, torch_middle)
    assert_close(ours.grad, theirs.grad, rtol=1e-10)


def test_non_contiguous_input():
    x = np.random.default_rng(2).standard_normal((4, 6))
    transposed = nbprop.tensor(x).T
    assert_close(functional.gelu(transposed), CASES["gelu"][1](x.T))
    ours = leaf(x)
    functional.softplus(ours.T, 2.0).sum().backward()
    assert_close(ours.grad, scipy.special.expit(2.0 * x))


def test_errors():
    integers = nbprop.tensor(np.arange(3))
    with pytest.raises(TypeError, match=r"leaky_relu: not implemented for int64 tensors"):
        functional.leaky_relu(integers)
    with pytest.raises(TypeError, match=r"gelu: not implemented for bool tensors"):
        functional.gelu(nbprop.tensor(np.ones(2, bool)))
    with pytest.raises(TypeError, match=r"silu: expects a Tensor, got list"):
        functional.silu([1.0])
    with pytest.raises(TypeError, match=r"relu: expects a Tensor, got float"):
        functional.relu(1.0)
    x = nbprop.tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        functional.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match=r"hardtanh: min_val \(2.0\) must not be larger than max_val \(1.0\)"):
        functional.hardtanh(x, 2.0, 1.0)
    with pytest.raises(ValueError, match=r"softplus: beta must be non-zero"):
        functional.softplus(x, beta=0)
    with pytest.raises(TypeError, match=r"elu: alpha must be a real number, got str"):
        functional.elu(x, alpha="1")


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_including_parallel_variant(name):
    # 300 x 300 = 90,000 elements > PARALLEL_THRESHOLD: the forward and backward kernels run in parallel.
    x = np.random.default_rng(3).standard_normal((300, 300)) * 4
    function = CASES[name][0]
    grad_output = nbprop.tensor(np.sin(np.arange(x.size)).reshape(x.shape))

    def run(dtype):
        ours = leaf(x, dtype)
        result = function(ours)
        result.backward(grad_output.to(dtype))
        return result.detach().numpy().copy(), ours.grad.numpy().copy()

    for dtype in (np.float64, np.float32):
        first, second = run(dtype), run(dtype)
        assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
        # The same values as a small input that runs the serial variant, row by row.
        small_value = function(nbprop.tensor(x[:2].astype(dtype))).numpy()
        assert_close(first[0][:2], small_value, rtol=1e-6 if dtype == np.float32 else 1e-14)
