"""Cross-entropy forward + backward, float32: nbprop's fused kernel beside PyTorch on the same logits.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_loss.py --benchmark-enable --benchmark-only
Each group holds the nbprop and PyTorch versions of one workload; compare their medians.
"""

import numpy as np
import pytest

import nbprop
from nbprop.ops.loss import cross_entropy

SHAPES = [(128, 10), (4096, 1000)]



def _data(shape):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, shape[1], shape[0])


def _step(logits, target, function):
    logits.grad = None
    function(logits, target).backward()
    return logits.grad


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_cross_entropy_nbprop(benchmark, shape):
    benchmark.group = f"cross_entropy forward + backward, {shape[0]}x{shape[1]} float32"
    array, classes = _data(shape)
    logits, target = nbprop.tensor(array, requires_grad=True), nbprop.tensor(classes)
    _step(logits, target, cross_entropy)  # compile outside the timing
    gradient = benchmark(_step, logits, target, cross_entropy)
    assert gradient.shape == shape and abs(float(gradient.numpy().sum())) < 1e-3


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_cross_entropy_torch(benchmark, torch, shape):
    benchmark.group = f"cross_entropy forward + backward, {shape[0]}x{shape[1]} float32"
    array, classes = _data(shape)
    logits, target = torch.tensor(array, requires_grad=True), torch.tensor(classes)
    gradient = benchmark(_step, logits, target, torch.nn.functional.cross_entropy)
    assert gradient.shape == shape and abs(float(gradient.sum())) < 1e-3
