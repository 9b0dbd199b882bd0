"""Per-op cost on tiny tensors, where Python overhead is everything: nbprop beside PyTorch eager.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_overhead.py --benchmark-enable --benchmark-only
Each group holds the nbprop and PyTorch versions of one workload; compare their medians.
"""

import pytest

import nbprop


def _nbprop_pair(requires_grad=False):
    first = nbprop.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=requires_grad)
    second = nbprop.tensor([0.5, -1.0, 2.0, 3.0])
    return first, second


@pytest.mark.benchmark(group="add, 4 elements")
def test_add_nbprop(benchmark):
    first, second = _nbprop_pair()
    first + second  # compile (or load from the cache) before timing
    result = benchmark(lambda: first + second)
    assert result.tolist() == [1.5, 1.0, 5.0, 7.0]


@pytest.mark.torch
@pytest.mark.benchmark(group="add, 4 elements")
def test_add_torch(benchmark, torch):
    first, second = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, -1.0, 2.0, 3.0])
    result = benchmark(lambda: first + second)
    assert result.tolist() == [1.5, 1.0, 5.0, 7.0]


def _mul_sum_backward(first, second):
    first.grad = None
    (first * second).sum().backward()
    return first.grad


@pytest.mark.benchmark(group="mul + sum + backward, 4 elements")
def test_mul_sum_backward_nbprop(benchmark):
    first, second = _nbprop_pair(requires_grad=True)
    _mul_sum_backward(first, second)  # compile (or load from the cache) before timing
    gradient = benchmark(_mul_sum_backward, first, second)
    assert gradient.tolist() == second.tolist()


@pytest.mark.torch
@pytest.mark.benchmark(group="mul + sum + backward, 4 elements")
def test_mul_sum_backward_torch(benchmark, torch):
    first = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    second = torch.tensor([0.5, -1.0, 2.0, 3.0])
    gradient = benchmark(_mul_sum_backward, first, second)
    assert gradient.tolist() == second.tolist()
