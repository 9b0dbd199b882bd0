"""An MLP 784-512-512-10 (ReLU, cross-entropy, SGD) train step: nbprop beside PyTorch and hand-written NumPy.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_mlp.py --benchmark-enable --benchmark-only
One group per case holds the implementations of the same step: forward, backward and the SGD update, from the
same float32 weights and data: nbprop eagerly and captured (nbprop.compile), PyTorch eagerly and under
torch.compile, hand-written NumPy, and the step's floor (its matrix products and update alone, in NumPy).
The goals (issue 15: captured, at most 0.15x PyTorch eager and 0.6x NumPy on the small MLP, at most 1.0x
PyTorch and 1.1x the floor at batch 128) are read off the medians, not asserted: timings on a shared machine
are too noisy for a test. Each test first checks that its step computes the right loss.
"""

import os

import numpy as np
import pytest

import nbprop
from nbprop.nn.container import Sequential
from nbprop.nn.linear import Linear
from nbprop.nn.module import Module
from nbprop.ops.loss import cross_entropy
from nbprop.ops.unary import relu
from nbprop.optim import SGD

LEARNING_RATE = 0.01
# The model at batch 128 and 16, and the small MLP of DESIGN.md's per-op overhead figures.
CASES = [((784, 512, 512, 10), 128), ((784, 512, 512, 10), 16), ((64, 64, 10), 16)]
CASE_IDS = ["784-512-512-10-batch128", "784-512-512-10-batch16", "64-64-10-batch16"]


def _threads():
    return int(os.environ.get("OMP_NUM_THREADS", "2"))


def _group(sizes, batch):
    return f"MLP {'-'.join(map(str, sizes))} SGD step, batch {batch}"


def _data(sizes, batch):
    generator = np.random.default_rng(1)
    inputs = generator.standard_normal((batch, sizes[0]), dtype=np.float32)
    targets = generator.integers(0, sizes[-1], batch)
    return inputs, targets


