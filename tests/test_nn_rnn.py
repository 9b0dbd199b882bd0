"""Recurrent modules against PyTorch: after load_state_dict of PyTorch's weights, equal outputs, final states and
every gradient (input, initial states, parameters) for RNN (tanh/relu), LSTM (with proj_size) and GRU over
layers, directions, batch_first, sequence lengths and packed batches; the cells; parameter names, shapes and
init; dropout between layers; errors as PyTorch raises them."""

import numpy as np
import pytest
from helpers import assert_close

import nbprop
from nbprop import nn
from nbprop.nn.utils import rnn as rnn_utils

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}

# (class, keyword arguments, sequence length, batch): layers 1-2, both directions, batch_first both ways,
# lengths 1 to 64, each mode, bias and projection options.
CASES = [
    ("LSTM", dict(num_layers=1), 1, 3),
    ("LSTM", dict(num_layers=2, bidirectional=True), 7, 4),
    ("LSTM", dict(num_layers=2, batch_first=True, proj_size=3), 5, 2),
    ("LSTM", dict(num_layers=1, bidirectional=True, batch_first=True, bias=False), 64, 2),
    ("GRU", dict(num_layers=1, batch_first=True), 1, 2),
    ("GRU", dict(num_layers=2, bidirectional=True), 9, 3),
    ("GRU", dict(num_layers=1, bias=False), 64, 2),
    ("RNN", dict(num_layers=2, bidirectional=True, batch_first=True), 6, 3),
    ("RNN", dict(num_layers=1, nonlinearity="relu"), 12, 3),
    ("RNN", dict(num_layers=2, nonlinearity="relu", bias=False, bidirectional=True), 4, 2),
]


def _pair(name, kwargs, dtype, input_size=3, hidden_size=5):
    import torch

    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(input_size, hidden_size, **kwargs).to(getattr(torch, np.dtype(dtype).name))
    layer = getattr(nn, name)(input_size, hidden_size, dtype=dtype, **kwargs)
    layer.load_state_dict({key: nbprop.tensor(value.detach().numpy()) for key, value in
                           reference.state_dict().items()})
    return layer, reference


def _states(name, layer, batch, rng, dtype):
    directions = 2 if layer.bidirectional else 1
    size = layer.proj_size or layer.hidden_size
    hidden = rng.standard_normal((layer.num_layers * directions, batch, size)).astype(dtype)
    if name != "LSTM":
        return [hidden]
    return [hidden, rng.standard_normal((layer.num_layers * directions, batch, layer.hidden_size)).astype(dtype)]


def _flatten(name, result):
    output, state = result
    return [output] + (list(state) if name == "LSTM" else [state])


def _run_both(name, layer, reference, inputs, states, packed_lengths=None, enforce_sorted=True):
    """Outputs and all gradients of a random linear functional of (output, h_n[, c_n]), for both libraries."""
    import torch

    results = []
    for library in ("nbprop", "torch"):
        if library == "nbprop":
            make = lambda array: nbprop.tensor(array, requires_grad=True)  # noqa: E731
            module, utils = layer, rnn_utils
        else:
            make = lambda array: torch.tensor(array, requires_grad=True)  # noqa: E731
            module, utils = reference, torch.nn.utils.rnn
        x = make(inputs)
        hx = [make(state) for state in states]
        source = x
        if packed_lengths is not None:
            source = utils.pack_padded_sequence(x, packed_lengths, batch_first=module.batch_first,
                                                enforce_sorted=enforce_sorted)
        outputs = _flatten(name, module(source, hx[0] if name != "LSTM" else tuple(hx)))
        if packed_lengths is not None:
            padded, lengths = utils.pad_packed_sequence(outputs[0], batch_first=module.batch_first)
            assert list(np.asarray(lengths)) == list(packed_lengths)
            outputs[0] = padded
        rng = np.random.default_rng(7)
        loss = 0
        for output in outputs:
            weights = rng.standard_normal(tuple(output.shape)).astype(inputs.dtype)
            loss = loss + (output * (nbprop.tensor(weights) if library == "nbprop" else torch.tensor(weights))).sum()
        loss.backward()
        values = [output.detach().numpy() for output in outputs]
        gradients = [x.grad.numpy()] + [state.grad.numpy() for state in hx]
        parameters = {key: value.grad.numpy() for key, value in module.named_parameters()}
        results.append((values, gradients, parameters))
    return results


