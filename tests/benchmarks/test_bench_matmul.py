"""Matrix products, float32: nbprop beside PyTorch and NumPy, in GFLOP/s against the machine's SGEMM ceiling.

Run: .venv/bin/python -m tests.benchmarks.run -k matmul (or pytest with --benchmark-enable).
Workloads: an MLP layer's product 128x784 @ 784x512 (forward, and forward + backward into both operands),
the square 1024^3 product, and a batched product 64 x (128x64 @ 64x128) as in attention (forward, and
torch.bmm forward + backward into both operands, the three batched products attention runs). Each declares
its floating-point operations (2 m k n per product), so the report's GFLOP/s reads against the SGEMM
ceiling measured in the same run.
"""

import numpy as np
import pytest

import nbprop

# name: (left shape, right shape)
PRODUCTS = {
    "128x784 @ 784x512": ((128, 784), (784, 512)),
    "1024x1024 @ 1024x1024": ((1024, 1024), (1024, 1024)),
    "batched 64 x (128x64 @ 64x128)": ((64, 128, 64), (64, 64, 128)),
}
BACKWARD = "128x784 @ 784x512"
BATCHED = "batched 64 x (128x64 @ 64x128)"


def _flops(left_shape, right_shape):
    *batch, rows, inner = left_shape
    return 2 * int(np.prod(batch, dtype=np.int64)) * rows * inner * right_shape[-1]


def _operands(name):
    generator = np.random.default_rng(0)
    return [generator.standard_normal(shape, dtype=np.float32) for shape in PRODUCTS[name]]


def _declare(benchmark, name):
    benchmark.group = f"matmul {name} float32"
    benchmark.extra_info["flops"] = _flops(*PRODUCTS[name])
    return _operands(name)


def _check(result, left, right):
    np.testing.assert_allclose(result, np.matmul(left, right), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", PRODUCTS)
def test_matmul_nbprop(benchmark, name):
    left, right = _declare(benchmark, name)
    first, second = nbprop.from_numpy(left), nbprop.from_numpy(right)
    first @ second  # compile (or load from the cache) before timing
    _check(benchmark(lambda: first @ second).numpy(), left, right)


@pytest.mark.torch
@pytest.mark.parametrize("name", PRODUCTS)
def test_matmul_torch(benchmark, torch, name):
    left, right = _declare(benchmark, name)
    first, second = torch.from_numpy(left), torch.from_numpy(right)
    _check(benchmark(lambda: first @ second).numpy(), left, right)


@pytest.mark.parametrize("name", PRODUCTS)
def test_matmul_numpy(benchmark, name):
    left, right = _declare(benchmark, name)
    output = np.matmul(left, right)  # the preallocated output, as a hand-written loop would keep
    _check(benchmark(np.matmul, left, right, out=output), left, right)


def _declare_backward(benchmark):
    benchmark.group = f"matmul {BACKWARD} float32, forward + backward"
    benchmark.extra_info["flops"] = 3 * _flops(*PRODUCTS[BACKWARD])
    left, right = _operands(BACKWARD)
    grad_output = np.random.default_rng(1).standard_normal((left.shape[0], right.shape[1]), dtype=np.float32)
    return left, right, grad_output


def _framework_step(first, second, grad_output):
    first.grad = second.grad = None
    (first @ second).backward(grad_output)
    return first.grad, second.grad


def _bmm_step(framework, first, second, grad_output):
    first.grad = second.grad = None
    framework.bmm(first, second).backward(grad_output)
    return first.grad, second.grad


def _check_gradients(gradients, left, right, grad_output):
    np.testing.assert_allclose(gradients[0], grad_output @ right.T, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(gradients[1], left.T @ grad_output, rtol=1e-3, atol=1e-3)


def test_matmul_backward_nbprop(benchmark):
    left, right, grad_output = _declare_backward(benchmark)
    first = nbprop.tensor(left, requires_grad=True)
    second = nbprop.tensor(right, requires_grad=True)
    arguments = (first, second, nbprop.from_numpy(grad_output))
    _framework_step(*arguments)  # compile (or load from the cache) before timing
    gradients = benchmark(_framework_step, *arguments)
    _check_gradients([gradient.numpy() for gradient in gradients], left, right, grad_output)


@pytest.mark.torch
def test_matmul_backward_torch(benchmark, torch):
    left, right, grad_output = _declare_backward(benchmark)
    first = torch.tensor(left, requires_grad=True)
    second = torch.tensor(right, requires_grad=True)
    gradients = benchmark(_framework_step, first, second, torch.from_numpy(grad_output))
    _check_gradients([gradient.numpy() for gradient in gradients], left, right, grad_output)


def test_matmul_backward_numpy(benchmark):
    left, right, grad_output = _declare_backward(benchmark)

    def step():
        np.matmul(left, right)
        return grad_output @ right.T, left.T @ grad_output

    _check_gradients(benchmark(step), left, right, grad_output)


def _declare_bmm_backward(benchmark):
    benchmark.group = f"bmm {BATCHED} float32, forward + backward"
    benchmark.extra_info["flops"] = 3 * _flops(*PRODUCTS[BATCHED])
    left, right = _operands(BATCHED)
    grad_output = np.random.default_rng(1).standard_normal(left.shape[:2] + right.shape[2:], dtype=np.float32)
    return left, right, grad_output


def _check_bmm_gradients(gradients, left, right, grad_output):
    np.testing.assert_allclose(gradients[0], grad_output @ right.transpose(0, 2, 1), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(gradients[1], left.transpose(0, 2, 1) @ grad_output, rtol=1e-3, atol=1e-3)


def test_bmm_backward_nbprop(benchmark):
    left, right, grad_output = _declare_bmm_backward(benchmark)
    first = nbprop.tensor(left, requires_grad=True)
    second = nbprop.tensor(right, requires_grad=True)
    arguments = (nbprop, first, second, nbprop.from_numpy(grad_output))
    _bmm_step(*arguments)  # compile (or load from the cache) before timing
    gradients = benchmark(_bmm_step, *arguments)
    _check_bmm_gradients([gradient.numpy() for gradient in gradients], left, right, grad_output)


@pytest.mark.torch
def test_bmm_backward_torch(benchmark, torch):
    left, right, grad_output = _declare_bmm_backward(benchmark)
    first = torch.tensor(left, requires_grad=True)
    second = torch.tensor(right, requires_grad=True)
    gradients = benchmark(_bmm_step, torch, first, second, torch.from_numpy(grad_output))
    _check_bmm_gradients([gradient.numpy() for gradient in gradients], left, right, grad_output)


def test_bmm_backward_numpy(benchmark):
    left, right, grad_output = _declare_bmm_backward(benchmark)

    def step():
        np.matmul(left, right)
        return grad_output @ right.transpose(0, 2, 1), left.transpose(0, 2, 1) @ grad_output

    _check_bmm_gradients(benchmark(step), left, right, grad_output)
