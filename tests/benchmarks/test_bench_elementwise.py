"""Elementwise and reduction throughput, float32, at 1e3, 1e5 and 1e7 elements: nbprop, PyTorch, NumPy.

Run: .venv/bin/python -m tests.benchmarks.run -k elementwise (or pytest with --benchmark-enable).
Forward only: add, mul, exp, the chain relu(x * y + z) (which a fusing engine does in one pass), and
sum/mean/amax over the rows (dim 0) and the columns (dim 1) of a 2048 x 2048 matrix; forward and backward:
the activations tanh, sigmoid and GELU over 1e5 elements (nbprop and PyTorch: NumPy has no autograd).
Each entry declares the bytes a single pass must move, so the report gives GB/s against the machine's copy
ceiling; NumPy writes into a preallocated output where it can, the floor a framework that allocates is
measured against.
"""

import math

import numpy as np
import pytest

import nbprop

SIZES = {"1e3": 10**3, "1e5": 10**5, "1e7": 10**7}
FLOAT_BYTES = 4
REDUCTION_SHAPE = (2048, 2048)

# name: (inputs, the bytes moved per element by one fused pass, the floating-point operations per element)
OPERATIONS = {"add": (2, 3, 1), "mul": (2, 3, 1), "exp": (1, 2, None), "chain relu(x * y + z)": (3, 4, 3)}


def _arrays(count, size):
    generator = np.random.default_rng(0)
    return [generator.standard_normal(size, dtype=np.float32) for _ in range(count)]


def _declare(benchmark, name, size_id):
    inputs, bytes_per_element, flops_per_element = OPERATIONS[name]
    size = SIZES[size_id]
    benchmark.group = f"{name}, {size_id} elements float32"
    benchmark.extra_info["bytes"] = bytes_per_element * FLOAT_BYTES * size
    if flops_per_element is not None:
        benchmark.extra_info["flops"] = flops_per_element * size
    return _arrays(inputs, size)


def _framework_operation(name, module):
    """The operation written once for nbprop and torch, which share the names."""
    return {
        "add": lambda x, y: x + y,
        "mul": lambda x, y: x * y,
        "exp": lambda x: x.exp(),
        "chain relu(x * y + z)": lambda x, y, z: module.relu(x * y + z),
    }[name]


def _numpy_operation(name, size):
    output = np.empty(size, dtype=np.float32)
    return {
        "add": lambda x, y: np.add(x, y, out=output),
        "mul": lambda x, y: np.multiply(x, y, out=output),
        "exp": lambda x: np.exp(x, out=output),
        "chain relu(x * y + z)": lambda x, y, z: np.maximum(
            np.add(np.multiply(x, y, out=output), z, out=output), 0, out=output
        ),
    }[name]


def _reference(name, arrays):
    return _numpy_operation(name, arrays[0].size)(*arrays).copy()