def _assert_same(results, dtype):
    (values, gradients, parameters), (expected_values, expected_gradients, expected_parameters) = results
    for actual, expected in zip(values + gradients, expected_values + expected_gradients):
        assert_close(actual, expected, **TOLERANCE[dtype])
    assert parameters.keys() == expected_parameters.keys()
    for key, value in parameters.items():
        assert_close(value, expected_parameters[key], **TOLERANCE[dtype])


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs, steps, batch", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_matches_torch(name, kwargs, steps, batch, dtype):
    layer, reference = _pair(name, kwargs, dtype)
    rng = np.random.default_rng(steps)
    shape = (batch, steps, 3) if kwargs.get("batch_first") else (steps, batch, 3)
    inputs = rng.standard_normal(shape).astype(dtype)
    _assert_same(_run_both(name, layer, reference, inputs, _states(name, layer, batch, rng, dtype)), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", [
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(batch_first=True, proj_size=2)),
    ("GRU", dict(bidirectional=True, batch_first=True)),
    ("RNN", dict(num_layers=2)),
])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_batch_matches_torch(name, kwargs, enforce_sorted):
    layer, reference = _pair(name, kwargs, np.float64)
    lengths = [6, 4, 4, 1] if enforce_sorted else [3, 6, 1, 5]
    rng = np.random.default_rng(3)
    shape = (4, 6, 3) if kwargs.get("batch_first") else (6, 4, 3)
    inputs = rng.standard_normal(shape)
    results = _run_both(name, layer, reference, inputs, _states(name, layer, 4, rng, np.float64), lengths,
                        enforce_sorted)
    _assert_same(results, np.float64)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_default_states_and_unbatched_input_match_torch(name):
    import torch

    layer, reference = _pair(name, dict(num_layers=2, bidirectional=True), np.float64)
    inputs = np.random.default_rng(1).standard_normal((5, 3))
    output, state = layer(nbprop.tensor(inputs))
    expected_output, expected_state = reference(torch.tensor(inputs))
    assert_close(output, expected_output, **TOLERANCE[np.float64])
    states = state if name == "LSTM" else (state,)
    expected_states = expected_state if name == "LSTM" else (expected_state,)
    for actual, expected in zip(states, expected_states):
        assert tuple(actual.shape) == (4, 5)
        assert_close(actual, expected, **TOLERANCE[np.float64])


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu", bias=False)),
                                          ("LSTMCell", {}), ("GRUCell", {}), ("GRUCell", dict(bias=False))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cells_match_torch(name, kwargs, dtype):
    import torch

    layer, reference = _pair(name, kwargs, dtype, input_size=4, hidden_size=3)
    rng = np.random.default_rng(2)
    inputs = rng.standard_normal((5, 4)).astype(dtype)
    states = [rng.standard_normal((5, 3)).astype(dtype) for _ in range(2 if name == "LSTMCell" else 1)]
    results = []
    for module, make in ((layer, lambda a: nbprop.tensor(a, requires_grad=True)),
                         (reference, lambda a: torch.tensor(a, requires_grad=True))):
        x, hx = make(inputs), [make(state) for state in states]
        outputs = module(x, tuple(hx) if name == "LSTMCell" else hx[0])
        outputs = list(outputs) if name == "LSTMCell" else [outputs]
        loss = sum((output * (index + 1.5)).sum() for index, output in enumerate(outputs)) + (outputs[0] ** 2).sum()
        loss.backward()
        results.append(([o.detach().numpy() for o in outputs], [x.grad.numpy()] + [h.grad.numpy() for h in hx],
                        {key: value.grad.numpy() for key, value in module.named_parameters()}))
    _assert_same(results, dtype)
    # Unbatched input and no state: zeros, as in PyTorch.
    single = module_output = layer(nbprop.tensor(inputs[0]))
    expected = reference(torch.tensor(inputs[0]))
    for actual, wanted in zip(single if name == "LSTMCell" else [module_output],
                              expected if name == "LSTMCell" else [expected]):
        assert tuple(actual.shape) == (3,)
        assert_close(actual, wanted, **TOLERANCE[dtype])


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", [("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
                                          ("GRU", dict(bias=False)), ("RNN", dict(nonlinearity="relu")),
                                          ("LSTMCell", {}), ("GRUCell", dict(bias=False))])
def test_parameter_names_shapes_and_init_match_torch(name, kwargs):
    import torch

    reference = getattr(torch.nn, name)(3, 5, **kwargs)
    layer = getattr(nn, name)(3, 5, **kwargs)
    expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in layer.state_dict().items()} == expected
    assert list(layer.state_dict()) == list(reference.state_dict())
    bound = 1 / np.sqrt(5)
    for value in layer.parameters():
        array = value.detach().numpy()
        assert array.dtype == np.float32 and np.all(np.abs(array) <= bound) and np.std(array) > bound / 4


def test_dropout_between_layers():
    nbprop.manual_seed(0)
    layer = nn.LSTM(3, 8, num_layers=2, dropout=0.5, dtype=np.float64)
    inputs = nbprop.tensor(np.random.default_rng(0).standard_normal((4, 2, 3)))
    layer.eval()
    first, second = layer(inputs)[0].detach().numpy(), layer(inputs)[0].detach().numpy()
    np.testing.assert_array_equal(first, second)
    layer.train()
    nbprop.manual_seed(1)
    dropped = layer(inputs)[0].detach().numpy()
    nbprop.manual_seed(1)
    np.testing.assert_array_equal(layer(inputs)[0].detach().numpy(), dropped)
    assert not np.allclose(dropped, first)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.3)


