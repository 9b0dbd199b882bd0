"""The recurrent op (one tape entry per layer call) and the packing ops: gradcheck in float64 for each cell
type, direction, projection and packed layout; second derivatives (gradgradcheck, create_graph against the fast
backward, against PyTorch); stable gates at +-1000; float32 gates at vector widths against PyTorch; packing
utilities against PyTorch; the opaque device."""

import numpy as np
import opaque_device
import pytest
from helpers import assert_close

import nbprop
from nbprop import nn
from nbprop.nn.utils import rnn as rnn_utils
from nbprop.ops.recurrent import GATES, SequenceLayout, recurrent_layer

# (mode, directions, projection size or 0, bias, layout: "time", "batch" or packed batch sizes)
CASES = [
    ("LSTM", 1, 0, True, "time"),
    ("LSTM", 2, 0, True, [3, 2, 1]),
    ("LSTM", 2, 2, False, "batch"),
    ("GRU", 1, 0, True, "batch"),
    ("GRU", 2, 0, True, [3, 3, 1]),
    ("RNN_TANH", 2, 0, True, "time"),
    ("RNN_RELU", 1, 0, False, [3, 1, 1]),
]
HIDDEN, INPUT = 3, 2


def _layout(layout):
    if isinstance(layout, list):
        return SequenceLayout.packed(layout, "cpu"), layout[0]
    return SequenceLayout.padded(3, 2, layout == "batch", "cpu"), 2


def _arrays(mode, directions, projection, bias, rows, batch, seed=0):
    """input, h0, c0 (or None) and each direction's weights as float64 arrays (None where absent)."""
    rng = np.random.default_rng(seed)
    gates = GATES[mode] * HIDDEN
    state = projection or HIDDEN
    arrays = [rng.standard_normal((rows, INPUT)), rng.standard_normal((directions, batch, state)),
              rng.standard_normal((directions, batch, HIDDEN)) if mode == "LSTM" else None]
    for _ in range(directions):
        arrays += [rng.standard_normal((gates, INPUT)) * 0.7, rng.standard_normal((gates, state)) * 0.7,
                   rng.standard_normal(gates) * 0.5 if bias else None,
                   rng.standard_normal(gates) * 0.5 if bias else None,
                   rng.standard_normal((state, HIDDEN)) * 0.7 if projection else None]
    return arrays


def _function(mode, layout):
    def run(input, hidden, cell, *weights):  # noqa: A002
        return recurrent_layer(mode, layout, input, hidden, cell, list(weights))
    return run


def _leaves(arrays):
    return [None if array is None else nbprop.tensor(array, requires_grad=True) for array in arrays]


@pytest.mark.parametrize("mode, directions, projection, bias, layout", CASES)
def test_gradcheck(mode, directions, projection, bias, layout):
    sequence, batch = _layout(layout)
    arrays = _arrays(mode, directions, projection, bias, sequence.rows, batch)
    present = [index for index, array in enumerate(arrays) if array is not None]

    def function(*tensors):
        full = [None] * len(arrays)
        for index, tensor in zip(present, tensors):
            full[index] = tensor
        return _function(mode, sequence)(*full)

    assert nbprop.gradcheck(function, [nbprop.tensor(arrays[index], requires_grad=True) for index in present])


