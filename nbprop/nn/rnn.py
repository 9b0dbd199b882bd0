"""Recurrent layers with torch.nn's names, arguments, parameters and returns: RNN, LSTM, GRU and their cells.

Each layer call is one op over the whole sequence (nbprop/ops/recurrent.py): the time loop and its backward
through time are compiled kernels, so a long sequence costs no Python per step.
"""

import math
import numbers
import warnings

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.creation import resolve_device
from nbprop.grad_mode import no_grad
from nbprop.nn import init
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from nbprop.nn.utils.rnn import PackedSequence
from nbprop.ops import movement
from nbprop.ops.gather import index_select
from nbprop.ops.linear import dropout
from nbprop.ops.recurrent import GATES, SequenceLayout, recurrent_layer
from nbprop.tensor import Tensor


def _parameter(shape, dtype, device):
    resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"recurrent layer parameters must be floating point, got dtype {resolved}")
    return Parameter(Tensor._make(DEVICES[device].empty(shape, resolved), None, device))


def _check_size(layer, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _zeros(shape, like):
    return Tensor._make(DEVICES[like.device].zeros(shape, like.dtype), None, like.device)


def _check_state(state, expected, what):
    if not isinstance(state, Tensor):
        raise TypeError(f"{what} must be a Tensor, got {type(state).__name__}")
    if tuple(state.shape) != expected:
        raise RuntimeError(f"Expected {what} size {expected}, got {list(state.shape)}")


def _check_dtype(layer, input, weight, what="input"):  # noqa: A002 - PyTorch's argument name
    if input.dtype != weight.dtype:
        raise RuntimeError(f"{layer}: {what} must have the same dtype as the weights ({weight.dtype}), got "
                           f"{input.dtype}")


class RNNBase(Module):
    """The common part of RNN, LSTM and GRU: parameters, state checks, and the layer loop."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=3)
        if not isinstance(hidden_size, (int, np.integer)) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if not isinstance(num_layers, (int, np.integer)) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"num_layers must be greater than zero, got {num_layers!r}")
        if not isinstance(proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        device = resolve_device(device, name)
        self.mode = mode
        self.input_size = _check_size(name, "input_size", input_size, 0)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        directions = 2 if bidirectional else 1
        gate_size = GATES[mode] * self.hidden_size
        state_size = self.proj_size or self.hidden_size
        self._flat_weights_names = []
        for layer in range(self.num_layers):
            layer_input_size = self.input_size if layer == 0 else state_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = [("weight_ih", (gate_size, layer_input_size)), ("weight_hh", (gate_size, state_size))]
                if self.bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if self.proj_size:
                    shapes.append(("weight_hr", (self.proj_size, self.hidden_size)))
                for prefix, shape in shapes:
                    setattr(self, prefix + suffix, _parameter(shape, dtype, device))
                    self._flat_weights_names.append(prefix + suffix)
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with no_grad():
            for weight in self.parameters():
                init.uniform_(weight, -bound, bound)

    def _layer_weights(self, layer):
        """The flat weight list recurrent_layer takes: per direction (weight_ih, weight_hh, bias_ih, bias_hh,
        weight_hr), None where absent."""
        weights = []
        for direction in range(2 if self.bidirectional else 1):
            suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            weights += [getattr(self, prefix + suffix, None)
                        for prefix in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]
        return weights

    @property
    def _name(self):
        return {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)

    def _states(self, hx, batch, unbatched, sorted_indices, like):
        """(h0, c0) as (layers * directions, batch, size) tensors: zeros, or the given states checked."""
        directions = 2 if self.bidirectional else 1
        state_size = self.proj_size or self.hidden_size
        hidden_shape = (self.num_layers * directions, batch, state_size)
        cell_shape = (self.num_layers * directions, batch, self.hidden_size)
        if hx is None:
            return _zeros(hidden_shape, like), _zeros(cell_shape, like) if self.mode == "LSTM" else None
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RuntimeError("LSTM: hx must be a tuple (h_0, c_0) of two tensors")
            states = list(hx)
            names = ("hidden[0]", "hidden[1]")
            shapes = (hidden_shape, cell_shape)
        else:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{self._name}: hx must be a Tensor, got {type(hx).__name__}")
            states, names, shapes = [hx], ("hidden",), (hidden_shape,)
        for index, (state, name, shape) in enumerate(zip(states, names, shapes)):
            if not isinstance(state, Tensor):
                raise TypeError(f"{self._name}: {name} must be a Tensor, got {type(state).__name__}")
            if unbatched:
                if state.ndim != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {state.ndim}-D "
                                       "tensor")
                state = movement.unsqueeze(state, 1)
            elif state.ndim != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {state.ndim}-D tensor")
            _check_state(state, shape, name if self.mode == "LSTM" else "hidden")
            _check_dtype(self._name, state, like, name)
            if sorted_indices is not None:
                state = index_select(state, 1, sorted_indices)
            states[index] = state
        return states[0], states[1] if self.mode == "LSTM" else None

    def forward(self, input, hx=None):  # noqa: A002 - PyTorch's argument name
        packed = isinstance(input, PackedSequence)
        name = self._name
        unbatched = False
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            sizes = DEVICES[batch_sizes.device].to_numpy(batch_sizes._data).tolist()
            layout = SequenceLayout.packed(sizes, data.device)
            rows = data
            if data.ndim != 2:
                raise ValueError(f"{name}: packed input data must be 2-D (steps, input_size), got shape "
                                 f"{tuple(data.shape)}")
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
            sorted_indices = unsorted_indices = None
            unbatched = input.ndim == 2
            if unbatched:
                input = movement.unsqueeze(input, 0 if self.batch_first else 1)  # noqa: A001
            batch, steps = (input.shape[0], input.shape[1]) if self.batch_first else (input.shape[1], input.shape[0])
            layout = SequenceLayout.padded(steps, batch, self.batch_first, input.device)
            rows = movement.reshape(input, (steps * batch, input.shape[2]))
        if rows.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{rows.shape[-1]}")
        weight = self.weight_ih_l0
        _check_dtype(name, rows, weight)
        if rows.device != weight.device:
            raise RuntimeError(f"{name}: input is on device {rows.device}, the weights on {weight.device}")
        if layout.rows == 0:
            raise RuntimeError(f"{name}: expected a sequence of at least one step over a batch of at least one "
                               f"entry, got input shape {tuple(rows.shape)}")
        hidden, cell = self._states(hx, layout.batch, unbatched, sorted_indices, rows)
        directions = 2 if self.bidirectional else 1
        final_hidden, final_cell = [], []
        for layer in range(self.num_layers):
            start = layer * directions
            results = recurrent_layer(
                self.mode, layout, rows, movement.Narrow.apply(hidden, 0, start, directions),
                None if cell is None else movement.Narrow.apply(cell, 0, start, directions),
                self._layer_weights(layer))
            rows = results[0]
            final_hidden.append(results[1])
            if cell is not None:
                final_cell.append(results[2])
            if self.dropout and self.training and layer < self.num_layers - 1:
                rows = dropout(rows, self.dropout, True)
        h_n = final_hidden[0] if self.num_layers == 1 else movement.cat(final_hidden, 0)
        c_n = None
        if cell is not None:
            c_n = final_cell[0] if self.num_layers == 1 else movement.cat(final_cell, 0)
        if packed:
            output = PackedSequence(rows, batch_sizes, sorted_indices, unsorted_indices)
            if unsorted_indices is not None:
                h_n = index_select(h_n, 1, unsorted_indices)
                c_n = None if c_n is None else index_select(c_n, 1, unsorted_indices)
        else:
            shape = (batch, steps) if self.batch_first else (steps, batch)
            output = movement.reshape(rows, shape + (rows.shape[1],))
            if unbatched:
                output = output.squeeze(0 if self.batch_first else 1)
                h_n = h_n.squeeze(1)
                c_n = None if c_n is None else c_n.squeeze(1)
        return (output, (h_n, c_n)) if self.mode == "LSTM" else (output, h_n)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh (default) or relu."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, proj_size=0):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype)
        self.nonlinearity = nonlinearity



class LSTM(RNNBase):
    """LSTM (gates i, f, g, o), optionally with a projection of the hidden state to proj_size; returns
    (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """GRU (gates r, z, n): n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)), h' = (1 - z) n + z h."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, proj_size=0):
        # proj_size only to reject it as PyTorch does.
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


# ----------------------------------------------------------------------------------------------- cells


class RNNCellBase(Module):
    """One step of a recurrent layer (weight_ih, weight_hh, bias_ih, bias_hh), on the same fused kernels."""

    def __init__(self, mode, input_size, hidden_size, bias, device, dtype):
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_size(name, "input_size", input_size, 0)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size, 1)
        self.bias = bool(bias)
        device = resolve_device(device, name)
        gate_size = GATES[mode] * self.hidden_size
        self.weight_ih = _parameter((gate_size, self.input_size), dtype, device)
        self.weight_hh = _parameter((gate_size, self.hidden_size), dtype, device)
        if self.bias:
            self.bias_ih = _parameter((gate_size,), dtype, device)
            self.bias_hh = _parameter((gate_size,), dtype, device)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        with no_grad():
            for weight in self.parameters():
                init.uniform_(weight, -bound, bound)

    def _state(self, state, batch, unbatched, index, like):
        name = type(self).__name__
        if state is None:
            return _zeros((1, batch, self.hidden_size), like)
        if not isinstance(state, Tensor):
            raise TypeError(f"{name}: hx must be a Tensor, got {type(state).__name__}")
        if state.ndim != (1 if unbatched else 2):
            raise RuntimeError(f"{name}: Expected hidden{index} to be {1 if unbatched else 2}D for "
                               f"{1 if unbatched else 2}D input, got {state.ndim}D")
        if state.shape[-1] != self.hidden_size:
            raise RuntimeError(f"hidden{index} has inconsistent hidden_size: got {state.shape[-1]}, expected "
                               f"{self.hidden_size}")
        if not unbatched and state.shape[0] != batch:
            raise RuntimeError(f"Input batch size {batch} doesn't match hidden{index} batch size {state.shape[0]}")
        _check_dtype(name, state, like, f"hidden{index}")
        return movement.reshape(state, (1, batch, self.hidden_size))

    def _step(self, input, hx, cx):  # noqa: A002 - PyTorch's argument name
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        unbatched = input.ndim == 1
        rows = movement.unsqueeze(input, 0) if unbatched else input
        if rows.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {rows.shape[1]} expected {self.input_size}")
        _check_dtype(name, rows, self.weight_ih)
        batch = rows.shape[0]
        if batch == 0:
            raise RuntimeError(f"{name}: expected a batch of at least one entry, got input shape {tuple(input.shape)}")
        hidden = self._state(hx, batch, unbatched, 0, rows)
        cell = self._state(cx, batch, unbatched, 1, rows) if self.mode == "LSTM" else None
        layout = SequenceLayout.padded(1, batch, False, rows.device)
        results = recurrent_layer(self.mode, layout, rows, hidden, cell,
                                  [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None])
        shape = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        return [movement.reshape(result, shape) for result in results[1:]]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        return text


class RNNCell(RNNCellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh (default) or relu."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias,
                         device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):  # noqa: A002 - PyTorch's argument name
        return self._step(input, hx, None)[0]

    def extra_repr(self):
        return super().extra_repr() + (f", nonlinearity={self.nonlinearity}" if self.nonlinearity != "tanh" else "")


class LSTMCell(RNNCellBase):
    """One LSTM step; hx = (h, c) or None; returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):  # noqa: A002 - PyTorch's argument name
        if hx is None:
            hidden = cell = None
        elif isinstance(hx, (tuple, list)) and len(hx) == 2:
            hidden, cell = hx
        else:
            raise RuntimeError("LSTMCell: hx must be a tuple (h_0, c_0) of two tensors")
        return tuple(self._step(input, hidden, cell))


class GRUCell(RNNCellBase):
    """One GRU step: h' = (1 - z) n + z h."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):  # noqa: A002 - PyTorch's argument name
        return self._step(input, hx, None)[0]