def test_long_sequence_trains_without_recursion():
    layer = nn.LSTM(2, 4, dtype=np.float64)
    head = nn.Linear(4, 1, dtype=np.float64)
    inputs = nbprop.tensor(np.random.default_rng(0).standard_normal((1000, 2, 2)))
    optimizer = nbprop.optim.SGD(list(layer.parameters()) + list(head.parameters()), lr=0.1)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        output, (hidden, _) = layer(inputs)
        loss = (head(hidden[0]) ** 2).mean() + (output ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert layer.weight_hh_l0.grad is not None and np.isfinite(layer.weight_hh_l0.grad.numpy()).all()


def _raises(error, match, function):
    with pytest.raises(error, match=match):
        function()


def test_errors():
    layer = nn.LSTM(3, 4, num_layers=2)
    x = nbprop.zeros((5, 2, 3))
    _raises(RuntimeError, r"input.size\(-1\) must be equal to input_size. Expected 3, got 2",
            lambda: layer(nbprop.zeros((5, 2, 2))))
    _raises(ValueError, "Expected input to be 2D or 3D, got 4D", lambda: layer(nbprop.zeros((5, 2, 3, 1))))
    _raises(RuntimeError, r"Expected hidden\[0\] size \(2, 2, 4\), got \[1, 2, 4\]",
            lambda: layer(x, (nbprop.zeros((1, 2, 4)), nbprop.zeros((2, 2, 4)))))
    _raises(RuntimeError, r"Expected hidden\[1\] size \(2, 2, 4\), got \[2, 3, 4\]",
            lambda: layer(x, (nbprop.zeros((2, 2, 4)), nbprop.zeros((2, 3, 4)))))
    _raises(RuntimeError, r"Expected hidden size \(1, 2, 4\), got \[1, 2, 5\]",
            lambda: nn.GRU(3, 4)(x, nbprop.zeros((1, 2, 5))))
    _raises(RuntimeError, "hx should also be 2-D", lambda: nn.RNN(3, 4)(nbprop.zeros((5, 3)), nbprop.zeros((1, 1, 4))))
    _raises(RuntimeError, "same dtype as the weights", lambda: layer(nbprop.zeros((5, 2, 3), dtype=np.float64)))
    _raises(ValueError, "hidden_size must be greater than zero", lambda: nn.GRU(3, 0))
    _raises(ValueError, "proj_size has to be smaller than hidden_size", lambda: nn.LSTM(3, 4, proj_size=4))
    _raises(ValueError, "proj_size argument is only supported for LSTM", lambda: nn.GRU(3, 4, proj_size=2))
    _raises(ValueError, "Unknown nonlinearity 'sigmoid'", lambda: nn.RNN(3, 4, nonlinearity="sigmoid"))
    _raises(ValueError, "dropout should be a number in range", lambda: nn.LSTM(3, 4, dropout=1.5))
    cell = nn.GRUCell(3, 4)
    _raises(RuntimeError, "input has inconsistent input_size: got 2 expected 3", lambda: cell(nbprop.zeros((2, 2))))
    _raises(RuntimeError, "hidden0 has inconsistent hidden_size: got 5, expected 4",
            lambda: cell(nbprop.zeros((2, 3)), nbprop.zeros((2, 5))))
    _raises(RuntimeError, "Input batch size 2 doesn't match hidden0 batch size 3",
            lambda: cell(nbprop.zeros((2, 3)), nbprop.zeros((3, 4))))
    _raises(ValueError, "Expected input to be 1D or 2D, got 3D", lambda: cell(nbprop.zeros((1, 2, 3))))
    _raises(RuntimeError, "must be sorted in decreasing order",
            lambda: rnn_utils.pack_padded_sequence(x, [2, 5]))
    _raises(RuntimeError, "has to be greater than 0", lambda: rnn_utils.pack_padded_sequence(x, [5, 0]))
    _raises(ValueError, "equal to batch_size", lambda: rnn_utils.pack_padded_sequence(x, [5, 4, 3]))


@pytest.mark.torch
def test_repr_matches_torch():
    import torch

    for name, kwargs in [("LSTM", dict(num_layers=2, batch_first=True, proj_size=2)),
                         ("RNN", dict(nonlinearity="relu", bidirectional=True)), ("GRUCell", dict(bias=False)),
                         ("RNNCell", dict(nonlinearity="relu"))]:
        assert repr(getattr(nn, name)(3, 4, **kwargs)) == repr(getattr(torch.nn, name)(3, 4, **kwargs))