@pytest.mark.parametrize("mode, directions, projection, bias, layout", [CASES[1], CASES[2], CASES[4], CASES[6]])
def test_create_graph_gradients_equal_fast_backward(mode, directions, projection, bias, layout):
    sequence, batch = _layout(layout)
    arrays = _arrays(mode, directions, projection, bias, sequence.rows, batch, seed=1)
    results = []
    for create_graph in (False, True):
        leaves = _leaves(arrays)
        outputs = _function(mode, sequence)(*leaves)
        loss = sum(((output * (index + 1.0)) ** 2).sum() for index, output in enumerate(outputs))
        present = [leaf for leaf in leaves if leaf is not None]
        results.append(nbprop.autograd.grad(loss, present, create_graph=create_graph))
    for fast, recorded in zip(*results):
        assert recorded.requires_grad
        assert_close(recorded, fast.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode, layout", [("LSTM", [2, 1]), ("GRU", "time"), ("RNN_TANH", "batch")])
def test_gradgradcheck(mode, layout):
    sequence = SequenceLayout.packed(layout, "cpu") if isinstance(layout, list) else \
        SequenceLayout.padded(2, 1, layout == "batch", "cpu")
    batch = layout[0] if isinstance(layout, list) else 1
    arrays = _arrays(mode, 2 if mode == "LSTM" else 1, 0, True, sequence.rows, batch, seed=2)
    present = [index for index, array in enumerate(arrays) if array is not None]

    def function(*tensors):
        full = [None] * len(arrays)
        for index, tensor in zip(present, tensors):
            full[index] = tensor
        return _function(mode, sequence)(*full)

    assert nbprop.gradgradcheck(function, [nbprop.tensor(arrays[index], requires_grad=True) for index in present])


@pytest.mark.torch
def test_second_derivatives_match_torch():
    import torch

    torch.manual_seed(0)
    reference = torch.nn.LSTM(2, 3, bidirectional=True).double()
    layer = nn.LSTM(2, 3, bidirectional=True, dtype=np.float64)
    layer.load_state_dict({key: nbprop.tensor(value.detach().numpy()) for key, value in reference.state_dict().items()})
    inputs = np.random.default_rng(4).standard_normal((3, 2, 2))
    vector = np.random.default_rng(5).standard_normal((3, 2, 2))
    results = []
    for module, make in ((layer, lambda a: nbprop.tensor(a, requires_grad=True)),
                         (reference, lambda a: torch.tensor(a, requires_grad=True))):
        x = make(inputs)
        output, _ = module(x)
        library = nbprop if module is layer else torch
        (first,) = library.autograd.grad((output ** 2).sum(), x, create_graph=True)
        weight = module.weight_hh_l0_reverse
        second = library.autograd.grad((first * make(vector)).sum(), [x, weight])
        results.append([value.detach().numpy() for value in second])
    for actual, expected in zip(*results):
        assert_close(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_gates_are_stable_at_large_inputs(mode):
    import torch

    name = {"RNN_TANH": "RNN"}.get(mode, mode)
    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(2, 3).double()
    with torch.no_grad():
        for weight in reference.parameters():
            weight.mul_(300.0)
    layer = getattr(nn, name)(2, 3, dtype=np.float64)
    layer.load_state_dict({key: nbprop.tensor(value.detach().numpy()) for key, value in reference.state_dict().items()})
    inputs = np.array([[[1000.0, -1000.0]], [[-1000.0, 1000.0]], [[3.0, -2.0]]])
    x = nbprop.tensor(inputs, requires_grad=True)
    output, _ = layer(x)
    output.sum().backward()
    expected_x = torch.tensor(inputs, requires_grad=True)
    expected, _ = reference(expected_x)
    expected.sum().backward()
    assert np.isfinite(output.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()
    assert_close(output, expected, rtol=1e-10, atol=1e-12)
    assert_close(x.grad, expected_x.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_float32_gates_at_vector_widths_match_torch(mode, batch_first):
    # Hidden size 40: the float32 gate loops run their vectorised bodies and their remainders; inputs up to
    # +-12 saturate some gates. Batch-first rows of a step are apart (the gathered product), time-major ones not.
    import torch

    torch.manual_seed(0)
    reference = getattr(torch.nn, mode)(6, 40, batch_first=batch_first)
    layer = getattr(nn, mode)(6, 40, batch_first=batch_first)
    layer.load_state_dict({key: nbprop.tensor(value.detach().numpy()) for key, value in reference.state_dict().items()})
    rng = np.random.default_rng(8)
    inputs = (rng.standard_normal((3, 9, 6) if batch_first else (9, 3, 6)) * 4).astype(np.float32)
    weights = rng.standard_normal((3, 9, 40) if batch_first else (9, 3, 40)).astype(np.float32)
    results = []
    for module, make in ((layer, lambda a: nbprop.tensor(a, requires_grad=True)),
                         (reference, lambda a: torch.tensor(a, requires_grad=True))):
        x = make(inputs)
        output, state = module(x)
        hidden = state[0] if mode == "LSTM" else state
        ((output * make(weights)).sum() + (hidden ** 2).sum()).backward()
        results.append([output.detach().numpy(), hidden.detach().numpy(), x.grad.numpy()]
                       + [value.grad.numpy() for _, value in sorted(module.named_parameters())])
    for actual, expected in zip(*results):
        assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_packing_utilities_match_torch():
    import torch

    rng = np.random.default_rng(6)
    pieces = [rng.standard_normal((length, 2, 3)) for length in (2, 5, 3)]
    sequences = [nbprop.tensor(piece, requires_grad=True) for piece in pieces]
    expected_sequences = [torch.tensor(piece, requires_grad=True) for piece in pieces]
    for batch_first in (False, True):
        for side in ("right", "left"):
            padded = rnn_utils.pad_sequence(sequences, batch_first, -1.0, side)
            expected = torch.nn.utils.rnn.pad_sequence(expected_sequences, batch_first, -1.0, side)
            assert_close(padded, expected)
    packed = rnn_utils.pack_sequence(sequences, enforce_sorted=False)
    expected_packed = torch.nn.utils.rnn.pack_sequence(expected_sequences, enforce_sorted=False)
    assert_close(packed.data, expected_packed.data)
    for actual, wanted in zip(packed[1:], expected_packed[1:]):
        np.testing.assert_array_equal(actual.numpy(), wanted.numpy())
    padded, lengths = rnn_utils.pad_packed_sequence(packed, batch_first=True, padding_value=7.0, total_length=6)
    expected_padded, expected_lengths = torch.nn.utils.rnn.pad_packed_sequence(expected_packed, batch_first=True,
                                                                               padding_value=7.0, total_length=6)
    assert_close(padded, expected_padded)
    np.testing.assert_array_equal(lengths.numpy(), expected_lengths.numpy())
    weights = rng.standard_normal(tuple(padded.shape))
    (padded * nbprop.tensor(weights)).sum().backward()
    (expected_padded * torch.tensor(weights)).sum().backward()
    for actual, wanted in zip(sequences, expected_sequences):
        assert_close(actual.grad, wanted.grad.numpy())
    for actual, wanted in zip(rnn_utils.unpack_sequence(packed), torch.nn.utils.rnn.unpack_sequence(expected_packed)):
        assert_close(actual, wanted)
    with pytest.raises(ValueError, match="Expected total_length to be at least"):
        rnn_utils.pad_packed_sequence(packed, total_length=2)


def test_packing_gradcheck_and_gradgradcheck():
    data = np.random.default_rng(8).standard_normal((4, 3, 2))

    def function(x):
        packed = rnn_utils.pack_padded_sequence(x, [4, 2, 3], enforce_sorted=False)
        return rnn_utils.pad_packed_sequence(packed, total_length=5)[0] * 1.5

    x = nbprop.tensor(data, requires_grad=True)
    assert nbprop.gradcheck(function, [x])
    assert nbprop.gradgradcheck(function, [x])


@pytest.mark.parametrize("mode, directions, projection, bias, layout", [CASES[1], CASES[2], CASES[4], CASES[5]])
def test_same_on_opaque_device(mode, directions, projection, bias, layout):
    opaque_device.install()
    sequence_host, batch = _layout(layout)
    arrays = _arrays(mode, directions, projection, bias, sequence_host.rows, batch, seed=3)
    present = [index for index, array in enumerate(arrays) if array is not None]

    def function(*tensors):
        full = [None] * len(arrays)
        for index, tensor in zip(present, tensors):
            full[index] = tensor
        device = tensors[0].device
        if isinstance(layout, list):
            sequence = SequenceLayout.packed(layout, device)
        else:
            sequence = SequenceLayout.padded(3, 2, layout == "batch", device)
        return _function(mode, sequence)(*full)

    opaque_device.assert_same_on_opaque(function, *[arrays[index] for index in present])


def test_packed_module_run_on_opaque_device():
    opaque_device.install()

    def function(x):
        nbprop.manual_seed(0)
        layer = nn.GRU(3, 4, bidirectional=True, dtype=np.float64).to(x.device)
        packed = rnn_utils.pack_padded_sequence(x, [2, 4, 3], enforce_sorted=False)
        output, hidden = layer(packed)
        return rnn_utils.pad_packed_sequence(output)[0], hidden

    opaque_device.assert_same_on_opaque(function, np.random.default_rng(9).standard_normal((4, 3, 3)))


def test_one_tape_entry_per_layer_call():
    layer = nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    output, (hidden, cell) = layer(nbprop.zeros((50, 2, 2)))
    # output = reshape(layer 1's op output): the op's node is one step behind the reshape.
    layer_node = output.grad_fn.next_edges[0][0]
    assert layer_node.function.__name__ == "RecurrentLayer"
    previous = layer_node.next_edges[2][0]
    assert previous.function.__name__ == "RecurrentLayer"  # layer 0's op feeds layer 1 directly


def test_memory_stays_flat_over_training_steps():
    import gc
    import tracemalloc

    layer = nn.GRU(4, 8, num_layers=2, bidirectional=True)
    optimizer = nbprop.optim.Adam(layer.parameters(), lr=1e-3)
    inputs = nbprop.tensor(np.random.default_rng(0).standard_normal((30, 3, 4)).astype(np.float32))

    def step():
        optimizer.zero_grad()
        output, hidden = layer(inputs)
        ((output ** 2).mean() + (hidden ** 2).mean()).backward()
        optimizer.step()

    for _ in range(20):
        step()
    tracemalloc.start()
    try:
        for _ in range(20):
            step()
        gc.collect()  # what the warm-up steps left (compilations) is not the steps' doing
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            step()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, (before, after)
