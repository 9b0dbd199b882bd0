"""Elementwise kernels called directly: NumPy references, serial equal to parallel, strides, determinism."""

import math

import numpy as np
import pytest
from helpers import assert_close, fresh_and_cached_results

import nbprop
from nbprop.backend import DEVICES
from nbprop.kernels import elementwise, elementwise_backward, scalar
from nbprop.kernels._jit import PARALLEL_THRESHOLD, ParallelKernel

DEVICE = DEVICES["cpu"]


def _uniform(shape, low=-3.0, high=3.0, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _sign(x):
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0))


# kernel name: (number of array inputs, (low, high) of each, extra scalar arguments, NumPy reference)
FORWARD = {
    "neg": (1, [(-3, 3)], (), np.negative),
    "absolute": (1, [(-3, 3)], (), np.abs),
    "exp": (1, [(-3, 3)], (), np.exp),
    "log": (1, [(0.1, 3)], (), np.log),
    "sqrt": (1, [(0.1, 3)], (), np.sqrt),
    "rsqrt": (1, [(0.1, 3)], (), lambda x: 1 / np.sqrt(x)),
    "sin": (1, [(-3, 3)], (), np.sin),
    "cos": (1, [(-3, 3)], (), np.cos),
    "tanh": (1, [(-3, 3)], (), np.tanh),
    "sigmoid": (1, [(-3, 3)], (), _sigmoid),
    "relu": (1, [(-3, 3)], (), lambda x: np.maximum(x, 0)),
    "clamp": (1, [(-3, 3)], (-1.0, 1.5), lambda x, low, high: np.clip(x, low, high)),
    "add": (2, [(-3, 3), (-3, 3)], (), np.add),
    "sub": (2, [(-3, 3), (-3, 3)], (), np.subtract),
    "mul": (2, [(-3, 3), (-3, 3)], (), np.multiply),
    "div": (2, [(-3, 3), (0.5, 3)], (), np.divide),
    "power": (2, [(0.1, 3), (-2, 2)], (), np.power),
    "maximum": (2, [(-3, 3), (-3, 3)], (), np.maximum),
    "minimum": (2, [(-3, 3), (-3, 3)], (), np.minimum),
}

BACKWARD = {
    # name: (inputs after grad_output, (low, high) of each, extra scalars, reference of (g, *inputs, *extra))
    "absolute_backward": (1, [(-3, 3)], (), lambda g, x: g * _sign(x)),
    "sqrt_backward": (1, [(0.1, 3)], (), lambda g, y: g / (2 * y)),
    "rsqrt_backward": (1, [(0.1, 3)], (), lambda g, y: -0.5 * g * y ** 3),
    "sin_backward": (1, [(-3, 3)], (), lambda g, x: g * np.cos(x)),
    "cos_backward": (1, [(-3, 3)], (), lambda g, x: -g * np.sin(x)),
    "tanh_backward": (1, [(-1, 1)], (), lambda g, y: g * (1 - y * y)),
    "sigmoid_backward": (1, [(0, 1)], (), lambda g, y: g * y * (1 - y)),
    "relu_backward": (1, [(-3, 3)], (), lambda g, y: np.where(y > 0, g, 0.0)),
    "clamp_backward": (1, [(-3, 3)], (-1.0, 1.5), lambda g, x, low, high: np.where((x >= low) & (x <= high), g, 0.0)),
    "div_backward_divisor": (2, [(-3, 3), (0.5, 3)], (), lambda g, a, b: -g * (a / b) / b),
    "power_backward_base": (2, [(0.1, 3), (-2, 2)], (), lambda g, a, b: g * b * a ** (b - 1)),
    "power_backward_exponent": (
        3, [(0.1, 3), (-2, 2), (0, 1)], (), lambda g, a, b, result: g * result * np.log(a)),
    "maximum_backward": (2, [(-3, 3), (-3, 3)], (), lambda g, a, b: g * np.where(a > b, 1.0, np.where(a == b, 0.5, 0))),
    "minimum_backward": (2, [(-3, 3), (-3, 3)], (), lambda g, a, b: g * np.where(a < b, 1.0, np.where(a == b, 0.5, 0))),
}

ALL_KERNELS = {**FORWARD, **{name: (count + 1, [(-2, 2), *ranges], extra, reference)
                             for name, (count, ranges, extra, reference) in BACKWARD.items()}}


def _inputs(name, shape, dtype, seed=0):
    _, ranges, extra, _ = ALL_KERNELS[name]
    arrays = [_uniform(shape, low, high, dtype, seed + index) for index, (low, high) in enumerate(ranges)]
    if name in ("maximum", "minimum", "maximum_backward", "minimum_backward"):
        arrays[-1][..., ::3] = arrays[-2][..., ::3]  # ties
    return arrays, extra


