"""softmax, log_softmax and cross-entropy over the last dim, forward + backward: nbprop, PyTorch, NumPy.

Run: .venv/bin/python -m tests.benchmarks.run -k softmax (or pytest with --benchmark-enable).
Shapes: a classifier's (128, 10), a large-vocabulary (1024, 8192); cross-entropy at (128, 10) is
test_bench_loss.py's. Each step is the forward pass and the
backward pass of a fixed grad_output into the input (cross-entropy: of the mean loss). The declared bytes
are the least traffic a fused forward and a fused backward need: softmax and log_softmax read x, write y,
read grad_output and y, write grad_input (5 arrays); cross-entropy reads the logits twice and writes the
gradient once (3 arrays).
"""

import numpy as np
import pytest

import nbprop
import nbprop.nn.functional as nbprop_functional

SHAPES = {"128x10": (128, 10), "1024x8192": (1024, 8192)}
FLOAT_BYTES = 4
ARRAYS_MOVED = {"softmax": 5, "log_softmax": 5, "cross_entropy": 3}
CASES = [(name, shape_id) for name in ARRAYS_MOVED for shape_id in SHAPES
         if (name, shape_id) != ("cross_entropy", "128x10")]



def _declare(benchmark, name, shape_id):
    shape = SHAPES[shape_id]
    benchmark.group = f"{name} forward + backward, {shape_id} float32"
    benchmark.extra_info["bytes"] = ARRAYS_MOVED[name] * FLOAT_BYTES * shape[0] * shape[1]
    generator = np.random.default_rng(0)
    logits = generator.standard_normal(shape, dtype=np.float32)
    grad_output = generator.standard_normal(shape, dtype=np.float32)
    targets = generator.integers(0, shape[1], shape[0])
    return logits, grad_output, targets


def _numpy_step(name, logits, grad_output, targets):
    """The forward and backward written by hand, as a framework should cost nothing over."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    totals = exponentials.sum(axis=1, keepdims=True)
    if name == "softmax":
        output = exponentials / totals
        return output * (grad_output - (grad_output * output).sum(axis=1, keepdims=True))
    if name == "log_softmax":
        output = shifted - np.log(totals)
        return grad_output - np.exp(output) * grad_output.sum(axis=1, keepdims=True)
    gradient = exponentials / totals
    gradient[np.arange(len(targets)), targets] -= 1
    gradient /= len(targets)
    return gradient


def _framework_step(name, functional, x, grad_output, targets):
    x.grad = None
    if name == "cross_entropy":
        functional.cross_entropy(x, targets).backward()
    else:
        getattr(functional, name)(x, dim=-1).backward(grad_output)
    return x.grad


def _check(gradient, name, arrays):
    np.testing.assert_allclose(gradient, _numpy_step(name, *arrays), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "shape_id"), CASES)
def test_softmax_nbprop(benchmark, name, shape_id):
    arrays = _declare(benchmark, name, shape_id)
    x = nbprop.tensor(arrays[0], requires_grad=True)
    arguments = (name, nbprop_functional, x, nbprop.from_numpy(arrays[1]), nbprop.from_numpy(arrays[2]))
    _framework_step(*arguments)  # compile (or load from the cache) before timing
    _check(benchmark(_framework_step, *arguments).numpy(), name, arrays)


@pytest.mark.torch
@pytest.mark.parametrize(("name", "shape_id"), CASES)
def test_softmax_torch(benchmark, torch, name, shape_id):
    arrays = _declare(benchmark, name, shape_id)
    x = torch.tensor(arrays[0], requires_grad=True)
    arguments = (name, torch.nn.functional, x, torch.from_numpy(arrays[1]), torch.from_numpy(arrays[2]))
    _check(benchmark(_framework_step, *arguments).numpy(), name, arrays)


@pytest.mark.parametrize(("name", "shape_id"), CASES)
def test_softmax_numpy(benchmark, name, shape_id):
    arrays = _declare(benchmark, name, shape_id)
    gradient = benchmark(_numpy_step, name, *arrays)
    assert gradient.shape == arrays[0].shape and np.isfinite(gradient).all()
