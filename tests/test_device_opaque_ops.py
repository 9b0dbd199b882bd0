"""Extrema, matmul, softmax, activation, padding and norm ops on the opaque test device: forward and backward
reach their data only through the device, and give the CPU's results bit for bit (the same kernels)."""

import numpy as np
import opaque_device
import pytest
from opaque_device import assert_same_on_opaque

import nbprop
from nbprop.ops import activation, batch_norm, extrema, matmul, norm, padding, softmax


@pytest.fixture(scope="module", autouse=True)
def opaque():
    return opaque_device.install()


def _normal(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _ties(shape, seed=0):
    """Small integers as floats: many tied extrema, whose gradients are shared."""
    return np.random.default_rng(seed).integers(-2, 3, shape).astype(np.float64)


def test_the_opaque_device_refuses_numpy():
    x = nbprop.tensor(_normal((2, 3)), device="opaque")
    with pytest.raises(opaque_device.OpaqueError):
        np.asarray(x._data)
    with pytest.raises(opaque_device.OpaqueError):
        x._data.reshape(3, 2)


# ------------------------------------------------------------------------------------------------- extrema


@pytest.mark.parametrize("op", [extrema.max, extrema.min])
@pytest.mark.parametrize("data", [_normal((3, 4)), _ties((3, 4)), np.array([1.0, np.nan, 3.0, np.nan]),
                                  np.array(2.5)], ids=["normal", "ties", "nan", "0-d"])
def test_max_min_of_all_elements(op, data):
    assert_same_on_opaque(op, data)


@pytest.mark.parametrize("op", [extrema.max, extrema.min])
@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False), (2, True)])
def test_max_min_along_a_dim(op, dim, keepdim):
    assert_same_on_opaque(lambda x: tuple(op(x, dim, keepdim)), _ties((3, 4, 5)))


def test_max_along_a_dim_of_a_transposed_input():
    assert_same_on_opaque(lambda x: tuple(extrema.max(x.mT, 1)), _normal((3, 4, 5)))


@pytest.mark.parametrize("op", [extrema.amax, extrema.amin])
@pytest.mark.parametrize("dims, keepdim", [((), False), (1, True), ((0, 2), False), ((0, 2), True),
                                           ((-1, 0, 1), False)])
def test_amax_amin(op, dims, keepdim):
    assert_same_on_opaque(lambda x: op(x, dims, keepdim), _ties((3, 4, 5)))
    assert_same_on_opaque(lambda x: op(x.permute(2, 0, 1), dims, keepdim), _normal((3, 4, 5)))


def test_amax_with_nan_spreads_nan_gradients():
    data = _normal((3, 4))
    data[1, 2] = np.nan
    assert_same_on_opaque(lambda x: extrema.amax(x, 1), data)


@pytest.mark.parametrize("op", [extrema.argmax, extrema.argmin])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (None, True), (0, False), (1, True), (-1, False)])
def test_argmax_argmin(op, dim, keepdim):
    assert_same_on_opaque(lambda x: op(x, dim, keepdim), _ties((3, 4, 5)))
    assert_same_on_opaque(lambda x: op(x.mT, dim, keepdim), _normal((3, 4, 5)))


def test_argmax_of_integers():
    assert_same_on_opaque(lambda x: extrema.argmax(x, 1), np.array([[1, 5, 5], [7, 0, 2]]))


# -------------------------------------------------------------------------------------------------- matmul

MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)),
    ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((5, 2, 3), (5, 3, 4)), ((4, 2, 3), (1, 3, 4)), ((1, 2, 3), (4, 3, 2)),
    ((2, 1, 2, 3), (4, 3, 5)), ((3, 1, 2, 3), (1, 2, 3, 2)), ((2, 0), (0, 4)), ((0, 2, 3), (3, 4)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul(shapes, dtype):
    a, b = (_normal(shape, dtype, seed) for seed, shape in enumerate(shapes))
    assert_same_on_opaque(matmul.matmul, a, b)


@pytest.mark.parametrize("shapes", [((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((4, 2, 3), (1, 3, 4))], ids=str)
def test_matmul_with_a_stride_0_gradient(shapes):
    a, b = (_normal(shape, seed=seed) for seed, shape in enumerate(shapes))
    assert_same_on_opaque(matmul.matmul, a, b, sum_backward=True)


@pytest.mark.parametrize("transpose", ["left", "right", "both"])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)], ids=str)
def test_matmul_of_transposed_operands(transpose, batch):
    # Stored (k, n) and (m, k): read through .mT without a copy, and through a strided split with one.
    a, b = _normal(batch + (4, 2)), _normal(batch + (5, 4), seed=1)

    def product(x, y):
        left = x.mT if transpose in ("left", "both") else x.mT.contiguous()
        right = y.mT if transpose in ("right", "both") else y.mT.contiguous()
        return matmul.matmul(left, right)

    assert_same_on_opaque(product, a, b)
    assert_same_on_opaque(lambda x, y: matmul.matmul(x.split(4, -1)[0], y.mT), _normal(batch + (2, 8)), b)