@pytest.mark.parametrize("name", ALL_KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_numpy(name, dtype):
    arrays, extra = _inputs(name, (5, 7), dtype)
    reference = ALL_KERNELS[name][3]
    out = np.empty((5, 7), dtype)
    DEVICE.kernel(name)(*arrays, *extra, out)
    expected = reference(*[array.astype(np.float64) for array in arrays], *extra)
    assert_close(out, expected.astype(dtype), dtype=dtype)


@pytest.mark.parametrize("name", ALL_KERNELS)
def test_kernel_serial_and_parallel_variants_are_bit_identical(name):
    kernel = DEVICE.kernel(name)
    assert isinstance(kernel, ParallelKernel)
    arrays, extra = _inputs(name, (37, 41), np.float64, seed=3)
    serial, parallel = np.empty((37, 41)), np.empty((37, 41))
    kernel.serial(*arrays, *extra, serial)
    kernel.parallel(*arrays, *extra, parallel)
    np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("name", ["add", "mul", "power", "maximum", "sigmoid", "clamp", "maximum_backward",
                                  "power_backward_exponent", "clamp_backward"])
def test_kernels_accept_strided_and_broadcast_inputs(name):
    arrays, extra = _inputs(name, (6, 10), np.float64)
    # Column-major, step-2 slices and stride-0 broadcast rows as inputs.
    layouts = [
        [np.asfortranarray(array) for array in arrays],
        [np.repeat(array, 2, axis=1)[:, ::2] for array in arrays],
        [np.broadcast_to(array[:1], array.shape) for array in arrays],
    ]
    for views in layouts:
        out = np.empty((6, 10))
        DEVICE.kernel(name)(*views, *extra, out)
        assert_close(out, ALL_KERNELS[name][3](*views, *extra))


@pytest.mark.parametrize("name", ["add", "div", "exp", "tanh", "sigmoid_backward", "where"])
@pytest.mark.parametrize("layout", ["contiguous", "broadcast", "transposed"])
def test_device_map_above_the_parallel_threshold_equals_serial(name, layout):
    shape = (3, 173, 131)  # 68,0xx elements: above the threshold, not a multiple of the row length
    assert math.prod(shape) > PARALLEL_THRESHOLD
    rng = np.random.default_rng(5)
    if name == "where":
        arrays, extra = [rng.random(shape) < 0.5, rng.normal(size=shape), rng.normal(size=shape)], ()
    else:
        arrays, extra = _inputs(name, shape, np.float64, seed=5) if name in ALL_KERNELS else ([], ())
    if layout == "broadcast":
        arrays[-1] = np.broadcast_to(arrays[-1][:, :1], shape)
    elif layout == "transposed":
        arrays[0] = np.ascontiguousarray(arrays[0].transpose(2, 1, 0)).transpose(2, 1, 0)
    mapped = DEVICE.map(name, *arrays, *extra, np.empty(shape))
    again = DEVICE.map(name, *arrays, *extra, np.empty(shape))
    serial = np.empty(shape)
    DEVICE.kernel(name).serial(*[array.reshape(-1, shape[-1]) for array in arrays], *extra,
                               serial.reshape(-1, shape[-1]))
    np.testing.assert_array_equal(mapped, serial)
    np.testing.assert_array_equal(mapped, again)


def test_where_and_comparison_kernels():
    a = np.array([[1.0, 2.0, np.nan, -0.0]])
    b = np.array([[1.0, 3.0, 1.0, 0.0]])
    for name, reference in [("equal", np.equal), ("not_equal", np.not_equal), ("less", np.less),
                            ("less_equal", np.less_equal), ("greater", np.greater),
                            ("greater_equal", np.greater_equal)]:
        out = np.empty(a.shape, np.bool_)
        DEVICE.kernel(name)(a, b, out)
        np.testing.assert_array_equal(out, reference(a, b))
    condition = np.array([[True, False, True, False]])
    out = np.empty(a.shape)
    DEVICE.kernel("where")(condition, a, b, out)
    np.testing.assert_array_equal(out, np.where(condition, a, b))
    gradient = np.array([[1.0, 2.0, 3.0, 4.0]])
    for take in (True, False):
        DEVICE.kernel("where_backward")(gradient, condition, take, out)
        np.testing.assert_array_equal(out, np.where(condition == take, gradient, 0.0))


def test_int64_and_bool_kernels():
    a = np.array([[3, -2, 7]], np.int64)
    b = np.array([[2, 5, 7]], np.int64)
    out = np.empty(a.shape, np.int64)
    for name, reference in [("add", np.add), ("mul", np.multiply), ("maximum", np.maximum), ("neg", None)]:
        arguments = (a, out) if reference is None else (a, b, out)
        DEVICE.kernel(name)(*arguments)
        np.testing.assert_array_equal(out, -a if reference is None else reference(a, b))


def test_special_values():
    x = np.array([[0.0, -0.0, np.nan, np.inf, -np.inf, 1000.0, -1000.0]])
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        for name, reference in [("log", np.log), ("sqrt", np.sqrt), ("exp", np.exp), ("tanh", np.tanh),
                                ("absolute", np.abs), ("relu", lambda v: np.where(v > 0, v, np.where(v <= 0, 0, v))),
                                ("rsqrt", lambda v: 1 / np.sqrt(v))]:
            DEVICE.kernel(name)(x, out)
            np.testing.assert_array_equal(out, reference(x), err_msg=name)
    DEVICE.kernel("sigmoid")(x, out)
    np.testing.assert_array_equal(out, [[0.5, 0.5, np.nan, 1.0, 0.0, 1.0, 0.0]])


# --------------------------------------------------------------------------------------- scalar helpers


def test_scalar_helpers():
    assert scalar.sigmoid(1000.0) == 1.0 and scalar.sigmoid(-1000.0) == 0.0
    assert scalar.sigmoid(-745.0) > 0.0  # the stable branch keeps tiny values instead of 1 / (1 + inf)
    assert [scalar.sign(value) for value in (2.0, -2.0, 0.0, -0.0)] == [1.0, -1.0, 0.0, 0.0]
    assert scalar.sign(math.nan) == 0.0  # PyTorch: sign(NaN) = 0
    assert scalar.power(0.0, 0.0) == 1.0
    assert math.isnan(scalar.power(-8.0, 1.0 / 3.0))
    assert scalar.power(-2.0, 3.0) == -8.0
    assert scalar.power_base_derivative(0.0, 0.0) == 0.0
    assert scalar.power_base_derivative(0.0, 1.0) == 1.0
    assert scalar.power_base_derivative(0.0, 0.5) == math.inf
    assert scalar.power_exponent_derivative(0.0, 2.0, 0.0) == 0.0
    assert scalar.power_exponent_derivative(0.0, 0.0, 1.0) == 0.0
    assert scalar.power_exponent_derivative(0.0, -1.0, math.inf) == -math.inf
    assert math.isnan(scalar.maximum(math.nan, 1.0)) and math.isnan(scalar.minimum(1.0, math.nan))
    assert scalar.maximum(-1.0, 2.0) == 2.0 and scalar.minimum(-1.0, 2.0) == -1.0
    assert scalar.maximum_derivative(1.0, 1.0) == 0.5 and scalar.minimum_derivative(1.0, 1.0) == 0.5
    assert scalar.maximum_derivative(2.0, 1.0) == 1.0 and scalar.maximum_derivative(1.0, 2.0) == 0.0
    assert scalar.minimum_derivative(2.0, 1.0) == 0.0 and scalar.minimum_derivative(1.0, 2.0) == 1.0
    assert scalar.maximum_derivative(math.nan, 1.0) == 1.0 and scalar.maximum_derivative(1.0, math.nan) == 1.0


def test_kernel_modules_define_unique_names():
    forward = {name for name in vars(elementwise) if isinstance(getattr(elementwise, name), ParallelKernel)}
    backward = {name for name in vars(elementwise_backward)
                if isinstance(getattr(elementwise_backward, name), ParallelKernel)}
    assert not forward & backward
    assert set(FORWARD) <= forward and set(BACKWARD) <= backward


def test_elementwise_ops_deterministic_above_threshold():
    """Whole ops (forward and backward) over 70,000 elements: twice bit-identical, and equal to the serial path."""
    x = nbprop.tensor(_uniform((70, 1000), seed=11), requires_grad=True)
    w = nbprop.tensor(_uniform((1000,), 0.5, 2, seed=12), requires_grad=True)

    def run():
        x.grad = w.grad = None
        y = ((x * w).sigmoid() + x.tanh() / w - nbprop.maximum(x, w.log()) ** 2).exp()
        y.backward(nbprop.ones(70, 1000, dtype=nbprop.float64))
        return y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    a, b = x.detach().numpy(), w.detach().numpy()
    expected = np.exp(_sigmoid(a * b) + np.tanh(a) / b - np.maximum(a, np.log(b)) ** 2)
    assert_close(first[0], expected)


_CACHE_PROBE = '''
import sys

import numpy as np
from numba import prange

from nbprop.kernels._jit import parallel_cpu_kernel


@parallel_cpu_kernel
def probe(grad_output, result, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            value = result[row, column]
            out[row, column] = grad_output[row, column] * value * (1.0 - value)


rng = np.random.default_rng(3)
grad_output, result = rng.uniform(-2, 2, (37, 41)), rng.uniform(0, 1, (37, 41))
serial, parallel = np.empty((37, 41)), np.empty((37, 41))
probe.serial(grad_output, result, serial)
probe.parallel(grad_output, result, parallel)
np.save(sys.argv[1], np.stack([serial, parallel]))
'''


def test_parallel_kernel_from_cache_computes_the_same_bits_as_freshly_compiled(tmp_path):
    """Results must not depend on whether a kernel was compiled in this process or loaded from the cache.

    With the fast-math flags {nsz, reassoc} together, this product chain (sigmoid_backward's) rounded differently
    in the parallel variant once it came from the cache.
    """
    fresh, cached = fresh_and_cached_results(tmp_path, _CACHE_PROBE)
    np.testing.assert_array_equal(fresh, cached)
    np.testing.assert_array_equal(cached[0], cached[1])  # serial equals parallel
