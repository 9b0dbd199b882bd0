"""Recurrent layers as one op per layer call: RNN (tanh/relu), LSTM (with projection) and GRU over a whole
sequence, both directions, the time loop and its backward through time in compiled kernels (kernels/recurrent.py).

A sequence reaches the op as rows (steps x batch entries, in any order) with a SequenceLayout that says where
step t of entry b lies and how many entries are active at each step, so time-major, batch-first and packed
variable-length batches run through the same kernels without a copy. The input projection of every step is
one GEMM before the loop, the weight gradients one GEMM each after the backward loop.
"""

import itertools

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.backward_pass import grad
from nbprop.ops import movement, unary
from nbprop.ops.gather import index_select
from nbprop.ops.linear import linear
from nbprop.tensor import Tensor

# Gates per mode: the rows of weight_ih are (gates * hidden_size).
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
# A direction's weights: weight_ih, weight_hh, bias_ih, bias_hh, weight_hr (None where absent).
WEIGHTS_PER_DIRECTION = 5


class SequenceLayout:
    """Where step t of batch entry b lies among the rows: row offsets[t] + b * batch_stride, for the first
    batch_sizes[t] entries (batch_sizes never increases). Host lists, and int64 arrays on `device` for kernels."""

    __slots__ = ("steps", "batch", "rows", "batch_stride", "host_offsets", "host_batch_sizes", "offsets",
                 "batch_sizes")

    def __init__(self, host_offsets, host_batch_sizes, batch_stride, device):
        self.host_offsets = [int(offset) for offset in host_offsets]
        self.host_batch_sizes = [int(size) for size in host_batch_sizes]
        self.steps = len(self.host_batch_sizes)
        self.batch = self.host_batch_sizes[0] if self.steps else 0
        self.rows = sum(self.host_batch_sizes)
        self.batch_stride = int(batch_stride)
        backend = DEVICES[device]
        self.offsets = backend.asarray(self.host_offsets, dtypes.int64)
        self.batch_sizes = backend.asarray(self.host_batch_sizes, dtypes.int64)

    @classmethod
    def padded(cls, steps, batch, batch_first, device):
        """Every entry active at every step: rows t * batch + b (time-major) or b * steps + t (batch-first)."""
        if batch_first:
            return cls(range(steps), [batch] * steps, steps, device)
        return cls(range(0, steps * batch, batch), [batch] * steps, 1, device)

    @classmethod
    def packed(cls, batch_sizes, device):
        """A packed sequence: the active entries of each step follow one another."""
        offsets = list(itertools.accumulate(batch_sizes, initial=0))[:-1]
        return cls(offsets, batch_sizes, 1, device)

    def step_rows(self, step):
        """The rows of the active entries of `step` (host list)."""
        return [self.host_offsets[step] + entry * self.batch_stride for entry in range(self.host_batch_sizes[step])]


def _product(device, a, b, transpose_a, transpose_b, shape, dtype, out=None):
    """op(a) @ op(b) into a new (or the given) array of `shape`; zeros where the inner dimension is empty."""
    if out is None:
        out = device.empty(shape, dtype)
    inner = a.shape[0] if transpose_a else a.shape[1]
    if out.size and inner:
        device.call("matmul_2d", a, b, transpose_a, transpose_b, out)
    elif out.size:
        device.fill(out, 0)
    return out


def _array(tensor, device):
    return None if tensor is None else device.contiguous(tensor._data)


