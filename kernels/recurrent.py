"""Recurrent kernels: the time loop of an RNN, LSTM or GRU layer (one direction) with its gates fused, its
backward through time, and the copies between packed and padded sequences.

Layout shared by every kernel: a sequence of T steps over a batch of B lives in the rows of 2-D arrays; step t
of batch entry b is row `offsets[t] + b * batch_stride`, and only the first `batch_sizes[t]` entries of the batch
are active at step t (batch_sizes never increases with t). Time-major input has offsets t * B and stride 1,
batch-first input offsets t and stride T, a packed sequence the running sum of its batch sizes and stride 1.
Every row is a real step (padding exists only in the padded layouts the frontend converts).

The input projection of every step (`projection`, rows x gates, without bias) is one GEMM done before the loop;
inside, each step is a BLAS product of the active prefix of the hidden state with W_hh^T (a C-contiguous copy
of it, passed in: OpenBLAS is slower on the transposed weight) in single-threaded row blocks (_rows_product) and
a pass over the gates in simple loops that vectorise. State arrays (B, H) hold the initial state on entry and the
final state on return; an entry that is inactive at a step keeps its state, so the final state of a shorter
sequence is that of its own last step (forward) or the state after step 0 (reverse). Gates use gate_sigmoid and
gate_tanh below, branch-free forms from kernels/scalar.py, exact to +-1000 and beyond. Compiled without FMA
contraction: c = f c + i g is a sum of two products, which must round the same in every compilation (the LSTM
backward recomputes it).

The backward kernels run the steps in the opposite order and write, per row, the gradient of each gate's
pre-activation (`grad_gates`, the input side; GRU also `grad_hidden_gates`, the side of W_hh, whose candidate
gate differs by the reset gate's factor). The weight gradients are then whole-sequence GEMMs in the frontend.
"""

import numpy as np

from nbprop.kernels import scalar
from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, scalar_function
from nbprop.kernels.matmul import SINGLE_THREAD_PRODUCT
from nbprop.kernels.scalar_bits import overload_by_dtype, select

# Below this |x| the float64 tanh is its Taylor polynomial: 1 - 2 / (1 + e^(2x)) loses about 1e-16 / |x| relative
# to the cancellation, 4e-14 at 0.01, while the first omitted term, 17 x^7 / 315, is 5e-14 of x there.
TANH_SERIES_BOUND = 0.01


def _gate_tanh_float64(x):
    square = x * x
    series = x * (1.0 - square * (1.0 / 3.0 - square * (2.0 / 15.0)))
    return select(abs(x) < TANH_SERIES_BOUND, series, 1.0 - 2.0 / (1.0 + scalar.exp(2.0 * x)))


def _gate_tanh_float32(x):
    return scalar.tanh(x)


def _gate_tanh_in_dtype(x):
    """tanh x in x's dtype (compiled: the overload below; uncompiled: NumPy)."""
    return np.tanh(x)


overload_by_dtype(_gate_tanh_in_dtype, _gate_tanh_float32, _gate_tanh_float64)


@scalar_function
def gate_sigmoid(x):
    """1 / (1 + e^-x): kernels/scalar.py's sigmoid (exp in x's dtype, vectorisable, no overflow)."""
    return scalar.sigmoid(x)


@scalar_function
def gate_tanh(x):
    """tanh x, branch-free so that the gate loops vectorise: float32 in float32 arithmetic (kernels/scalar.py's
    tanh, within 2 ulp; the float64 formula below on float32 data took 4x as long), float64 as
    1 - 2 / (1 + e^(2x)) (exact limits +-1 at +-inf) with its Taylor series near 0."""
    return _gate_tanh_in_dtype(x)


# The time loops of every cell share their steps: which step an iteration runs, how many batch entries are
# active at it, where an entry's row lies, and (forward) the product of the state with W_hh.