@pytest.mark.parametrize("size_id", SIZES)
@pytest.mark.parametrize("name", OPERATIONS)
def test_elementwise_nbprop(benchmark, name, size_id):
    arrays = _declare(benchmark, name, size_id)
    tensors = [nbprop.from_numpy(array) for array in arrays]
    operation = _framework_operation(name, nbprop)
    operation(*tensors)  # compile (or load from the cache) before timing
    result = benchmark(operation, *tensors)
    np.testing.assert_allclose(result.numpy(), _reference(name, arrays), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("size_id", SIZES)
@pytest.mark.parametrize("name", OPERATIONS)
def test_elementwise_torch(benchmark, torch, name, size_id):
    arrays = _declare(benchmark, name, size_id)
    tensors = [torch.from_numpy(array) for array in arrays]
    result = benchmark(_framework_operation(name, torch), *tensors)
    np.testing.assert_allclose(result.numpy(), _reference(name, arrays), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size_id", SIZES)
@pytest.mark.parametrize("name", OPERATIONS)
def test_elementwise_numpy(benchmark, name, size_id):
    arrays = _declare(benchmark, name, size_id)
    result = benchmark(_numpy_operation(name, arrays[0].size), *arrays)
    assert result.shape == arrays[0].shape and np.isfinite(result).all()


REDUCTIONS = ("sum", "mean", "amax")
DIMS = {"rows": 0, "columns": 1}


def _declare_reduction(benchmark, reduction, over):
    rows, columns = REDUCTION_SHAPE
    benchmark.group = f"{reduction} over the {over} of {rows}x{columns} float32"
    benchmark.extra_info["bytes"] = rows * columns * FLOAT_BYTES
    if reduction != "amax":
        benchmark.extra_info["flops"] = rows * columns
    return np.random.default_rng(1).standard_normal(REDUCTION_SHAPE, dtype=np.float32)


def _numpy_reduction(array, reduction, dim):
    return {"sum": np.sum, "mean": np.mean, "amax": np.max}[reduction](array, axis=dim)


@pytest.mark.parametrize("over", DIMS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reduction_nbprop(benchmark, reduction, over):
    array = _declare_reduction(benchmark, reduction, over)
    tensor, dim = nbprop.from_numpy(array), DIMS[over]
    operation = getattr(tensor, reduction)
    operation(dim)  # compile (or load from the cache) before timing
    result = benchmark(operation, dim)
    np.testing.assert_allclose(result.numpy(), _numpy_reduction(array, reduction, dim), rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@pytest.mark.parametrize("over", DIMS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reduction_torch(benchmark, torch, reduction, over):
    array = _declare_reduction(benchmark, reduction, over)
    dim = DIMS[over]
    result = benchmark(getattr(torch.from_numpy(array), reduction), dim)
    np.testing.assert_allclose(result.numpy(), _numpy_reduction(array, reduction, dim), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("over", DIMS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reduction_numpy(benchmark, reduction, over):
    array = _declare_reduction(benchmark, reduction, over)
    result = benchmark(_numpy_reduction, array, reduction, DIMS[over])
    assert result.shape == (REDUCTION_SHAPE[1 - DIMS[over]],)


# The activations of training, forward and backward over 1e5 float32 elements: y = f(x), then x's gradient for
# a given upstream gradient (a fresh leaf each call, so gradients do not accumulate across calls). A pass reads
# x and writes y, then reads the upstream gradient and what the backward saved (x or y) and writes x.grad.
ACTIVATIONS = ("tanh", "sigmoid", "gelu")
ACTIVATION_SIZE = 10**5
ACTIVATION_BYTES = 5 * FLOAT_BYTES * ACTIVATION_SIZE


def _declare_activation(benchmark, name):
    benchmark.group = f"{name} forward+backward, 1e5 elements float32"
    benchmark.extra_info["bytes"] = ACTIVATION_BYTES
    generator = np.random.default_rng(2)
    return [generator.standard_normal(ACTIVATION_SIZE, dtype=np.float32) * np.float32(3) for _ in range(2)]


def _activation(name, module, functional):
    return {"tanh": module.tanh, "sigmoid": module.sigmoid, "gelu": functional.gelu}[name]


def _activation_reference(name, x, upstream):
    """y and dy/dx * upstream in float64 NumPy (GELU's exact form, from math.erf); outputs and gradients, up
    to about 15 here, are compared with an absolute tolerance of 1e-5 (float32's spacing there is 1e-6; PyTorch's
    float32 GELU is 1e-6 off near -1e-3)."""
    wide = x.astype(np.float64)
    if name == "tanh":
        y = np.tanh(wide)
        return y, upstream * (1 - y * y)
    if name == "sigmoid":
        y = 1 / (1 + np.exp(-wide))
        return y, upstream * y * (1 - y)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(wide / math.sqrt(2)))
    density = np.exp(-0.5 * wide * wide) / math.sqrt(2 * math.pi)
    return wide * cdf, upstream * (cdf + wide * density)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward_backward_nbprop(benchmark, name):
    x, upstream = _declare_activation(benchmark, name)
    function = _activation(name, nbprop, nbprop.nn.functional)
    gradient = nbprop.from_numpy(upstream)

    def step():
        leaf = nbprop.from_numpy(x).requires_grad_()
        output = function(leaf)
        output.backward(gradient)
        return output, leaf.grad

    step()  # compile (or load from the cache) before timing
    output, grad = benchmark(step)
    expected_output, expected_grad = _activation_reference(name, x, upstream)
    np.testing.assert_allclose(output.detach().numpy(), expected_output, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward_backward_torch(benchmark, torch, name):
    x, upstream = _declare_activation(benchmark, name)
    function = _activation(name, torch, torch.nn.functional)
    gradient = torch.from_numpy(upstream)

    def step():
        leaf = torch.from_numpy(x).requires_grad_()
        output = function(leaf)
        output.backward(gradient)
        return output, leaf.grad

    output, grad = benchmark(step)
    expected_output, expected_grad = _activation_reference(name, x, upstream)
    np.testing.assert_allclose(output.detach().numpy(), expected_output, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-5, atol=1e-5)
