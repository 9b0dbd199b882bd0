"""Pooling, forward + backward, nbprop beside PyTorch on the same float32 workloads.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_pool.py --benchmark-enable --benchmark-only
Groups: max_pool2d 2x2 (stride 2) and avg_pool2d 2x2 (stride 2) on (64, 16, 28, 28), the pooling of a small
CNN's first block; each step is forward, then backward of a fixed grad_output into the input. Compare the
medians within a group (not asserted: timings on a shared machine are too noisy for a test).
"""

import numpy as np
import pytest

import nbprop
from nbprop.nn import functional

SHAPE = (64, 16, 28, 28)
OUTPUT_SHAPE = (64, 16, 14, 14)
GROUPS = {
    "max_pool2d": "max_pool2d 2x2, (64, 16, 28, 28) float32, forward + backward",
    "avg_pool2d": "avg_pool2d 2x2, (64, 16, 28, 28) float32, forward + backward",
}
# Least traffic of one step: read the input, write the output, read its gradient, write the input's gradient.
BYTES = 2 * 4 * (int(np.prod(SHAPE)) + int(np.prod(OUTPUT_SHAPE)))


def _arrays():
    generator = np.random.default_rng(0)
    return (generator.standard_normal(SHAPE).astype(np.float32),
            generator.standard_normal(OUTPUT_SHAPE).astype(np.float32))


def _step(pool, x, grad_output):
    x.grad = None
    pool(x, 2).backward(grad_output)
    return x.grad


def _bench(benchmark, name):
    values, gradient = _arrays()
    x = nbprop.tensor(values, requires_grad=True)
    pool = getattr(functional, name)
    _step(pool, x, nbprop.tensor(gradient))  # compile outside the timing
    benchmark.extra_info["bytes"] = BYTES
    result = benchmark(_step, pool, x, nbprop.tensor(gradient))
    assert result.shape == SHAPE and np.isfinite(result.numpy()).all()


def _bench_torch(benchmark, torch, name):
    values, gradient = _arrays()
    x = torch.from_numpy(values).requires_grad_(True)
    result = benchmark(_step, getattr(torch.nn.functional, name), x, torch.from_numpy(gradient))
    assert tuple(result.shape) == SHAPE


@pytest.mark.benchmark(group=GROUPS["max_pool2d"])
def test_max_pool2d_nbprop(benchmark):
    _bench(benchmark, "max_pool2d")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["max_pool2d"])
def test_max_pool2d_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "max_pool2d")


@pytest.mark.benchmark(group=GROUPS["avg_pool2d"])
def test_avg_pool2d_nbprop(benchmark):
    _bench(benchmark, "avg_pool2d")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["avg_pool2d"])
def test_avg_pool2d_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "avg_pool2d")
