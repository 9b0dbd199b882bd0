"""Attention, nbprop beside PyTorch: scaled_dot_product_attention forward + backward (batch 16, 4 heads, sequence
256, head dim 32) and a TransformerEncoderLayer train step (d_model 128, 4 heads, sequence 128, batch 16, SGD).

Run: .venv/bin/python -m tests.benchmarks.run -k attention (1 and 2 threads), or pytest with --benchmark-enable.
float32, the same data and weights for both; each nbprop test first checks its result against NumPy (attention)
or PyTorch's loss (the layer). The issue's goal (at most 1.0x PyTorch's time) is read off the medians; the load
average at the start of each test is recorded beside them, as the machine is shared.
"""

import os

import numpy as np
import pytest

import nbprop
from nbprop.ops.loss import mse_loss
from nbprop.optim import SGD

BATCH, HEADS, SEQUENCE, HEAD_DIM = 16, 4, 256, 32
D_MODEL, LAYER_HEADS, LAYER_SEQUENCE, LAYER_BATCH = 128, 4, 128, 16


def _record_load(benchmark):
    benchmark.extra_info["load_average"] = os.getloadavg()[0]


def _attention_data():
    generator = np.random.default_rng(0)
    shape = (BATCH, HEADS, SEQUENCE, HEAD_DIM)
    return [generator.standard_normal(shape, dtype=np.float32) for _ in range(4)]


def _attention_step(functional, query, key, value, grad_output):
    for tensor in (query, key, value):
        tensor.grad = None
    functional.scaled_dot_product_attention(query, key, value).backward(grad_output)
    return query.grad


def _numpy_query_gradient(query, key, value, grad_output):
    scores = query.astype(np.float64) @ key.swapaxes(-1, -2) / np.sqrt(HEAD_DIM)
    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    grad_probabilities = grad_output @ value.swapaxes(-1, -2)
    grad_scores = probabilities * (grad_probabilities - (grad_probabilities * probabilities).sum(-1, keepdims=True))
    return grad_scores @ key / np.sqrt(HEAD_DIM)


def test_attention_nbprop(benchmark):
    benchmark.group = f"scaled_dot_product_attention forward + backward, {BATCH}x{HEADS}x{SEQUENCE}x{HEAD_DIM} float32"
    _record_load(benchmark)
    arrays = _attention_data()
    leaves = [nbprop.tensor(array, requires_grad=True) for array in arrays[:3]]
    arguments = (nbprop.nn.functional, *leaves, nbprop.from_numpy(arrays[3]))
    _attention_step(*arguments)  # compile (or load from the cache) before timing
    gradient = benchmark(_attention_step, *arguments).numpy()
    np.testing.assert_allclose(gradient, _numpy_query_gradient(*arrays), rtol=1e-3, atol=1e-4)


@pytest.mark.torch
def test_attention_torch(benchmark, torch):
    benchmark.group = f"scaled_dot_product_attention forward + backward, {BATCH}x{HEADS}x{SEQUENCE}x{HEAD_DIM} float32"
    _record_load(benchmark)
    arrays = _attention_data()
    leaves = [torch.tensor(array, requires_grad=True) for array in arrays[:3]]
    benchmark(_attention_step, torch.nn.functional, *leaves, torch.tensor(arrays[3]))


def _layer_data():
    generator = np.random.default_rng(1)
    inputs = generator.standard_normal((LAYER_BATCH, LAYER_SEQUENCE, D_MODEL), dtype=np.float32)
    targets = generator.standard_normal((LAYER_BATCH, LAYER_SEQUENCE, D_MODEL), dtype=np.float32)
    return inputs, targets


def _layer(library):
    return library.nn.TransformerEncoderLayer(D_MODEL, LAYER_HEADS, dim_feedforward=4 * D_MODEL, dropout=0.0,
                                              batch_first=True)


def _train_step(layer, optimizer, loss_function, inputs, targets):
    optimizer.zero_grad()
    loss = loss_function(layer(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def _torch_losses(torch, state, inputs, targets, steps=3):
    torch_layer = _layer(torch)
    torch_layer.load_state_dict(state)
    optimizer = torch.optim.SGD(torch_layer.parameters(), lr=0.01)
    return [_train_step(torch_layer, optimizer, torch.nn.functional.mse_loss, torch.tensor(inputs),
                        torch.tensor(targets)).item() for _ in range(steps)]


@pytest.mark.torch
def test_encoder_layer_step_nbprop(benchmark, torch):
    benchmark.group = (f"TransformerEncoderLayer train step, d={D_MODEL} heads={LAYER_HEADS} seq={LAYER_SEQUENCE} "
                       f"batch={LAYER_BATCH} float32")
    _record_load(benchmark)
    inputs, targets = _layer_data()
    torch.manual_seed(0)
    state = _layer(torch).state_dict()
    layer = _layer(nbprop)
    layer.load_state_dict({name: nbprop.tensor(value.numpy()) for name, value in state.items()})
    optimizer = SGD(layer.parameters(), lr=0.01)
    arguments = (layer, optimizer, mse_loss, nbprop.tensor(inputs), nbprop.tensor(targets))
    losses = [_train_step(*arguments).item() for _ in range(3)]
    np.testing.assert_allclose(losses, _torch_losses(torch, state, inputs, targets), rtol=1e-4)
    benchmark(_train_step, *arguments)


@pytest.mark.torch
def test_encoder_layer_step_torch(benchmark, torch):
    benchmark.group = (f"TransformerEncoderLayer train step, d={D_MODEL} heads={LAYER_HEADS} seq={LAYER_SEQUENCE} "
                       f"batch={LAYER_BATCH} float32")
    _record_load(benchmark)
    inputs, targets = _layer_data()
    torch.manual_seed(0)
    layer = _layer(torch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    benchmark(_train_step, layer, optimizer, torch.nn.functional.mse_loss, torch.tensor(inputs),
              torch.tensor(targets))
