"""Recurrent kernels: the time loop of an RNN, LSTM or GRU layer (one direction) with its gates fused, its
backward through time, and the copies between packed and padded sequences.

Layout shared by every kernel: a sequence of T steps over a batch of B lives in the rows of 2-D arrays; step t
of batch entry b is row `offsets[t] + b * batch_stride`, and only the first `batch_sizes[t]` entries of the batch
are active at step t (batch_sizes never increases with t). Time-major input has offsets t * B and stride 1,
batch-first input offsets t and stride T, a packed sequence the running sum of its batch sizes and stride 1.
Every row is a real step (padding exists only in the padded layouts the frontend converts).

The input projection of every step (`projection`, rows x gates, without bias) is one GEMM done before the loop;
inside, each step is one BLAS product of the active prefix of the hidden state with W_hh^T and one fused pass
over the gates. State arrays (B, H) hold the initial state on entry and the final state on return; an entry
that is inactive at a step keeps its state, so the final state of a shorter sequence is that of its own last
step (forward) or the state after step 0 (reverse). Gates use gate_sigmoid and gate_tanh below, branch-free
forms of kernels/scalar.py's exp, exact to +-1000 and beyond. Compiled without FMA contraction: c = f c + i g
is a sum of two products, which must round the same in every compilation (the LSTM backward recomputes it).

The backward kernels run the steps in the opposite order and write, per row, the gradient of each gate's
pre-activation (`grad_gates`, the input side; GRU also `grad_hidden_gates`, the side of W_hh, whose candidate
gate differs by the reset gate's factor). The weight gradients are then whole-sequence GEMMs in the frontend.
"""

import numpy as np

from nbprop.kernels import scalar
from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, scalar_function

# Below this |x| tanh is its Taylor polynomial: 1 - 2 / (1 + e^(2x)) loses about 1e-16 / |x| relative to the
# cancellation, 4e-14 at 0.01, while the first omitted term, 17 x^7 / 315, is 5e-14 of x there.
TANH_SERIES_BOUND = 0.01


@scalar_function
def gate_sigmoid(x):
    """1 / (1 + e^-x), branch-free so that the gate loops vectorise: e^-x overflows to inf for x < -709 and
    the result is then 0, as it should be (no NaN: fast-math here keeps inf)."""
    return 1.0 / (1.0 + scalar.exp(-x))


@scalar_function
def gate_tanh(x):
    """tanh x = 1 - 2 / (1 + e^(2x)) (exact limits +-1 at +-inf), its Taylor series near 0; branch-free."""
    square = x * x
    series = x * (1.0 - square * (1.0 / 3.0 - square * (2.0 / 15.0)))
    return series if abs(x) < TANH_SERIES_BOUND else 1.0 - 2.0 / (1.0 + scalar.exp(2.0 * x))


# The time loops of every cell share their steps: which step an iteration runs, how many batch entries are
# active at it, where an entry's row lies, and (forward) the product of the state with W_hh.


@scalar_function
def _forward_step(index, steps, reverse, batch_sizes, hidden, weight_hh, recurrent):
    """Begin iteration `index` of a forward time loop, from the last step when `reverse`: (step, active), with
    recurrent[:active] = hidden[:active] W_hh^T."""
    step = steps - 1 - index if reverse else index
    active = batch_sizes[step]
    np.dot(hidden[:active], weight_hh.T, recurrent[:active])
    return step, active


@scalar_function
def _backward_step(index, steps, reverse, batch_sizes):
    """(step, active) of iteration `index` of a backward time loop: the forward's steps in the opposite order."""
    step = index if reverse else steps - 1 - index
    return step, batch_sizes[step]


