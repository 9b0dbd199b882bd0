"""Recurrent train steps, nbprop beside PyTorch: LSTM(32 -> 128) and GRU(32 -> 128) over a sequence of 50 steps,
batch 32, an MSE loss on a linear head of the last hidden state, the full Adam step (forward, backward, update).

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_recurrent.py --benchmark-enable --benchmark-only
Both implementations start from the same float32 weights and data; each test first checks that its step gives
PyTorch's loss over three steps. The issue's goal (time ratio at most 0.67) is read off the medians.
"""

import numpy as np
import pytest

import nbprop
from nbprop import nn
from nbprop.ops.loss import mse_loss
from nbprop.optim import Adam

INPUT, HIDDEN, STEPS, BATCH, OUTPUTS = 32, 128, 50, 32, 10
LEARNING_RATE = 1e-3
MODES = ["LSTM", "GRU"]


def _data():
    generator = np.random.default_rng(1)
    inputs = generator.standard_normal((STEPS, BATCH, INPUT), dtype=np.float32)
    targets = generator.standard_normal((BATCH, OUTPUTS), dtype=np.float32)
    return inputs, targets


def _weights(mode):
    """PyTorch's parameter names and shapes, drawn once with its init bounds and shared by both libraries."""
    generator = np.random.default_rng(2)
    gates = {"LSTM": 4, "GRU": 3}[mode] * HIDDEN
    bound = 1 / np.sqrt(HIDDEN)
    shapes = {"weight_ih_l0": (gates, INPUT), "weight_hh_l0": (gates, HIDDEN), "bias_ih_l0": (gates,),
              "bias_hh_l0": (gates,)}
    recurrent = {key: generator.uniform(-bound, bound, shape).astype(np.float32) for key, shape in shapes.items()}
    head = {"weight": generator.uniform(-bound, bound, (OUTPUTS, HIDDEN)).astype(np.float32),
            "bias": generator.uniform(-bound, bound, OUTPUTS).astype(np.float32)}
    return recurrent, head


def _nbprop_step(mode):
    recurrent_weights, head_weights = _weights(mode)
    layer, head = getattr(nn, mode)(INPUT, HIDDEN), nn.Linear(HIDDEN, OUTPUTS)
    layer.load_state_dict({key: nbprop.tensor(value) for key, value in recurrent_weights.items()})
    head.load_state_dict({key: nbprop.tensor(value) for key, value in head_weights.items()})
    optimizer = Adam(list(layer.parameters()) + list(head.parameters()), lr=LEARNING_RATE)
    inputs, targets = (nbprop.from_numpy(array) for array in _data())

    def step():
        optimizer.zero_grad()
        _, state = layer(inputs)
        hidden = state[0] if mode == "LSTM" else state
        loss = mse_loss(head(hidden[0]), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _torch_step(torch, mode):
    recurrent_weights, head_weights = _weights(mode)
    layer, head = getattr(torch.nn, mode)(INPUT, HIDDEN), torch.nn.Linear(HIDDEN, OUTPUTS)
    layer.load_state_dict({key: torch.from_numpy(value) for key, value in recurrent_weights.items()})
    head.load_state_dict({key: torch.from_numpy(value) for key, value in head_weights.items()})
    optimizer = torch.optim.Adam(list(layer.parameters()) + list(head.parameters()), lr=LEARNING_RATE)
    inputs, targets = (torch.from_numpy(array) for array in _data())

    def step():
        optimizer.zero_grad()
        _, state = layer(inputs)
        hidden = state[0] if mode == "LSTM" else state
        loss = torch.nn.functional.mse_loss(head(hidden[0]), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _losses(step, count=3):
    return [float(step().detach()) for _ in range(count)]


@pytest.mark.torch
@pytest.mark.parametrize("mode", MODES)
def test_recurrent_step_nbprop(benchmark, torch, mode):
    step = _nbprop_step(mode)
    np.testing.assert_allclose(_losses(step), _losses(_torch_step(torch, mode)), rtol=1e-4)
    benchmark.group = f"{mode}(32->128) seq 50 batch 32 Adam step"
    benchmark(step)


@pytest.mark.torch
@pytest.mark.parametrize("mode", MODES)
def test_recurrent_step_torch(benchmark, torch, mode):
    step = _torch_step(torch, mode)
    assert _losses(step)[-1] > 0
    benchmark.group = f"{mode}(32->128) seq 50 batch 32 Adam step"
    benchmark(step)
