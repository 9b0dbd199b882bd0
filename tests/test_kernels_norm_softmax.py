"""Float32 arithmetic of the layer norm and softmax kernels against float64 references: large means, constant
rows, rows longer than one summation block, weight gradients over many rows, logits of +-1e4."""

import re

import numpy as np
import pytest
import scipy.special
from helpers import leaf
from numba import njit

import nbprop
from nbprop.kernels import loss as loss_kernels
from nbprop.kernels import norm as kernels
from nbprop.kernels import softmax as softmax_kernels
from nbprop.kernels._jit import OPTIONS
from nbprop.ops.norm import layer_norm
from nbprop.ops.softmax import log_softmax, softmax


def _layer_norm_float64(x, eps):
    """(x - mean) * invstd and invstd of float32 rows, computed in float64."""
    x = x.astype(np.float64)
    mean = x.mean(1, keepdims=True)
    invstd = 1 / np.sqrt(((x - mean) ** 2).mean(1, keepdims=True) + eps)
    return (x - mean) * invstd, invstd


# Rows of 37 (under one block), 600 (across three blocks of kernels.BLOCK) and 256 (exactly one) values.
@pytest.mark.parametrize("length", [37, 256, 600])
@pytest.mark.parametrize("mean, spread", [(0.0, 1.0), (1e4, 1e-2), (-3e5, 0.5), (1e3, 1e-3)])
def test_float32_layer_norm_matches_float64(length, mean, spread):
    # A large mean over a small spread: x - mean needs the float64 mean's low part (1e4 has float32 ulps of
    # 1e-3, a tenth of the spread), which fast-math's reassociation must not fold into the high part.
    rng = np.random.default_rng(length)
    x = (mean + spread * rng.standard_normal((40, length))).astype(np.float32)
    weight = rng.standard_normal(length).astype(np.float32)
    bias = rng.standard_normal(length).astype(np.float32)
    grad_output = rng.standard_normal((40, length)).astype(np.float32)
    inputs = [leaf(x, np.float32), leaf(weight, np.float32), leaf(bias, np.float32)]
    result = layer_norm(inputs[0], length, inputs[1], inputs[2], 1e-12)
    result.backward(nbprop.tensor(grad_output))
    normalized, invstd = _layer_norm_float64(x, 1e-12)
    expected = normalized * weight + bias
    dy = grad_output.astype(np.float64)
    scaled = dy * weight
    grad_input = invstd * (scaled - scaled.mean(1, keepdims=True)
                           - normalized * (scaled * normalized).mean(1, keepdims=True))
    # Within about 1e-6 of each output's scale (the float32 rounding of values near 10 is 5e-7).
    np.testing.assert_allclose(result.detach().numpy(), expected, rtol=1e-6, atol=2e-6)
    np.testing.assert_allclose(inputs[0].grad.numpy(), grad_input, rtol=1e-5,
                               atol=2e-6 * np.abs(grad_input).max())
    np.testing.assert_allclose(inputs[1].grad.numpy(), (dy * normalized).sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inputs[2].grad.numpy(), dy.sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value", [0.1, -3.7, 1e4, 3e38])
def test_float32_constant_rows_have_variance_exactly_zero(value):
    x = np.full((5, 600), value, np.float32)
    bias = np.linspace(-1, 1, 600).astype(np.float32)
    statistics = np.zeros((5, 2))
    out = np.empty_like(x)
    kernels.layer_norm_forward.serial(x, np.full(600, 2.5, np.float32), bias, 1e-5, statistics, out)
    assert (statistics[:, 0] == np.float64(np.float32(value))).all()
    assert (statistics[:, 1] == 1 / np.sqrt(1e-5)).all()  # variance exactly 0
    assert np.array_equal(out, np.broadcast_to(bias, x.shape))


def test_float32_weight_gradient_over_many_rows():
    # 3000 rows: the float32 per-chunk sums cover at most 16 rows each, and the chunks add up in float64.
    rng = np.random.default_rng(9)
    x = (1 + 3 * rng.standard_normal((3000, 64))).astype(np.float32)
    grad_output = (1 + rng.standard_normal((3000, 64))).astype(np.float32)
    weight, bias = leaf(np.ones(64), np.float32), leaf(np.zeros(64), np.float32)
    layer_norm(nbprop.tensor(x), 64, weight, bias).backward(nbprop.tensor(grad_output))
    normalized, _ = _layer_norm_float64(x, 1e-5)
    dy = grad_output.astype(np.float64)
    np.testing.assert_allclose(weight.grad.numpy(), (dy * normalized).sum(0), rtol=2e-6, atol=1e-3)
    np.testing.assert_allclose(bias.grad.numpy(), dy.sum(0), rtol=2e-6)


def test_float32_layer_norm_backward_serial_and_parallel_are_bit_identical():
    rng = np.random.default_rng(10)
    x = (5 + rng.standard_normal((70, 300))).astype(np.float32)
    grad_output = rng.standard_normal((70, 300)).astype(np.float32)
    weight = rng.standard_normal(300).astype(np.float32)
    statistics, out = np.zeros((70, 2)), np.empty_like(x)
    kernels.layer_norm_forward.serial(x, weight, weight, 1e-5, statistics, out)
    runs = []
    for kernel in (kernels.layer_norm_backward.serial, kernels.layer_norm_backward.parallel):
        arguments = (grad_output, x, statistics, weight, np.empty_like(x), np.empty((5, 300), np.float32),
                     np.empty((5, 300), np.float32))
        kernel(*arguments)
        runs.append(arguments[-3:])
    for one, other in zip(*runs):
        assert np.array_equal(one, other)


@pytest.mark.parametrize("function, name", [(softmax, "softmax"), (log_softmax, "log_softmax")])
def test_float32_softmax_of_large_logits(function, name):
    # Logits of +-1e4 (and spread within 30 of the row max): x - max and exp in float32 stay within the
    # float32 tolerance of the float64 result.
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.choice([-1e4, 1e4], (8, 50)), 1e4 - 30 * rng.random((8, 50)),
                        -1e4 + rng.standard_normal((8, 50))]).astype(np.float32)
    expected = getattr(scipy.special, name)(x.astype(np.float64), axis=1)
    result = function(nbprop.tensor(x), 1).numpy()
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7 if name == "softmax" else 1e-3)
    if name == "softmax":
        np.testing.assert_allclose(result.sum(1), 1, rtol=1e-6)


@pytest.mark.parametrize("row_max", [softmax_kernels._row_max, loss_kernels._row_max], ids=["softmax", "loss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_row_max_vectorises_and_skips_nan(row_max, dtype):
    """Through maximum_number (LLVM's maxnum): a compare-and-select max reduction would stay scalar without the
    nnan flag the kernels go without."""
    loop = njit(**dict(OPTIONS, cache=False))(lambda x: row_max(x))
    values = np.array([1.0, np.nan, 3.0, -np.inf, 2.0], dtype)
    assert loop(values) == 3.0 and loop(np.full(4, np.nan, dtype)) == -np.inf and loop(values[:0]) == -np.inf
    bits = np.dtype(dtype).itemsize * 8
    assert re.search(rf"maxnum\.v\d+f{bits}", loop.inspect_llvm(loop.signatures[0]))  # the width is the CPU's