class RecurrentLayer(Function):
    """One layer of a recurrent network over a whole sequence, all its directions: outputs (output, h_n) or,
    for an LSTM, (output, h_n, c_n); output (rows, directions * state_size) in the layout's rows."""

    @staticmethod
    def forward(ctx, mode, layout, input, hidden, cell, *weights):  # noqa: A002 - PyTorch's argument name
        device = DEVICES[input.device]
        dtype = input.dtype
        directions = len(weights) // WEIGHTS_PER_DIRECTION
        rows, batch, state_size = layout.rows, layout.batch, hidden.shape[2]
        inputs = device.contiguous(input._data)
        out = device.empty((rows, directions * state_size), dtype)
        final_hidden = device.copy(hidden._data)
        final_cell = None if cell is None else device.copy(cell._data)
        records = []
        for direction in range(directions):
            weight_ih, weight_hh, bias_ih, bias_hh, weight_hr = (
                _array(weight, device)
                for weight in weights[WEIGHTS_PER_DIRECTION * direction:WEIGHTS_PER_DIRECTION * (direction + 1)])
            gate_size = weight_hh.shape[0]
            size = gate_size // GATES[mode]
            projection = _product(device, inputs, weight_ih, False, True, (rows, gate_size), dtype)
            if bias_ih is None:
                bias_ih = bias_hh = device.zeros((gate_size,), dtype)
            state = device.region(final_hidden, (direction,))
            # W_hh^T laid out C-contiguous: the kernels' per-step products run faster on it (kernels/recurrent.py).
            transposed_weight_hh = device.copy(device.transpose_matrices(weight_hh))
            recurrent = device.empty((batch, gate_size), dtype)
            previous_hidden = device.empty((rows, state_size), dtype)
            reverse = direction == 1
            column = direction * state_size
            arguments = (projection, layout.offsets, layout.batch_sizes, layout.batch_stride, reverse)
            if mode == "LSTM":
                has_projection = weight_hr is not None
                if not has_projection:
                    weight_hr = device.empty((0, 0), dtype)
                gates = device.empty((rows, gate_size), dtype)
                previous_cell = device.empty((rows, size), dtype)
                projected = device.empty((rows if has_projection else 0, size), dtype)
                device.call("lstm_forward", *arguments, transposed_weight_hh, bias_ih, bias_hh, weight_hr,
                            has_projection, state, device.region(final_cell, (direction,)), recurrent,
                            device.empty((batch, size), dtype), gates, previous_hidden, previous_cell, projected,
                            out, column)
                records.append((gates, previous_hidden, previous_cell, projected))
            elif mode == "GRU":
                gates = device.empty((rows, gate_size), dtype)
                hidden_candidate = device.empty((rows, size), dtype)
                device.call("gru_forward", *arguments, transposed_weight_hh, bias_ih, bias_hh, state, recurrent, gates,
                            previous_hidden, hidden_candidate, out, column)
                records.append((gates, previous_hidden, hidden_candidate))
            else:
                device.call("rnn_forward", *arguments, mode == "RNN_RELU", transposed_weight_hh, bias_ih, bias_hh,
                            state, recurrent, previous_hidden, out, column)
                records.append((previous_hidden,))
        output = Tensor._make(out, None, input.device)
        ctx.mode, ctx.layout, ctx.records = mode, layout, records
        ctx.save_for_backward(input, hidden, cell, *weights, output)
        results = (output, Tensor._make(final_hidden, None, input.device))
        if final_cell is not None:
            results += (Tensor._make(final_cell, None, input.device),)
        return results

    @staticmethod
    def backward(ctx, grad_output, grad_hidden, grad_cell=None):
        saved = ctx.saved_tensors
        input, weights, output = saved[0], saved[3:-1], saved[-1]  # noqa: A001
        mode, layout = ctx.mode, ctx.layout
        device = DEVICES[grad_output.device]
        dtype = grad_output.dtype
        rows, batch = layout.rows, layout.batch
        inputs = device.contiguous(input._data)
        grad_out = device.contiguous(grad_output._data)
        grad_state = device.copy(grad_hidden._data)
        grad_cell_state = None if grad_cell is None else device.copy(grad_cell._data)
        state_size = grad_state.shape[2]
        needs = ctx.needs_input_grad
        grad_input = None
        grad_weights = [None] * len(weights)
        for direction, record in enumerate(ctx.records):
            first = WEIGHTS_PER_DIRECTION * direction
            weight_ih, weight_hh, bias_ih, bias_hh, weight_hr = (
                _array(weight, device) for weight in weights[first:first + WEIGHTS_PER_DIRECTION])
            gate_size = weight_hh.shape[0]
            size = gate_size // GATES[mode]
            reverse = direction == 1
            column = direction * state_size
            state = device.region(grad_state, (direction,))
            grad_gates = device.empty((rows, gate_size), dtype)
            grad_hidden_gates = grad_gates
            grad_hidden_rows = None
            arguments = (grad_out, column)
            where = (layout.offsets, layout.batch_sizes, layout.batch_stride, reverse)
            if mode == "LSTM":
                gates, previous_hidden, previous_cell, projected = record
                has_projection = weight_hr is not None
                grad_hidden_rows = device.empty((rows if has_projection else 0, state_size), dtype)
                device.call("lstm_backward", *arguments, *where, weight_hh,
                            weight_hr if has_projection else device.empty((0, 0), dtype), has_projection, gates,
                            previous_cell, state, device.region(grad_cell_state, (direction,)),
                            device.empty((batch, state_size), dtype), device.empty((batch, size), dtype),
                            device.empty((batch, gate_size), dtype), grad_gates, grad_hidden_rows)
            elif mode == "GRU":
                gates, previous_hidden, hidden_candidate = record
                grad_hidden_gates = device.empty((rows, gate_size), dtype)
                device.call("gru_backward", *arguments, *where, weight_hh, gates, previous_hidden,
                            hidden_candidate, state, device.empty((batch, gate_size), dtype),
                            device.empty((batch, size), dtype), grad_gates, grad_hidden_gates)
            else:
                (previous_hidden,) = record
                device.call("rnn_backward", *arguments, output._data, *where, mode == "RNN_RELU", weight_hh, state,
                            device.empty((batch, gate_size), dtype), grad_gates)
            if needs[2]:
                # d(x W_ih^T)/dx of every direction, summed.
                part = _product(device, grad_gates, weight_ih, False, False, (rows, weight_ih.shape[1]), dtype)
                if grad_input is None:
                    grad_input = part
                else:
                    device.map("add", grad_input, part, grad_input)
            products = (
                (0, grad_gates, inputs), (1, grad_hidden_gates, previous_hidden),
                (4, grad_hidden_rows, record[3] if mode == "LSTM" else None),
            )
            for offset, left, right in products:
                index = 5 + first + offset
                if needs[index]:
                    shape = (left.shape[1], right.shape[1])
                    grad_weights[first + offset] = _product(device, left, right, True, False, shape, dtype,
                                                            ctx.gradient_destination(index))
            for offset, gradients in ((2, grad_gates), (3, grad_hidden_gates)):
                index = 5 + first + offset
                if needs[index]:
                    grad_bias = ctx.gradient_destination(index)
                    if grad_bias is None:
                        grad_bias = device.empty((gate_size,), dtype)
                    # Serial: a threaded column sum beside BLAS's spinning threads took 14 ms instead of 0.5 (2 cores).
                    device.call("linear_bias_grad", gradients, grad_bias, work=0)
                    grad_weights[first + offset] = grad_bias

        def wrap(array):
            return None if array is None else Tensor._make(array, None, grad_output.device)

        return (None, None, wrap(grad_input), wrap(grad_state) if needs[3] else None,
                wrap(grad_cell_state) if needs[4] else None, *(wrap(array) for array in grad_weights))

    @staticmethod
    def backward_graph(ctx, grad_output, grad_hidden, grad_cell=None):
        # The forward again, one cell step after another with recorded ops, differentiated with create_graph:
        # slow (a Python step per time step) but exact, and itself differentiable.
        saved = ctx.saved_tensors
        arguments = saved[:-1]
        needed = [index for index, tensor in enumerate(arguments) if ctx.needs_input_grad[index + 2]]
        outputs = recorded_layer(ctx.mode, ctx.layout, arguments[0], arguments[1], arguments[2], arguments[3:])
        pairs = [(output, gradient) for output, gradient in zip(outputs, (grad_output, grad_hidden, grad_cell))
                 if gradient is not None and output.requires_grad]
        gradients = [None] * len(arguments)
        if pairs and needed:
            found = grad([output for output, _ in pairs], [arguments[index] for index in needed],
                         [gradient for _, gradient in pairs], create_graph=True, allow_unused=True)
            for index, gradient in zip(needed, found):
                gradients[index] = gradient
        return (None, None, *gradients)