@scalar_function
def _row(offsets, step, entry, batch_stride):
    """The row of batch entry `entry` at `step` (the layout in this file's docstring)."""
    return offsets[step] + entry * batch_stride


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def rnn_forward(projection, offsets, batch_sizes, batch_stride, reverse, relu, weight_hh, bias_ih, bias_hh,
                hidden, recurrent, previous_hidden, out, out_column):
    """Elman RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or (relu) max(0, .).

    projection (rows, H) = x W_ih^T; weight_hh (H, H); biases (H,); hidden (B, H) initial -> final state;
    recurrent (B, H) scratch; previous_hidden (rows, H) receives each step's incoming state; out (rows, ...)
    receives h' in columns out_column .. out_column + H.
    """
    steps = offsets.shape[0]
    size = hidden.shape[1]
    for index in range(steps):
        step, active = _forward_step(index, steps, reverse, batch_sizes, hidden, weight_hh, recurrent)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(size):
                previous_hidden[row, unit] = hidden[entry, unit]
                total = projection[row, unit] + bias_ih[unit] + recurrent[entry, unit] + bias_hh[unit]
                value = max(total, 0.0) if relu else gate_tanh(total)
                hidden[entry, unit] = value
                out[row, out_column + unit] = value


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def rnn_backward(grad_out, out_column, out, offsets, batch_sizes, batch_stride, reverse, relu, weight_hh,
                 grad_hidden, step_gates, grad_gates):
    """Backward of rnn_forward. grad_out (rows, ...) in columns out_column..; out the forward's output;
    grad_hidden (B, H) the gradient of the final state -> of the initial state; step_gates (B, H) scratch;
    grad_gates (rows, H) receives d loss / d pre-activation (tanh' = 1 - h'^2, relu' = [h' > 0])."""
    steps = offsets.shape[0]
    size = grad_hidden.shape[1]
    for index in range(steps):
        step, active = _backward_step(index, steps, reverse, batch_sizes)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(size):
                value = out[row, out_column + unit]
                gradient = grad_hidden[entry, unit] + grad_out[row, out_column + unit]
                if relu:
                    gradient = gradient if value > 0 else 0.0
                else:
                    gradient = gradient * (1.0 - value * value)
                step_gates[entry, unit] = gradient
                grad_gates[row, unit] = gradient
        np.dot(step_gates[:active], weight_hh, grad_hidden[:active])


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def lstm_forward(projection, offsets, batch_sizes, batch_stride, reverse, weight_hh, bias_ih, bias_hh,
                 weight_hr, has_projection, hidden, cell, recurrent, step_projected, gates, previous_hidden,
                 previous_cell, projected, out, out_column):
    """LSTM (PyTorch's gate order i, f, g, o): c' = f c + i g, m = o tanh(c'), h' = m or, with a projection,
    m W_hr^T.

    projection (rows, 4H) = x W_ih^T; weight_hh (4H, P) with P the state size (H, or proj_size); biases (4H,);
    weight_hr (P, H) (unused without projection); hidden (B, P) and cell (B, H) initial -> final state;
    recurrent (B, 4H) and step_projected (B, H) scratch. Saved per row for backward: gates (rows, 4H) (the
    activated i, f, g, o), previous_hidden (rows, P), previous_cell (rows, H), projected (rows, H) (m, with a
    projection). out receives h' in columns out_column .. out_column + P.
    """
    steps = offsets.shape[0]
    size = cell.shape[1]
    state_size = hidden.shape[1]
    for index in range(steps):
        step, active = _forward_step(index, steps, reverse, batch_sizes, hidden, weight_hh, recurrent)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(state_size):
                previous_hidden[row, unit] = hidden[entry, unit]
            # Pre-activations, then each gate's nonlinearity, as separate loops over one contiguous row: simple
            # loops that LLVM vectorises (one fused loop over many arrays it did not: 3x slower).
            gate_row = gates[row]
            projection_row = projection[row]
            recurrent_row = recurrent[entry]
            for at in range(4 * size):
                gate_row[at] = projection_row[at] + bias_ih[at] + recurrent_row[at] + bias_hh[at]
            for at in range(2 * size):
                gate_row[at] = gate_sigmoid(gate_row[at])
            for at in range(2 * size, 3 * size):
                gate_row[at] = gate_tanh(gate_row[at])
            for at in range(3 * size, 4 * size):
                gate_row[at] = gate_sigmoid(gate_row[at])
            cell_row = cell[entry]
            previous_cell_row = previous_cell[row]
            for unit in range(size):
                previous = cell_row[unit]
                previous_cell_row[unit] = previous
                new_cell = gate_row[size + unit] * previous + gate_row[unit] * gate_row[2 * size + unit]
                cell_row[unit] = new_cell
                step_projected[entry, unit] = gate_row[3 * size + unit] * gate_tanh(new_cell)
            if has_projection:
                for unit in range(size):
                    projected[row, unit] = step_projected[entry, unit]
            else:
                for unit in range(size):
                    hidden[entry, unit] = step_projected[entry, unit]
                    out[row, out_column + unit] = step_projected[entry, unit]
        if has_projection:
            np.dot(step_projected[:active], weight_hr.T, hidden[:active])
            for entry in range(active):
                row = _row(offsets, step, entry, batch_stride)
                for unit in range(state_size):
                    out[row, out_column + unit] = hidden[entry, unit]


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def lstm_backward(grad_out, out_column, offsets, batch_sizes, batch_stride, reverse, weight_hh, weight_hr,
                  has_projection, gates, previous_cell, grad_hidden, grad_cell, step_hidden, step_projected,
                  step_gates, grad_gates, grad_hidden_rows):
    """Backward of lstm_forward. grad_out (rows, ...) in columns out_column..; grad_hidden (B, P) and
    grad_cell (B, H): gradients of the final state -> of the initial state; step_hidden (B, P), step_projected
    (B, H) and step_gates (B, 4H) scratch. Writes grad_gates (rows, 4H), d loss / d pre-activations, and with a
    projection grad_hidden_rows (rows, P), d loss / d h' per row (for W_hr's gradient).

    With t = tanh(c'): dm = dh' (or dh' W_hr), dc = dc' + dm o (1 - t^2), di = dc g i (1 - i),
    df = dc c f (1 - f), dg = dc i (1 - g^2), do = dm t o (1 - o); dc <- dc f, dh <- [di df dg do] W_hh.
    """
    steps = offsets.shape[0]
    size = grad_cell.shape[1]
    state_size = grad_hidden.shape[1]
    for index in range(steps):
        step, active = _backward_step(index, steps, reverse, batch_sizes)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(state_size):
                gradient = grad_hidden[entry, unit] + grad_out[row, out_column + unit]
                step_hidden[entry, unit] = gradient
                if has_projection:
                    grad_hidden_rows[row, unit] = gradient
        if has_projection:
            np.dot(step_hidden[:active], weight_hr, step_projected[:active])
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(size):
                grad_value = step_projected[entry, unit] if has_projection else step_hidden[entry, unit]
                input_gate = gates[row, unit]
                forget_gate = gates[row, size + unit]
                candidate = gates[row, 2 * size + unit]
                output_gate = gates[row, 3 * size + unit]
                new_cell = forget_gate * previous_cell[row, unit] + input_gate * candidate
                cell_tanh = gate_tanh(new_cell)
                gradient_cell = grad_cell[entry, unit] + grad_value * output_gate * (1.0 - cell_tanh * cell_tanh)
                grad_input = gradient_cell * candidate * input_gate * (1.0 - input_gate)
                grad_forget = gradient_cell * previous_cell[row, unit] * forget_gate * (1.0 - forget_gate)
                grad_candidate = gradient_cell * input_gate * (1.0 - candidate * candidate)
                grad_output = grad_value * cell_tanh * output_gate * (1.0 - output_gate)
                grad_cell[entry, unit] = gradient_cell * forget_gate
                step_gates[entry, unit] = grad_input
                step_gates[entry, size + unit] = grad_forget
                step_gates[entry, 2 * size + unit] = grad_candidate
                step_gates[entry, 3 * size + unit] = grad_output
                grad_gates[row, unit] = grad_input
                grad_gates[row, size + unit] = grad_forget
                grad_gates[row, 2 * size + unit] = grad_candidate
                grad_gates[row, 3 * size + unit] = grad_output
        np.dot(step_gates[:active], weight_hh, grad_hidden[:active])


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def gru_forward(projection, offsets, batch_sizes, batch_stride, reverse, weight_hh, bias_ih, bias_hh, hidden,
                recurrent, gates, previous_hidden, hidden_candidate, out, out_column):
    """GRU (PyTorch's gate order r, z, n): r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r h_n),
    h' = (1 - z) n + z h, where x_* = x W_i*^T + b_i* and h_* = h W_h*^T + b_h*.

    projection (rows, 3H) = x W_ih^T; weight_hh (3H, H); biases (3H,); hidden (B, H) initial -> final state;
    recurrent (B, 3H) scratch. Saved per row: gates (rows, 3H) (r, z, n), previous_hidden (rows, H) and
    hidden_candidate (rows, H) = h_n. out receives h' in columns out_column .. out_column + H.
    """
    steps = offsets.shape[0]
    size = hidden.shape[1]
    for index in range(steps):
        step, active = _forward_step(index, steps, reverse, batch_sizes, hidden, weight_hh, recurrent)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(size):
                reset = gate_sigmoid(projection[row, unit] + bias_ih[unit] + recurrent[entry, unit] + bias_hh[unit])
                at = size + unit
                update = gate_sigmoid(projection[row, at] + bias_ih[at] + recurrent[entry, at] + bias_hh[at])
                at = 2 * size + unit
                candidate_hidden = recurrent[entry, at] + bias_hh[at]
                candidate = gate_tanh(projection[row, at] + bias_ih[at] + reset * candidate_hidden)
                previous = hidden[entry, unit]
                previous_hidden[row, unit] = previous
                hidden_candidate[row, unit] = candidate_hidden
                gates[row, unit] = reset
                gates[row, size + unit] = update
                gates[row, 2 * size + unit] = candidate
                value = (1.0 - update) * candidate + update * previous
                hidden[entry, unit] = value
                out[row, out_column + unit] = value


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def gru_backward(grad_out, out_column, offsets, batch_sizes, batch_stride, reverse, weight_hh, gates,
                 previous_hidden, hidden_candidate, grad_hidden, step_gates, step_hidden, grad_gates,
                 grad_hidden_gates):
    """Backward of gru_forward. grad_hidden (B, H): gradient of the final state -> of the initial state;
    step_gates (B, 3H) and step_hidden (B, H) scratch. Writes grad_gates (rows, 3H) = [dr, dz, da] (the input
    side's pre-activations, a = x_n + r h_n) and grad_hidden_gates (rows, 3H) = [dr, dz, da r] (W_hh's side).

    dn = dh' (1 - z), dz = dh' (h - n) z (1 - z), da = dn (1 - n^2), dr = da h_n r (1 - r);
    dh <- dh' z + [dr dz da r] W_hh.
    """
    steps = offsets.shape[0]
    size = grad_hidden.shape[1]
    for index in range(steps):
        step, active = _backward_step(index, steps, reverse, batch_sizes)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(size):
                gradient = grad_hidden[entry, unit] + grad_out[row, out_column + unit]
                reset = gates[row, unit]
                update = gates[row, size + unit]
                candidate = gates[row, 2 * size + unit]
                grad_candidate = gradient * (1.0 - update) * (1.0 - candidate * candidate)
                grad_update = gradient * (previous_hidden[row, unit] - candidate) * update * (1.0 - update)
                grad_reset = grad_candidate * hidden_candidate[row, unit] * reset * (1.0 - reset)
                step_hidden[entry, unit] = gradient * update
                grad_gates[row, unit] = grad_reset
                grad_gates[row, size + unit] = grad_update
                grad_gates[row, 2 * size + unit] = grad_candidate
                grad_hidden_gates[row, unit] = grad_reset
                grad_hidden_gates[row, size + unit] = grad_update
                grad_hidden_gates[row, 2 * size + unit] = grad_candidate * reset
                step_gates[entry, unit] = grad_reset
                step_gates[entry, size + unit] = grad_update
                step_gates[entry, 2 * size + unit] = grad_candidate * reset
        np.dot(step_gates[:active], weight_hh, grad_hidden[:active])
        for entry in range(active):
            for unit in range(size):
                grad_hidden[entry, unit] += step_hidden[entry, unit]


@cpu_kernel
def padded_to_packed(padded, batch_sizes, out):
    """out (sum(batch_sizes), F) = the first batch_sizes[t] entries of each step of padded (T, B, F), in order."""
    row = 0
    for step in range(batch_sizes.shape[0]):
        for entry in range(batch_sizes[step]):
            for feature in range(out.shape[1]):
                out[row, feature] = padded[step, entry, feature]
            row += 1


@cpu_kernel
def packed_to_padded(packed, batch_sizes, padding_value, out):
    """out (T', B, F), T' >= T = len(batch_sizes): the inverse of padded_to_packed, with padding_value where an
    entry has ended and in the steps after T."""
    row = 0
    for step in range(out.shape[0]):
        active = batch_sizes[step] if step < batch_sizes.shape[0] else 0
        for entry in range(out.shape[1]):
            if entry < active:
                for feature in range(out.shape[2]):
                    out[step, entry, feature] = packed[row, feature]
                row += 1
            else:
                for feature in range(out.shape[2]):
                    out[step, entry, feature] = padding_value