@scalar_function
def _rows_product(left, right, out):
    """out = left @ right (C-contiguous, right not transposed) in blocks of rows of at most SINGLE_THREAD_PRODUCT
    multiply-adds each, which OpenBLAS runs on the calling thread with its small-matrix kernels: 50 steps of
    32x128 @ 128x512 took 1.9 ms as blocks of 4 rows against 3.0 ms whole (and 2.5 ms at 2 threads, whose
    threads, woken every step between serial gate loops, made a loaded 2-core machine's LSTM step 3x slower)."""
    rows = left.shape[0]
    block = max(1, SINGLE_THREAD_PRODUCT // max(left.shape[1] * right.shape[1], 1))
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        np.dot(left[start:stop], right, out[start:stop])


@scalar_function
def _forward_step(index, steps, reverse, batch_sizes, hidden, transposed_weight_hh, recurrent):
    """Begin iteration `index` of a forward time loop, from the last step when `reverse`: (step, active), with
    recurrent[:active] = hidden[:active] W_hh^T."""
    step = steps - 1 - index if reverse else index
    active = batch_sizes[step]
    _rows_product(hidden[:active], transposed_weight_hh, recurrent[:active])
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


@scalar_function
def _step_gates_product(grad_gates, step_gates, offsets, step, active, batch_stride, weight_hh, grad_hidden):
    """grad_hidden[:active] = (the rows of grad_gates at `step`) W_hh: read in place where they follow one another
    (time-major and packed layouts), else gathered into step_gates first."""
    if batch_stride == 1 or active == 1:
        first = offsets[step]
        _rows_product(grad_gates[first:first + active], weight_hh, grad_hidden[:active])
    else:
        for entry in range(active):
            source = grad_gates[_row(offsets, step, entry, batch_stride)]
            target = step_gates[entry]
            for at in range(source.shape[0]):
                target[at] = source[at]
        _rows_product(step_gates[:active], weight_hh, grad_hidden[:active])


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def rnn_forward(projection, offsets, batch_sizes, batch_stride, reverse, relu, transposed_weight_hh, bias_ih,
                bias_hh, hidden, recurrent, previous_hidden, out, out_column):
    """Elman RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or (relu) max(0, .).

    projection (rows, H) = x W_ih^T; transposed_weight_hh (H, H) = W_hh^T, C-contiguous; biases (H,); hidden
    (B, H) initial -> final state; recurrent (B, H) scratch; previous_hidden (rows, H) receives each step's
    incoming state; out (rows, ...) receives h' in columns out_column .. out_column + H.
    """
    steps = offsets.shape[0]
    size = hidden.shape[1]
    for index in range(steps):
        step, active = _forward_step(index, steps, reverse, batch_sizes, hidden, transposed_weight_hh, recurrent)
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
        _rows_product(step_gates[:active], weight_hh, grad_hidden[:active])


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def lstm_forward(projection, offsets, batch_sizes, batch_stride, reverse, transposed_weight_hh, bias_ih, bias_hh,
                 weight_hr, has_projection, hidden, cell, recurrent, step_projected, gates, previous_hidden,
                 previous_cell, projected, out, out_column):
    """LSTM (PyTorch's gate order i, f, g, o): c' = f c + i g, m = o tanh(c'), h' = m or, with a projection,
    m W_hr^T.

    projection (rows, 4H) = x W_ih^T; transposed_weight_hh (P, 4H) = W_hh^T, C-contiguous, with P the state size
    (H, or proj_size); biases (4H,);
    weight_hr (P, H) (unused without projection); hidden (B, P) and cell (B, H) initial -> final state;
    recurrent (B, 4H) and step_projected (B, H) scratch. Saved per row for backward: gates (rows, 4H) (the
    activated i, f, g, o), previous_hidden (rows, P), previous_cell (rows, H), projected (rows, H) (m, with a
    projection). out receives h' in columns out_column .. out_column + P.
    """
    steps = offsets.shape[0]
    size = cell.shape[1]
    state_size = hidden.shape[1]
    for index in range(steps):
        step, active = _forward_step(index, steps, reverse, batch_sizes, hidden, transposed_weight_hh, recurrent)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            for unit in range(state_size):
                previous_hidden[row, unit] = hidden[entry, unit]
            # Simple loops over one gate's contiguous slice each, indexed from 0, which LLVM vectorises: a loop
            # over a row's elements 2H..3H rewritten in place was not vectorised (10x slower); nor was one fused
            # loop over many arrays (3x slower).
            gate_row = gates[row]
            projection_row = projection[row]
            recurrent_row = recurrent[entry]
            for at in range(4 * size):
                gate_row[at] = projection_row[at] + bias_ih[at] + recurrent_row[at] + bias_hh[at]
            input_forget = gate_row[:2 * size]
            input_gate = gate_row[:size]
            forget_gate = gate_row[size:2 * size]
            candidate = gate_row[2 * size:3 * size]
            output_gate = gate_row[3 * size:]
            for at in range(2 * size):
                input_forget[at] = gate_sigmoid(input_forget[at])
            for unit in range(size):
                candidate[unit] = gate_tanh(candidate[unit])
            for unit in range(size):
                output_gate[unit] = gate_sigmoid(output_gate[unit])
            cell_row = cell[entry]
            previous_cell_row = previous_cell[row]
            projected_row = step_projected[entry]
            for unit in range(size):
                previous_cell_row[unit] = cell_row[unit]
            for unit in range(size):
                cell_row[unit] = forget_gate[unit] * previous_cell_row[unit] + input_gate[unit] * candidate[unit]
            for unit in range(size):
                projected_row[unit] = output_gate[unit] * gate_tanh(cell_row[unit])
            if has_projection:
                projected_out = projected[row]
                for unit in range(size):
                    projected_out[unit] = projected_row[unit]
            else:
                hidden_row = hidden[entry]
                out_row = out[row, out_column:out_column + size]
                for unit in range(size):
                    hidden_row[unit] = projected_row[unit]
                for unit in range(size):
                    out_row[unit] = projected_row[unit]
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
            hidden_row = step_hidden[entry]
            grad_hidden_row = grad_hidden[entry]
            grad_out_row = grad_out[row, out_column:out_column + state_size]
            for unit in range(state_size):
                hidden_row[unit] = grad_hidden_row[unit] + grad_out_row[unit]
            if has_projection:
                rows_out = grad_hidden_rows[row]
                for unit in range(state_size):
                    rows_out[unit] = hidden_row[unit]
        if has_projection:
            np.dot(step_hidden[:active], weight_hr, step_projected[:active])
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            grad_value = step_projected[entry] if has_projection else step_hidden[entry]
            gate_row = gates[row]
            input_gate = gate_row[:size]
            forget_gate = gate_row[size:2 * size]
            candidate = gate_row[2 * size:3 * size]
            output_gate = gate_row[3 * size:]
            previous_cell_row = previous_cell[row]
            grad_row = grad_gates[row]
            grad_input = grad_row[:size]
            grad_forget = grad_row[size:2 * size]
            grad_candidate = grad_row[2 * size:3 * size]
            grad_output = grad_row[3 * size:]
            gradient_cell = grad_cell[entry]
            # tanh(c') again (the same products and sum as the forward's, so the same bits), in step_gates'
            # row as scratch; simple loops over slices, as in lstm_forward, so that each one vectorises.
            cell_tanh = step_gates[entry, :size]
            for unit in range(size):
                cell_tanh[unit] = gate_tanh(forget_gate[unit] * previous_cell_row[unit]
                                            + input_gate[unit] * candidate[unit])
            for unit in range(size):
                gradient_cell[unit] = gradient_cell[unit] + grad_value[unit] * output_gate[unit] * (
                    1.0 - cell_tanh[unit] * cell_tanh[unit])
            for unit in range(size):
                grad_output[unit] = grad_value[unit] * cell_tanh[unit] * output_gate[unit] * (1.0 - output_gate[unit])
            for unit in range(size):
                grad_input[unit] = gradient_cell[unit] * candidate[unit] * input_gate[unit] * (1.0 - input_gate[unit])
            for unit in range(size):
                grad_forget[unit] = (gradient_cell[unit] * previous_cell_row[unit] * forget_gate[unit]
                                     * (1.0 - forget_gate[unit]))
            for unit in range(size):
                grad_candidate[unit] = gradient_cell[unit] * input_gate[unit] * (
                    1.0 - candidate[unit] * candidate[unit])
            for unit in range(size):
                gradient_cell[unit] = gradient_cell[unit] * forget_gate[unit]
        _step_gates_product(grad_gates, step_gates, offsets, step, active, batch_stride, weight_hh, grad_hidden)


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def gru_forward(projection, offsets, batch_sizes, batch_stride, reverse, transposed_weight_hh, bias_ih, bias_hh,
                hidden,
                recurrent, gates, previous_hidden, hidden_candidate, out, out_column):
    """GRU (PyTorch's gate order r, z, n): r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r h_n),
    h' = (1 - z) n + z h, where x_* = x W_i*^T + b_i* and h_* = h W_h*^T + b_h*.

    projection (rows, 3H) = x W_ih^T; transposed_weight_hh (H, 3H) = W_hh^T, C-contiguous; biases (3H,);
    hidden (B, H) initial -> final state;
    recurrent (B, 3H) scratch. Saved per row: gates (rows, 3H) (r, z, n), previous_hidden (rows, H) and
    hidden_candidate (rows, H) = h_n. out receives h' in columns out_column .. out_column + H.
    """
    steps = offsets.shape[0]
    size = hidden.shape[1]
    input_bias = bias_ih[2 * size:]
    hidden_bias = bias_hh[2 * size:]
    for index in range(steps):
        step, active = _forward_step(index, steps, reverse, batch_sizes, hidden, transposed_weight_hh, recurrent)
        for entry in range(active):
            row = _row(offsets, step, entry, batch_stride)
            # Simple loops over contiguous slices, as in lstm_forward, so that each one vectorises.
            gate_row = gates[row]
            projection_row = projection[row]
            recurrent_row = recurrent[entry]
            for at in range(2 * size):
                gate_row[at] = gate_sigmoid(projection_row[at] + bias_ih[at] + recurrent_row[at] + bias_hh[at])
            reset = gate_row[:size]
            update = gate_row[size:2 * size]
            candidate = gate_row[2 * size:]
            candidate_hidden = hidden_candidate[row]
            recurrent_candidate = recurrent_row[2 * size:]
            for unit in range(size):
                candidate_hidden[unit] = recurrent_candidate[unit] + hidden_bias[unit]
            projection_candidate = projection_row[2 * size:]
            for unit in range(size):
                candidate[unit] = gate_tanh(projection_candidate[unit] + input_bias[unit]
                                            + reset[unit] * candidate_hidden[unit])
            hidden_row = hidden[entry]
            previous_row = previous_hidden[row]
            for unit in range(size):
                previous_row[unit] = hidden_row[unit]
            for unit in range(size):
                hidden_row[unit] = (1.0 - update[unit]) * candidate[unit] + update[unit] * previous_row[unit]
            out_row = out[row, out_column:out_column + size]
            for unit in range(size):
                out_row[unit] = hidden_row[unit]


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
            gate_row = gates[row]
            reset = gate_row[:size]
            update = gate_row[size:2 * size]
            candidate = gate_row[2 * size:]
            previous_row = previous_hidden[row]
            candidate_hidden = hidden_candidate[row]
            grad_row = grad_gates[row]
            grad_reset = grad_row[:size]
            grad_update = grad_row[size:2 * size]
            grad_candidate = grad_row[2 * size:]
            # dh' in step_gates' row as scratch (gathered rows, where needed, are written after every entry).
            gradient = step_gates[entry, :size]
            grad_hidden_row = grad_hidden[entry]
            grad_out_row = grad_out[row, out_column:out_column + size]
            for unit in range(size):
                gradient[unit] = grad_hidden_row[unit] + grad_out_row[unit]
            for unit in range(size):
                grad_candidate[unit] = gradient[unit] * (1.0 - update[unit]) * (1.0 - candidate[unit] * candidate[unit])
            for unit in range(size):
                grad_update[unit] = gradient[unit] * (previous_row[unit] - candidate[unit]) * update[unit] * (
                    1.0 - update[unit])
            for unit in range(size):
                grad_reset[unit] = grad_candidate[unit] * candidate_hidden[unit] * reset[unit] * (1.0 - reset[unit])
            carried = step_hidden[entry]
            for unit in range(size):
                carried[unit] = gradient[unit] * update[unit]
            hidden_gates_row = grad_hidden_gates[row]
            for at in range(2 * size):
                hidden_gates_row[at] = grad_row[at]
            hidden_candidate_gate = hidden_gates_row[2 * size:]
            for unit in range(size):
                hidden_candidate_gate[unit] = grad_candidate[unit] * reset[unit]
        _step_gates_product(grad_hidden_gates, step_gates, offsets, step, active, batch_stride, weight_hh,
                            grad_hidden)
        for entry in range(active):
            grad_hidden_row = grad_hidden[entry]
            carried = step_hidden[entry]
            for unit in range(size):
                grad_hidden_row[unit] += carried[unit]


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
