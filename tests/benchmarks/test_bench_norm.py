"""Normalisation layers, forward + backward, nbprop beside PyTorch on the same float32 workloads.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_norm.py --benchmark-enable --benchmark-only
Groups: BatchNorm2d(32) in training mode on (64, 32, 28, 28), LayerNorm(512) on (4096, 512); each step is
forward, backward of a fixed grad_output into the input and the parameters. Compare the medians within a
group (not asserted: timings on a shared machine are too noisy for a test).
"""

import numpy as np
import pytest

import nbprop
from nbprop.nn.norm import BatchNorm2d, LayerNorm

WORKLOADS = {
    "batch_norm": (BatchNorm2d, (32,), (64, 32, 28, 28)),
    "layer_norm": (LayerNorm, (512,), (4096, 512)),
}
GROUPS = {
    "batch_norm": "BatchNorm2d(32) train, (64, 32, 28, 28) float32, forward + backward",
    "layer_norm": "LayerNorm(512), (4096, 512) float32, forward + backward",
}



def _arrays(shape):
    generator = np.random.default_rng(0)
    return generator.standard_normal(shape).astype(np.float32), generator.standard_normal(shape).astype(np.float32)


def _step(module, x, grad_output):
    module.zero_grad()
    x.grad = None
    module(x).backward(grad_output)
    return x.grad


def _bench(benchmark, name):
    layer, arguments, shape = WORKLOADS[name]
    module = layer(*arguments)
    values, gradient = _arrays(shape)
    x = nbprop.tensor(values, requires_grad=True)
    _step(module, x, nbprop.tensor(gradient))  # compile outside the timing
    result = benchmark(_step, module, x, nbprop.tensor(gradient))
    assert result.shape == shape and np.isfinite(result.numpy()).all()


def _bench_torch(benchmark, torch, name):
    layer, arguments, shape = WORKLOADS[name]
    module = getattr(torch.nn, layer.__name__)(*arguments)
    values, gradient = _arrays(shape)
    x = torch.from_numpy(values).requires_grad_(True)
    result = benchmark(_step, module, x, torch.from_numpy(gradient))
    assert tuple(result.shape) == shape


@pytest.mark.benchmark(group=GROUPS["batch_norm"])
def test_batch_norm_nbprop(benchmark):
    _bench(benchmark, "batch_norm")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["batch_norm"])
def test_batch_norm_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "batch_norm")


@pytest.mark.benchmark(group=GROUPS["layer_norm"])
def test_layer_norm_nbprop(benchmark):
    _bench(benchmark, "layer_norm")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["layer_norm"])
def test_layer_norm_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "layer_norm")
