"""Functional batch_norm, layer_norm, rms_norm, group_norm: NumPy forward, gradcheck, PyTorch's values,
gradients and running statistics, constant and extreme data, empty inputs, errors, determinism."""

import math

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf, to_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.kernels import norm as kernels
from nbprop.ops.batch_norm import batch_norm
from nbprop.ops.norm import group_norm, layer_norm, rms_norm

TORCH_TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


def _normalize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps)


def _channel_shape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def _batch_norm_reference(x, weight, bias, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    return _normalize(x, axes, eps) * weight.reshape(_channel_shape(x)) + bias.reshape(_channel_shape(x))


def _group_norm_reference(x, groups, weight, bias, eps=1e-5):
    grouped = x.reshape(x.shape[0], groups, -1)
    normalized = _normalize(grouped, (2,), eps).reshape(x.shape)
    return normalized * weight.reshape(_channel_shape(x)) + bias.reshape(_channel_shape(x))


def _layer_norm_reference(x, count, weight, bias, eps=1e-5):
    return _normalize(x, tuple(range(x.ndim - count, x.ndim)), eps) * weight + bias


def _rms_norm_reference(x, count, weight, eps):
    axes = tuple(range(x.ndim - count, x.ndim))
    return x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps) * weight


# ------------------------------------------------------------------------------- forward against NumPy

channel_shapes = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4)


@settings(max_examples=20)
@given(x=channel_shapes.flatmap(arrays), data=st.data())
def test_forward_matches_numpy(x, data):
    channels = x.shape[1]
    weight, bias = np.linspace(0.5, 2.0, channels), np.linspace(-1.0, 1.0, channels)
    if x.size // channels > 1:
        assert_close(batch_norm(nbprop.tensor(x), None, None, nbprop.tensor(weight), nbprop.tensor(bias), True),
                     _batch_norm_reference(x, weight, bias), rtol=1e-10, atol=1e-10)
    count = data.draw(st.integers(1, x.ndim))
    shape = x.shape[x.ndim - count:]
    layer_weight = np.linspace(0.5, 2.0, math.prod(shape)).reshape(shape)
    assert_close(layer_norm(nbprop.tensor(x), shape, nbprop.tensor(layer_weight), nbprop.tensor(-layer_weight)),
                 _layer_norm_reference(x, count, layer_weight, -layer_weight), rtol=1e-10, atol=1e-10)
    assert_close(rms_norm(nbprop.tensor(x), shape, nbprop.tensor(layer_weight), 1e-6),
                 _rms_norm_reference(x, count, layer_weight, 1e-6), rtol=1e-10, atol=1e-10)
    groups = data.draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))
    assert_close(group_norm(nbprop.tensor(x), groups, nbprop.tensor(weight), nbprop.tensor(bias)),
                 _group_norm_reference(x, groups, weight, bias), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------- gradcheck


def test_gradcheck():
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((3, 2, 4)))
    weight, bias = leaf(rng.standard_normal(2) + 1), leaf(rng.standard_normal(2))
    running_mean, running_var = nbprop.tensor(rng.standard_normal(2)), nbprop.tensor(rng.random(2) + 0.5)
    assert nbprop.gradcheck(lambda u, w, b: batch_norm(u, None, None, w, b, True), (x, weight, bias))
    assert nbprop.gradcheck(lambda u, w, b: batch_norm(u, running_mean, running_var, w, b, False), (x, weight, bias))
    assert nbprop.gradcheck(lambda u: batch_norm(u, None, None, training=True), (leaf(rng.standard_normal((5, 3))),))
    layer_weight, layer_bias = leaf(rng.standard_normal((2, 4)) + 1), leaf(rng.standard_normal((2, 4)))
    assert nbprop.gradcheck(lambda u, w, b: layer_norm(u, (2, 4), w, b), (x, layer_weight, layer_bias))
    assert nbprop.gradcheck(lambda u: layer_norm(u, 4), (x,))
    assert nbprop.gradcheck(lambda u, w: rms_norm(u, (2, 4), w), (x, layer_weight))
    assert nbprop.gradcheck(lambda u: rms_norm(u, [4], eps=1e-3), (x,))
    group_input = leaf(rng.standard_normal((2, 4, 3)))
    group_weight, group_bias = leaf(rng.standard_normal(4) + 1), leaf(rng.standard_normal(4))
    assert nbprop.gradcheck(lambda u, w, b: group_norm(u, 2, w, b), (group_input, group_weight, group_bias))
    assert nbprop.gradcheck(lambda u: group_norm(u, 4), (group_input,))