def test_matmul_of_integers():
    rng = np.random.default_rng(0)
    for shapes in [((2, 3), (3, 4)), ((4, 2, 3), (1, 3, 4)), ((3,), (2, 3, 4))]:
        a, b = (rng.integers(-5, 5, shape) for shape in shapes)
        assert_same_on_opaque(matmul.matmul, a, b)
        assert_same_on_opaque(lambda x, y: matmul.matmul(x, y.mT.contiguous().mT), a, b)


def test_mm_and_bmm():
    assert_same_on_opaque(matmul.mm, _normal((2, 3)), _normal((3, 4), seed=1))
    assert_same_on_opaque(matmul.bmm, _normal((5, 2, 3)), _normal((5, 3, 4), seed=1))
    assert_same_on_opaque(lambda x, y: matmul.bmm(x, y.mT), _normal((5, 2, 3)), _normal((5, 4, 3), seed=1))


# ------------------------------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("op", [softmax.softmax, softmax.log_softmax])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_and_log_softmax(op, dim, dtype):
    data = _normal((3, 4, 5), dtype) * 4
    data[0, 0, :] = -np.inf
    assert_same_on_opaque(lambda x: op(x, dim), data)
    assert_same_on_opaque(lambda x: op(x.permute(2, 0, 1), dim), _normal((3, 4, 5), dtype))
    assert_same_on_opaque(lambda x: op(x, dim), data, sum_backward=True)


def test_softmax_of_a_0d_tensor():
    assert_same_on_opaque(lambda x: softmax.softmax(x, 0), np.array(1.5))
    assert_same_on_opaque(lambda x: softmax.log_softmax(x, -1), np.array(1.5))


@pytest.mark.parametrize("dim, keepdim", [(0, False), (-1, True), ((0, 2), False), ((2, 0), True), ((), False),
                                          ((1,), True)])
def test_logsumexp(dim, keepdim):
    data = _normal((3, 4, 5)) * 10
    data[1, :, :] = -np.inf
    assert_same_on_opaque(lambda x: softmax.logsumexp(x, dim, keepdim), data)
    assert_same_on_opaque(lambda x: softmax.logsumexp(x.mT, dim, keepdim), _normal((3, 4, 5)), sum_backward=True)


def test_logsumexp_of_integers_and_of_a_0d_tensor():
    assert_same_on_opaque(lambda x: softmax.logsumexp(x, 1), np.array([[1, 2, 3], [4, 5, 6]]))
    assert_same_on_opaque(lambda x: softmax.logsumexp(x, 0), np.array(0.25))


# ---------------------------------------------------------------------------------------------- activation

ACTIVATIONS = {
    "relu": activation.relu,
    "leaky_relu": lambda x: activation.leaky_relu(x, 0.2),
    "elu": lambda x: activation.elu(x, 1.5),
    "selu": activation.selu,
    "gelu": activation.gelu,
    "gelu_tanh": lambda x: activation.gelu(x, approximate="tanh"),
    "silu": activation.silu,
    "softplus": lambda x: activation.softplus(x, 2.0, 3.0),
    "hardtanh": lambda x: activation.hardtanh(x, -1.0, 0.5),
}
IN_PLACE = {
    "relu": lambda x: activation.relu(x, inplace=True),
    "leaky_relu": lambda x: activation.leaky_relu(x, 0.2, inplace=True),
    "elu": lambda x: activation.elu(x, 1.5, inplace=True),
    "selu": lambda x: activation.selu(x, inplace=True),
    "silu": lambda x: activation.silu(x, inplace=True),
    "hardtanh": lambda x: activation.hardtanh(x, -1.0, 0.5, inplace=True),
}


def _activation_input(dtype):
    data = _normal((4, 6), dtype) * 3
    data[0, :4] = [0.0, -1.0, 0.5, 30.0]  # kinks, bounds and softplus's threshold
    return data


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations(name, dtype):
    assert_same_on_opaque(ACTIVATIONS[name], _activation_input(dtype))
    assert_same_on_opaque(lambda x: ACTIVATIONS[name](x.mT), _activation_input(dtype))


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_activations(name):
    def function(x):
        hidden = x * 1.0
        result = IN_PLACE[name](hidden)
        assert result is hidden
        return result

    assert_same_on_opaque(function, _activation_input(np.float64))


# ------------------------------------------------------------------------------------------------- padding