def _indices(rows, like):
    return Tensor._make(DEVICES[like.device].asarray(rows, dtypes.int64), None, like.device)


def _cell_step(mode, inputs, state, cell, weight_hh, bias_hh, weight_hr):
    """One step of the cell with recorded ops, from the input projection `inputs` (with b_ih): (h', c')."""
    recurrent = linear(state, weight_hh, bias_hh)
    if mode == "GRU":
        size = state.shape[1]
        input_reset, input_update, input_candidate = movement.split(inputs, size, 1)
        hidden_reset, hidden_update, hidden_candidate = movement.split(recurrent, size, 1)
        reset = unary.sigmoid(input_reset + hidden_reset)
        update = unary.sigmoid(input_update + hidden_update)
        candidate = unary.tanh(input_candidate + reset * hidden_candidate)
        return (1.0 - update) * candidate + update * state, None
    total = inputs + recurrent
    if mode == "RNN_TANH":
        return unary.tanh(total), None
    if mode == "RNN_RELU":
        return unary.relu(total), None
    input_gate, forget_gate, candidate, output_gate = movement.chunk(total, 4, 1)
    new_cell = unary.sigmoid(forget_gate) * cell + unary.sigmoid(input_gate) * unary.tanh(candidate)
    value = unary.sigmoid(output_gate) * unary.tanh(new_cell)
    if weight_hr is not None:
        value = linear(value, weight_hr)
    return value, new_cell


def _active(tensor, active, batch):
    """The first `active` entries (dimension 0) of a state tensor."""
    return tensor if active == batch else movement.Narrow.apply(tensor, 0, 0, active)


def _merged(new, old, active, batch):
    """The state after a step: the updated first `active` entries, the others as they were."""
    return new if active == batch else movement.cat([new, movement.Narrow.apply(old, 0, active, batch - active)], 0)