# ---------------------------------------------------------------------------------------- PyTorch

def _run_both(our_function, torch_function, inputs, dtype, grad_seed=7):
    """Outputs and the gradients of every input, nbprop's and PyTorch's, for one random grad_output."""
    import torch

    ours = [leaf(value, dtype) for value in inputs]
    theirs = [to_torch(value) for value in ours]
    result, expected = our_function(*ours), torch_function(*theirs)
    grad_output = np.random.default_rng(grad_seed).standard_normal(result.shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    return result, expected, [value.grad for value in ours], [value.grad for value in theirs]


def _assert_match(result, expected, gradients, expected_gradients, dtype):
    tolerance = TORCH_TOLERANCE[dtype]
    assert result.dtype == dtype
    assert_close(result, expected, **tolerance)
    for gradient, expected_gradient in zip(gradients, expected_gradients):
        assert_close(gradient, expected_gradient, **tolerance)


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 5), (3, 1, 2, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, dtype, training):
    import torch

    rng = np.random.default_rng(1)
    channels = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    weight, bias = rng.standard_normal(channels), rng.standard_normal(channels)
    ours_running = [nbprop.tensor(rng.standard_normal(channels).astype(dtype)),
                    nbprop.tensor((rng.random(channels) + 0.5).astype(dtype))]
    theirs_running = [torch.from_numpy(running.numpy().copy()) for running in ours_running]
    for step in range(3):  # running statistics equal after several steps
        batch = x * (step + 1) - step
        outputs = _run_both(lambda u, w, b: batch_norm(u, *ours_running, w, b, training, 0.2, 1e-4),
                            lambda u, w, b: torch.nn.functional.batch_norm(u, *theirs_running, w, b, training, 0.2,
                                                                           1e-4),
                            (batch, weight, bias), dtype, grad_seed=step)
        _assert_match(*outputs, dtype)
        for ours, theirs in zip(ours_running, theirs_running):
            assert_close(ours, theirs, **TORCH_TOLERANCE[dtype])
    # Without weight and bias, and without running statistics in training.
    outputs = _run_both(lambda u: batch_norm(u, *([None, None] if training else ours_running), training=training),
                        lambda u: torch.nn.functional.batch_norm(u, *([None, None] if training else theirs_running),
                                                                 training=training), (x,), dtype)
    _assert_match(*outputs, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("shape, normalized", [((4, 6), (6,)), ((2, 3, 5), (3, 5)), ((2, 3, 5), (5,)),
                                               ((7,), (7,)), ((2, 2, 1, 3), (1, 3)), ((3, 1), (1,))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_and_rms_norm_match_torch(shape, normalized, dtype):
    import torch

    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * 3 - 1
    weight, bias = rng.standard_normal(normalized), rng.standard_normal(normalized)
    F = torch.nn.functional  # noqa: N806 - PyTorch's usual alias
    outputs = _run_both(lambda u, w, b: layer_norm(u, normalized, w, b, 1e-3),
                        lambda u, w, b: F.layer_norm(u, normalized, w, b, 1e-3), (x, weight, bias), dtype)
    _assert_match(*outputs, dtype)
    _assert_match(*_run_both(lambda u: layer_norm(u, normalized), lambda u: F.layer_norm(u, normalized), (x,), dtype),
                  dtype)
    _assert_match(*_run_both(lambda u, w: rms_norm(u, normalized, w), lambda u, w: F.rms_norm(u, normalized, w),
                             (x, weight), dtype), dtype)
    _assert_match(*_run_both(lambda u: rms_norm(u, list(normalized), eps=0.1),
                             lambda u: F.rms_norm(u, list(normalized), eps=0.1), (x,), dtype), dtype)
    # Only a bias, no weight: its gradient keeps normalized_shape.
    _assert_match(*_run_both(lambda u, b: layer_norm(u, normalized, None, b),
                             lambda u, b: F.layer_norm(u, normalized, None, b), (x, bias), dtype), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("shape, groups", [((2, 6, 5), 3), ((3, 4), 2), ((2, 4, 3, 3), 1), ((2, 4, 3, 3), 4),
                                           ((1, 6, 2, 2, 2), 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_group_norm_matches_torch(shape, groups, dtype):
    import torch

    rng = np.random.default_rng(3)
    x, weight, bias = rng.standard_normal(shape) * 2 + 3, rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    F = torch.nn.functional  # noqa: N806
    _assert_match(*_run_both(lambda u, w, b: group_norm(u, groups, w, b, 1e-4),
                             lambda u, w, b: F.group_norm(u, groups, w, b, 1e-4), (x, weight, bias), dtype), dtype)
    _assert_match(*_run_both(lambda u: group_norm(u, groups), lambda u: F.group_norm(u, groups), (x,), dtype), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_scale_matches_torch(dtype):
    import torch

    rng = np.random.default_rng(4)
    x = rng.choice([-1e4, 1e4], (4, 3, 5)) * rng.random((4, 3, 5))
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    F = torch.nn.functional  # noqa: N806
    for ours, theirs in [
        (lambda u, w, b: batch_norm(u, None, None, w, b, True),
         lambda u, w, b: F.batch_norm(u, None, None, w, b, True)),
        (lambda u, w, b: group_norm(u, 3, w, b), lambda u, w, b: F.group_norm(u, 3, w, b)),
        (lambda u, w, b: layer_norm(u.transpose(1, 2), 3, w, b),
         lambda u, w, b: F.layer_norm(u.transpose(1, 2), (3,), w, b)),
        (lambda u, w, b: rms_norm(u.transpose(1, 2), 3, w) + b,
         lambda u, w, b: F.rms_norm(u.transpose(1, 2), (3,), w) + b),
    ]:
        _assert_match(*_run_both(ours, theirs, (x, weight, bias), dtype), dtype)


# ------------------------------------------------------------------------------- constant and extreme data


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("value", [0.0, 0.1, -3.7, 1e4, -1e4])
def test_constant_data_normalizes_to_exactly_the_bias(dtype, value):
    x = np.full((4, 3, 5), value, dtype)
    bias = np.array([0.25, -1.0, 2.0], dtype)
    checks = [
        (lambda u, w, b: batch_norm(u, None, None, w, b, True), bias.reshape(1, 3, 1)),
        (lambda u, w, b: group_norm(u, 3, w, b), bias.reshape(1, 3, 1)),
        (lambda u, w, b: layer_norm(u.transpose(1, 2), 3, w, b).transpose(1, 2), bias.reshape(1, 3, 1)),
    ]
    for function, expected in checks:
        ours = leaf(x, dtype)
        weight, shift = leaf([1.5, 2.0, -1.0], dtype), leaf(bias, dtype)
        result = function(ours, weight, shift)
        assert np.array_equal(result.detach().numpy(), np.broadcast_to(expected, x.shape))
        result.backward(nbprop.tensor(np.cos(np.arange(x.size)).reshape(x.shape).astype(dtype)))
        for gradient in (ours.grad, weight.grad, shift.grad):
            assert np.isfinite(gradient.numpy()).all()
    zeros = leaf(np.zeros((2, 3), dtype))
    result = rms_norm(zeros, 3)
    assert np.array_equal(result.detach().numpy(), np.zeros((2, 3), dtype))
    result.sum().backward()
    assert np.isfinite(zeros.grad.numpy()).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_offset_does_not_cancel(dtype):
    # 1e4 + unit noise: a one-pass sum of squares would lose the variance to cancellation in float32.
    rng = np.random.default_rng(5)
    x = (1e4 + rng.standard_normal((6, 2, 50))).astype(dtype)
    exact = x.astype(np.float64)
    assert_close(batch_norm(nbprop.tensor(x), None, None, training=True),
                 _batch_norm_reference(exact, np.ones(2), np.zeros(2)).astype(dtype), rtol=1e-5, atol=1e-5)
    assert_close(layer_norm(nbprop.tensor(x), 50), _layer_norm_reference(exact, 1, 1.0, 0.0).astype(dtype),
                 rtol=1e-5, atol=1e-5)
    assert_close(group_norm(nbprop.tensor(x), 1), _group_norm_reference(exact, 1, np.ones(2), np.zeros(2))
                 .astype(dtype), rtol=1e-5, atol=1e-5)


def test_empty_inputs():
    for function, shape in [(lambda u: batch_norm(u, None, None, training=True), (0, 3, 2)),
                            (lambda u: layer_norm(u, (2,)), (0, 2)), (lambda u: layer_norm(u, (0,)), (3, 0)),
                            (lambda u: rms_norm(u, 2), (4, 0, 2)), (lambda u: group_norm(u, 2), (0, 4, 3)),
                            (lambda u: group_norm(u, 2), (2, 4, 0))]:
        x = leaf(np.zeros(shape))
        result = function(x)
        assert result.shape == shape
        result.sum().backward()
        assert x.grad.shape == shape
    weight = leaf(np.ones(3))
    running_mean, running_var = nbprop.tensor(np.ones(3)), nbprop.tensor(np.ones(3))
    batch_norm(leaf(np.zeros((0, 3))), running_mean, running_var, weight, None, True).sum().backward()
    assert weight.grad.tolist() == [0.0, 0.0, 0.0] and running_mean.tolist() == [1.0, 1.0, 1.0]


def test_running_statistics_update_in_place():
    x = np.arange(12.0).reshape(4, 3)
    running_mean, running_var = nbprop.tensor(np.zeros(3)), nbprop.tensor(np.ones(3))
    version = running_mean._version
    batch_norm(nbprop.tensor(x), running_mean, running_var, training=True, momentum=0.5)
    assert running_mean._version == version + 1
    assert_close(running_mean, 0.5 * x.mean(0))
    assert_close(running_var, 0.5 + 0.5 * x.var(0, ddof=1))  # the unbiased variance, as PyTorch
    # Eval mode reads the running statistics and leaves them alone.
    result = batch_norm(nbprop.tensor(x), running_mean, running_var, training=False, eps=0.0)
    assert_close(result, (x - 0.5 * x.mean(0)) / np.sqrt(0.5 + 0.5 * x.var(0, ddof=1)))
    assert running_mean._version == version + 1


def test_errors():
    x = nbprop.tensor(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size "
                                         r"\(1, 3\)"):
        batch_norm(nbprop.tensor(np.ones((1, 3))), None, None, training=True)
    with pytest.raises(RuntimeError, match=r"batch_norm: running_mean and running_var must be defined in evaluation"):
        batch_norm(x, None, None)
    with pytest.raises(RuntimeError, match=r"batch_norm: expected weight of shape \(3,\) for an input of shape "
                                           r"\(2, 3, 4\), got \(4,\)"):
        batch_norm(x, None, None, nbprop.tensor(np.ones(4)), training=True)
    with pytest.raises(RuntimeError, match=r"batch_norm: expected running_mean of dtype float64 like the input, "
                                           r"got float32"):
        batch_norm(x, nbprop.zeros(3), nbprop.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: expects an input with at least 2 dimensions"):
        batch_norm(nbprop.tensor(np.ones(3)), None, None, training=True)
    with pytest.raises(TypeError, match=r"batch_norm: expects a floating point input, got int64"):
        batch_norm(nbprop.tensor(np.ones((2, 3), np.int64)), None, None, training=True)
    with pytest.raises(RuntimeError, match=r"layer_norm: Given normalized_shape=\[3\], expected input with shape "
                                           r"\[\*, 3\], but got input of size \[2, 3, 4\]"):
        layer_norm(x, 3)
    with pytest.raises(RuntimeError, match=r"rms_norm: Given normalized_shape=\[2, 3, 4, 1\]"):
        rms_norm(x, (2, 3, 4, 1))
    with pytest.raises(RuntimeError, match=r"layer_norm: expected bias of shape \(4,\)"):
        layer_norm(x, 4, None, nbprop.tensor(np.ones(3)))
    with pytest.raises(RuntimeError, match=r"group_norm: Expected number of channels in input to be divisible by "
                                           r"num_groups, but got input of shape \[2, 3, 4\] and num_groups=2"):
        group_norm(x, 2)
    with pytest.raises(ValueError, match=r"group_norm: num_groups must be a positive int, got 0"):
        group_norm(x, 0)
    with pytest.raises(TypeError, match=r"group_norm: expects a Tensor, got list"):
        group_norm([[1.0]], 1)


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deterministic_including_parallel_variants(dtype):
    # Each input has > 65,536 elements, so every kernel runs its prange variant.
    rng = np.random.default_rng(6)
    batch_input = rng.standard_normal((64, 8, 12, 12)) * 3 + 1
    row_input = rng.standard_normal((300, 300)) * 3 + 1
    cases = [
        (lambda u, w, b: batch_norm(u, None, None, w, b, True), batch_input, 8),
        (lambda u, w, b: batch_norm(u, nbprop.zeros(8, dtype=dtype), nbprop.ones(8, dtype=dtype), w, b),
         batch_input, 8),
        (lambda u, w, b: group_norm(u, 4, w, b), batch_input, 8),
        (lambda u, w, b: layer_norm(u, 300, w, b), row_input, 300),
        (lambda u, w, b: rms_norm(u, 300, w) * b, row_input, 300),
    ]
    grad_outputs = {shape: nbprop.tensor(np.sin(np.arange(math.prod(shape))).reshape(shape).astype(dtype))
                    for shape in (batch_input.shape, row_input.shape)}

    def run(function, x, channels):
        inputs = [leaf(x, dtype), leaf(np.linspace(0.5, 1.5, channels), dtype),
                  leaf(np.linspace(-1, 1, channels), dtype)]
        result = function(*inputs)
        result.backward(grad_outputs[x.shape])
        return [result.detach().numpy().copy()] + [value.grad.numpy().copy() for value in inputs]

    for function, x, channels in cases:
        for first, second in zip(run(function, x, channels), run(function, x, channels)):
            assert np.array_equal(first, second)


def test_serial_and_parallel_kernels_are_bit_identical():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 4, 40)) * 5 + 2
    rows = x.reshape(64, 40)
    weight, bias = rng.standard_normal(40), rng.standard_normal(40)
    for kernel, arguments in [
        (kernels.layer_norm_forward, lambda: (rows, weight, bias, 1e-5, np.zeros((64, 2)), np.empty_like(rows))),
        (kernels.rms_norm_forward, lambda: (rows, weight, 1e-5, np.zeros(64), np.empty_like(rows))),
        (kernels.batch_norm_statistics, lambda: (x, 1e-5, np.empty(4), np.empty(4), np.empty(4))),
        (kernels.group_norm_forward, lambda: (x, weight[:8].reshape(2, 4), bias[:8].reshape(2, 4), 1e-5,
                                              np.zeros((16, 2)), np.empty_like(x))),
    ]:
        serial, parallel = arguments(), arguments()
        kernel.serial(*serial)
        kernel.parallel(*parallel)
        for one, other in zip(serial, parallel):
            assert np.array_equal(one, other)