PADDINGS = [
    ("constant", (4, 5), (1, 2), 0.0), ("constant", (2, 4, 5), (1, -1, 0, 2), 1.5),
    ("constant", (2, 3, 4), (2, 1, 1, 0, 0, 1), None), ("constant", (3, 4), (-1, -2, 0, 0), None),
    ("reflect", (2, 5), (2, 3), None), ("reflect", (2, 3, 4, 5), (1, 2, 3, 0), None),
    ("reflect", (1, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2), None), ("reflect", (2, 6), (-1, 2), None),
    ("replicate", (2, 5), (3, 4), None), ("replicate", (3, 4, 5), (2, 0, 1, 3), None),
    ("replicate", (2, 3, 3, 4), (1, 2, 1, 1, 2, 0), None), ("replicate", (2, 5), (-2, 6), None),
    ("circular", (2, 5), (2, 3), None), ("circular", (2, 2, 4, 5), (1, 2, 3, 0), None),
    ("circular", (2, 3, 3, 4), (1, 2, 1, 1, 2, 0), None), ("circular", (2, 6), (-2, 3), None),
]


@pytest.mark.parametrize("mode, shape, pad, value", PADDINGS, ids=str)
def test_pad(mode, shape, pad, value):
    assert_same_on_opaque(lambda x: padding.pad(x, pad, mode, value), _normal(shape))
    assert_same_on_opaque(lambda x: padding.pad(x.mT, pad, mode, value), _normal(shape[:-2] + shape[:-3:-1]))


# ---------------------------------------------------------------------------------------------------- norm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 2, 4)], ids=str)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_training_updates_the_same_running_statistics(shape, affine, dtype):
    channels = shape[1]
    running = {}

    def function(x, *parameters):
        device = x.device
        mean = nbprop.tensor(np.linspace(-1, 1, channels).astype(dtype), device=device)
        variance = nbprop.tensor(np.linspace(0.5, 2, channels).astype(dtype), device=device)
        running[device] = (mean, variance)
        weight, bias = parameters if affine else (None, None)
        return batch_norm.batch_norm(x, mean, variance, weight, bias, training=True, momentum=0.3, eps=1e-3)

    arrays = [_normal(shape, dtype) * 2 + 1]
    if affine:
        arrays += [_normal((channels,), dtype, 1), _normal((channels,), dtype, 2)]
    assert_same_on_opaque(function, *arrays)
    for expected, actual in zip(running["cpu"], running["opaque"]):
        np.testing.assert_array_equal(actual.cpu().numpy(), expected.cpu().numpy())


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 2, 4)], ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_evaluation(shape, affine):
    channels = shape[1]

    def function(x, *parameters):
        mean = nbprop.tensor(np.linspace(-1, 1, channels), device=x.device)
        variance = nbprop.tensor(np.linspace(0.5, 2, channels), device=x.device)
        weight, bias = parameters if affine else (None, None)
        return batch_norm.batch_norm(x, mean, variance, weight, bias, training=False)

    arrays = [_normal(shape)] + ([_normal((channels,), seed=1), _normal((channels,), seed=2)] if affine else [])
    assert_same_on_opaque(function, *arrays)
    assert_same_on_opaque(lambda x, *parameters: function(x.mT, *parameters), _normal(shape[:-2] + shape[:-3:-1]),
                          *arrays[1:])


@pytest.mark.parametrize("shape, normalized", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((0, 3), (3,))], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm(shape, normalized, dtype):
    weight, bias = _normal(normalized, dtype, 1), _normal(normalized, dtype, 2)
    data = _normal(shape, dtype)
    assert_same_on_opaque(lambda x, w, b: norm.layer_norm(x, normalized, w, b, eps=1e-4), data, weight, bias)
    assert_same_on_opaque(lambda x: norm.layer_norm(x, normalized), data)
    assert_same_on_opaque(lambda x, w, b: norm.layer_norm(x, normalized, w, b), data, weight, bias,
                          sum_backward=True)


@pytest.mark.parametrize("shape, normalized", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5))], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rms_norm(shape, normalized, dtype):
    data, weight = _normal(shape, dtype), _normal(normalized, dtype, 1)
    assert_same_on_opaque(lambda x, w: norm.rms_norm(x, normalized, w), data, weight)
    assert_same_on_opaque(lambda x: norm.rms_norm(x, normalized, eps=1e-3), data)
    if len(shape) > 2:
        assert_same_on_opaque(lambda x, w: norm.rms_norm(x.permute(1, 0, 2, 3), normalized, w),
                              _normal((3, 2, 4, 5), dtype), weight)


@pytest.mark.parametrize("shape, groups", [((2, 6), 3), ((2, 6, 5), 2), ((3, 4, 2, 3), 4), ((2, 4, 3), 1)],
                         ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(shape, groups, affine):
    channels = shape[1]
    arrays = [_normal(shape)] + ([_normal((channels,), seed=1), _normal((channels,), seed=2)] if affine else [])
    assert_same_on_opaque(lambda x, *parameters: norm.group_norm(x, groups, *parameters, eps=1e-4), *arrays)