def recorded_layer(mode, layout, input, hidden, cell, weights):  # noqa: A002 - PyTorch's argument name
    """RecurrentLayer's forward as recorded public ops (a cell step per time step): (output, h_n[, c_n])."""
    directions = len(weights) // WEIGHTS_PER_DIRECTION
    batch = layout.batch
    outputs, final_hidden, final_cell = [], [], []
    for direction in range(directions):
        weight_ih, weight_hh, bias_ih, bias_hh, weight_hr = weights[
            WEIGHTS_PER_DIRECTION * direction:WEIGHTS_PER_DIRECTION * (direction + 1)]
        projection = linear(input, weight_ih, bias_ih)
        state = movement.Narrow.apply(hidden, 0, direction, 1).squeeze(0)
        cell_state = None if cell is None else movement.Narrow.apply(cell, 0, direction, 1).squeeze(0)
        order = range(layout.steps - 1, -1, -1) if direction == 1 else range(layout.steps)
        pieces, row_order = [], []
        for step in order:
            active = layout.host_batch_sizes[step]
            rows = layout.step_rows(step)
            new_state, new_cell = _cell_step(mode, index_select(projection, 0, _indices(rows, input)),
                                             _active(state, active, batch),
                                             None if cell_state is None else _active(cell_state, active, batch),
                                             weight_hh, bias_hh, weight_hr)
            pieces.append(new_state)
            row_order.extend(rows)
            state = _merged(new_state, state, active, batch)
            if new_cell is not None:
                cell_state = _merged(new_cell, cell_state, active, batch)
        inverse = [0] * len(row_order)
        for position, row in enumerate(row_order):
            inverse[row] = position
        outputs.append(index_select(movement.cat(pieces, 0), 0, _indices(inverse, input)))
        final_hidden.append(state)
        final_cell.append(cell_state)
    output = outputs[0] if directions == 1 else movement.cat(outputs, 1)
    results = (output, movement.stack(final_hidden, 0))
    if cell is not None:
        results += (movement.stack(final_cell, 0),)
    return results


def recurrent_layer(mode, layout, input, hidden, cell, weights):  # noqa: A002 - PyTorch's argument name
    """One layer over a whole sequence: input (rows, input_size) in `layout`'s rows, hidden (directions, batch,
    state_size), cell (directions, batch, hidden_size) for an LSTM else None, weights a flat list of each
    direction's (weight_ih, weight_hh, bias_ih, bias_hh, weight_hr), None where absent. Returns (output, h_n) or
    (output, h_n, c_n), output (rows, directions * state_size)."""
    return RecurrentLayer.apply(mode, layout, input, hidden, cell, *weights)


# ----------------------------------------------------------------------------------------- packing


class PaddedToPacked(Function):
    """(T, B, F) padded steps -> (sum(batch_sizes), F): each step's first batch_sizes[t] entries in order."""

    @staticmethod
    def forward(ctx, padded, batch_sizes):
        ctx.batch_sizes, ctx.shape = batch_sizes, padded.shape
        return _pack(padded, batch_sizes)

    @staticmethod
    def backward(ctx, grad_output):
        return _unpack(grad_output, ctx.batch_sizes, ctx.shape, 0.0), None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return PackedToPadded.apply(grad_output, ctx.batch_sizes, ctx.shape, 0.0), None


def _pack(padded, batch_sizes):
    device = DEVICES[padded.device]
    out = device.empty((int(sum(batch_sizes)), padded.shape[2]), padded.dtype)
    device.call("padded_to_packed", device.contiguous(padded._data),
                device.asarray(list(batch_sizes), dtypes.int64), out)
    return Tensor._make(out, None, padded.device)


def _unpack(packed, batch_sizes, shape, padding_value):
    device = DEVICES[packed.device]
    out = device.empty(shape, packed.dtype)
    device.call("packed_to_padded", device.contiguous(packed._data),
                device.asarray(list(batch_sizes), dtypes.int64), padding_value, out)
    return Tensor._make(out, None, packed.device)


class PackedToPadded(Function):
    """(sum(batch_sizes), F) -> (T', B, F) with padding_value after each entry's end (T' >= len(batch_sizes))."""

    @staticmethod
    def forward(ctx, packed, batch_sizes, shape, padding_value):
        ctx.batch_sizes = batch_sizes
        return _unpack(packed, batch_sizes, shape, float(padding_value))

    @staticmethod
    def backward(ctx, grad_output):
        return _pack(grad_output, ctx.batch_sizes), None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        return PaddedToPacked.apply(grad_output, ctx.batch_sizes), None, None, None