def _weights(sizes):
    """PyTorch's default initialisation of the layers, drawn once and shared by all implementations."""
    generator = np.random.default_rng(2)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        weights.append(generator.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        weights.append(generator.uniform(-bound, bound, fan_out).astype(np.float32))
    return weights


def _state_dict(weights):
    names = ("weight", "bias")
    return {f"{index // 2}.{names[index % 2]}": value for index, value in enumerate(weights)}


class _ReLUMLP(Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = Sequential(*[Linear(fan_in, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = relu(layer(x))
        return last(x)


def _nbprop_step(sizes, batch):
    model = _ReLUMLP(sizes)
    model.layers.load_state_dict(_state_dict(_weights(sizes)))
    parameters = list(model.parameters())
    inputs, targets = _data(sizes, batch)
    inputs, targets = nbprop.from_numpy(inputs), nbprop.from_numpy(targets)
    optimizer = SGD(parameters, lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad()
        loss = cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _compiled_step(sizes, batch):
    step = _nbprop_step(sizes, batch)
    compiled = nbprop.compile(step, fullgraph=True)
    compiled()  # eagerly
    compiled()  # captured: the benchmark times replays
    return compiled


def _torch_step(sizes, batch, compiled=False):
    import torch

    torch.set_num_threads(_threads())
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    weights = _weights(sizes)
    with torch.no_grad():
        for parameter, value in zip(model.parameters(), weights):
            parameter.copy_(torch.from_numpy(value))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    inputs, targets = _data(sizes, batch)
    inputs, targets = torch.from_numpy(inputs), torch.from_numpy(targets)
    if compiled:
        model = torch.compile(model)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _numpy_step(sizes, batch):
    """The same step written by hand in float32 NumPy: what a framework should cost nothing over."""
    weights = _weights(sizes)
    inputs, targets = _data(sizes, batch)
    rows = np.arange(batch)
    layer_count = len(weights) // 2

    def step():
        activations, pre_activations = [inputs], []
        for layer in range(layer_count):
            output = activations[-1] @ weights[2 * layer].T
            output += weights[2 * layer + 1]
            if layer < layer_count - 1:
                pre_activations.append(output)
                output = np.maximum(output, 0)
            activations.append(output)
        logits = activations.pop()
        logits -= logits.max(axis=1, keepdims=True)
        exponentials = np.exp(logits)
        totals = exponentials.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(totals[:, 0]) - logits[rows, targets])
        grad_output = exponentials / totals
        grad_output[rows, targets] -= 1
        grad_output /= batch
        gradients = [None] * len(weights)
        for layer in range(layer_count - 1, -1, -1):
            gradients[2 * layer] = grad_output.T @ activations[layer]
            gradients[2 * layer + 1] = grad_output.sum(axis=0)
            if layer:
                grad_output = grad_output @ weights[2 * layer]
                grad_output *= pre_activations[layer - 1] > 0
        for weight, gradient in zip(weights, gradients):
            gradient *= LEARNING_RATE
            weight -= gradient
        return loss

    return step


def _floor_step(sizes, batch):
    """The step's matrix products (forward, and backward's weight and input gradients) and its SGD update,
    into preallocated arrays: what no implementation of the step can go below."""
    weights = _weights(sizes)
    inputs, _ = _data(sizes, batch)
    layer_count = len(weights) // 2
    outputs = [np.empty((batch, weights[2 * layer].shape[0]), np.float32) for layer in range(layer_count)]
    gradients = [np.empty_like(weight) for weight in weights[::2]]
    grad_inputs = [np.empty((batch, weights[2 * layer].shape[1]), np.float32) for layer in range(layer_count)]

    def step():
        activation = inputs
        for layer in range(layer_count):
            np.dot(activation, weights[2 * layer].T, out=outputs[layer])
            activation = outputs[layer]
        for layer in range(layer_count - 1, -1, -1):
            grad_output = outputs[layer]
            np.dot(grad_output.T, outputs[layer - 1] if layer else inputs, out=gradients[layer])
            if layer:
                np.dot(grad_output, weights[2 * layer], out=grad_inputs[layer])
        for weight, gradient in zip(weights[::2], gradients):
            gradient *= LEARNING_RATE
            weight -= gradient
        return 0.0

    return step


def _scalar(loss):
    return float(loss.detach()) if hasattr(loss, "detach") else float(loss)


def _losses(step, count=3):
    return [_scalar(step()) for _ in range(count)]


def _reference_losses(sizes, batch):
    return _losses(_numpy_step(sizes, batch))


@pytest.mark.parametrize(("sizes", "batch"), CASES, ids=CASE_IDS)
def test_mlp_nbprop(benchmark, sizes, batch):
    step = _nbprop_step(sizes, batch)
    np.testing.assert_allclose(_losses(step), _reference_losses(sizes, batch), rtol=1e-4)
    benchmark.group = _group(sizes, batch)
    benchmark(step)


@pytest.mark.torch
@pytest.mark.parametrize(("sizes", "batch"), CASES, ids=CASE_IDS)
def test_mlp_torch(benchmark, sizes, batch):
    step = _torch_step(sizes, batch)
    np.testing.assert_allclose(_losses(step), _reference_losses(sizes, batch), rtol=1e-4)
    benchmark.group = _group(sizes, batch)
    benchmark(step)


@pytest.mark.parametrize(("sizes", "batch"), CASES, ids=CASE_IDS)
def test_mlp_numpy(benchmark, sizes, batch):
    step = _numpy_step(sizes, batch)
    losses = _losses(step)
    assert losses[-1] < losses[0]
    benchmark.group = _group(sizes, batch)
    benchmark(step)


@pytest.mark.parametrize(("sizes", "batch"), CASES, ids=CASE_IDS)
def test_mlp_nbprop_compiled(benchmark, sizes, batch):
    step = _compiled_step(sizes, batch)
    # Two steps taken while compiling: compare with the reference's steps 3 to 5.
    np.testing.assert_allclose(_losses(step), _losses(_numpy_step(sizes, batch), 5)[2:], rtol=1e-4)
    benchmark.group = _group(sizes, batch)
    benchmark(step)


@pytest.mark.torch
@pytest.mark.parametrize(("sizes", "batch"), CASES, ids=CASE_IDS)
def test_mlp_torch_compiled(benchmark, sizes, batch):
    step = _torch_step(sizes, batch, compiled=True)
    np.testing.assert_allclose(_losses(step), _reference_losses(sizes, batch), rtol=1e-4)
    benchmark.group = _group(sizes, batch)
    benchmark(step)


@pytest.mark.parametrize(("sizes", "batch"), CASES, ids=CASE_IDS)
def test_mlp_floor(benchmark, sizes, batch):
    benchmark.group = _group(sizes, batch)
    benchmark(_floor_step(sizes, batch))
