"""Trace once, replay many: record a Python function of scalar Values and evaluate it for new inputs in Numba."""

import numpy as np

from nbprop import backend
from nbprop.kernels.value import LEAF
from nbprop.scalar.tape import Tape, current_tape
from nbprop.scalar.value import Value

# Samples are cut into at most this many chunks (one scratch row each); a fixed count, not the thread
# count, so that the summed gradients of captured parameters are bit-identical on any machine.
MAX_CHUNKS = 256


def compile(function, n_inputs, example=None, tape=None):
    """Record `function(*inputs)` on `n_inputs` scalar Values once and return a `Program` that replays it.

    `function` returns a Value (or a number), or a list/tuple of them (several outputs). It may use Values
    made before the call, such as a model's parameters: these are captured, their current `.data` is read
    at every replay, and their `.grad` accumulates the gradient (summed over samples) like `backward()`.
    Captured Values must be leaves. Tracing runs on `tape` (default: the current tape) at the input values
    `example` (default zeros); control flow that depends on `.data` is frozen as it went for `example`.
    The trace's nodes are dropped from the tape afterwards.
    """
    if not isinstance(n_inputs, (int, np.integer)) or isinstance(n_inputs, bool) or n_inputs < 0:
        raise ValueError(f"compile: n_inputs must be a non-negative integer, got {n_inputs!r}")
    n_inputs = int(n_inputs)
    if example is None:
        example = np.zeros(n_inputs)
    example = np.asarray(example, dtype=np.float64)
    if example.shape != (n_inputs,):
        raise ValueError(f"compile: example must have shape ({n_inputs},), got {example.shape}")
    tape = current_tape() if tape is None else tape
    if tape.__class__ is not Tape:
        raise TypeError(f"compile: tape must be a Tape, got {type(tape).__name__}")
    tape._evaluate()
    mark = len(tape)
    with tape:
        try:
            inputs = [Value(number, tape) for number in example.tolist()]
            result = function(*inputs)
            single = not isinstance(result, (list, tuple))
            outputs = [_as_value(output, tape) for output in ([result] if single else result)]
            tape._evaluate()
            return Program(tape, mark, n_inputs, outputs, single)
        finally:
            tape.truncate(mark)


def _as_value(output, tape):
    if output.__class__ is Value:
        if output._tape is not tape:
            raise ValueError("compile: the function returned a Value of another tape")
        return output
    try:
        return Value(output, tape)
    except TypeError:
        raise TypeError(f"compile: the function must return Values or numbers, got {type(output).__name__}") from None


class Program:
    """A recorded scalar function: `forward(inputs)` and `value_and_grad(inputs)` for one sample or a batch.

    `inputs` is a 1-D array of `n_inputs` numbers (one sample) or a 2-D array with one sample per row,
    evaluated in parallel over the samples. Outputs are a float per sample for a function that returned
    one Value, else `n_outputs` numbers per sample.
    """

    def __init__(self, tape, mark, n_inputs, outputs, single):
        size = len(tape)
        codes = tape._codes_array[:size]
        lefts = tape._lefts_array[:size]
        rights = tape._rights_array[:size]
        output_nodes = np.array([output._index for output in outputs], np.int64)
        reached = np.zeros(size, np.uint8)
        backend.cpu.kernel("tape_reachable")(codes, lefts, rights, output_nodes, reached, size)
        # Only what the outputs depend on is kept: dead nodes cost time and could turn 0 * inf into NaN.
        operations = np.flatnonzero(reached[mark + n_inputs:]) + mark + n_inputs
        operands = np.concatenate([lefts[operations], rights[operations], output_nodes])
        captured = np.unique(operands[operands < mark])
        not_leaves = captured[codes[captured] != LEAF]
        if not_leaves.size:
            raise ValueError(
                f"compile: the function uses {not_leaves.size} Value(s) computed before tracing (nodes "
                f"{not_leaves[:5].tolist()}); only leaf Values (parameters) can be captured: compute them "
                f"inside the function or pass them as inputs"
            )
        kept = np.concatenate([captured, np.arange(mark, mark + n_inputs), operations])
        renumber = np.full(size, -1, np.int64)
        renumber[kept] = np.arange(kept.size)
        self._codes = np.ascontiguousarray(codes[kept])
        self._lefts = renumber[lefts[kept]]
        self._rights = renumber[rights[kept]]
        # Leaves made while tracing are constants: their value now.
        self._constants = np.where(self._codes == LEAF, tape._values[kept], tape._constants_array[kept])
        self._outputs = renumber[output_nodes]
        self._tape = tape
        self._captured = captured
        self._captured_limit = int(captured.max()) + 1 if captured.size else 0
        self._epoch = tape._epoch + 1  # compile truncates the trace away right after this
        self._scratch = {}
        self.n_inputs = n_inputs
        self.n_outputs = len(outputs)
        self.single_output = single

    def __len__(self):
        """The number of nodes replayed per sample (captured and input nodes included)."""
        return self._codes.shape[0]

    def __repr__(self):
        return (f"Program(n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, nodes={len(self)}, "
                f"captured={self._captured.size})")

    @property
    def captured(self):
        """The Values (leaves made before tracing, e.g. parameters) the program reads."""
        tape = self._tape
        values = []
        for index in self._captured.tolist():
            value = object.__new__(Value)
            value._tape, value._index, value._epoch = tape, index, tape._epoch
            values.append(value)
        return values

    def _rows(self, inputs, op):
        """The inputs as a C-contiguous float64 (batch, n_inputs) array, and whether one sample was given."""
        array = np.ascontiguousarray(inputs, dtype=np.float64)
        if array.ndim == 1 and array.shape[0] == self.n_inputs:
            return array.reshape(1, self.n_inputs), True
        if array.ndim == 2 and array.shape[1] == self.n_inputs:
            return array, False
        raise ValueError(
            f"Program.{op}: inputs must have shape ({self.n_inputs},) or (batch, {self.n_inputs}), got {array.shape}"
        )

    def _captured_values(self, op):
        """The current values of the captured leaves (failing if a truncate dropped them)."""
        tape = self._tape
        if tape._epoch != self._epoch and self._captured_limit > min(tape._marks[self._epoch:], default=len(tape)):
            raise RuntimeError(f"Program.{op}: a Tape.truncate dropped Values the program captured")
        return tape._values[self._captured]

    def _scratch_arrays(self, chunks):
        arrays = self._scratch.get(chunks)
        if arrays is None:
            shape = (chunks, len(self))
            arrays = self._scratch[chunks] = (np.empty(shape), np.empty(shape), np.empty((chunks, self._captured.size)))
        return arrays

    def _shape_outputs(self, results, one_sample):
        if self.single_output:
            results = results[:, 0]
        return results[0] if one_sample else results

    def forward(self, inputs):
        """The outputs for new inputs: a float or (n_outputs,) for one sample, (batch[, n_outputs]) for rows."""
        rows, one_sample = self._rows(inputs, "forward")
        fixed_values = self._captured_values("forward")
        batch = rows.shape[0]
        chunks = min(batch, MAX_CHUNKS)
        values_scratch = self._scratch_arrays(chunks)[0]
        results = np.empty((batch, self.n_outputs))
        backend.cpu.call("replay_forward", self._codes, self._lefts, self._rights, self._constants, self._outputs,
                         fixed_values, rows, values_scratch, results, work=batch * len(self))
        result = self._shape_outputs(results, one_sample)
        return float(result) if result.ndim == 0 else result

    __call__ = forward

    def value_and_grad(self, inputs, grad_outputs=None):
        """(outputs, gradients with respect to the inputs, shaped like `inputs`) for new inputs.

        Each sample backpropagates `grad_outputs` (shaped like the outputs; default ones, that is the
        gradient of the sum of the outputs). The captured Values' `.grad` accumulates the gradient summed
        over the samples, as if each sample's graph had been built and `backward()` called on it.
        """
        rows, one_sample = self._rows(inputs, "value_and_grad")
        fixed_values = self._captured_values("value_and_grad")
        batch = rows.shape[0]
        output_shape = self._shape_outputs(np.empty((batch, self.n_outputs)), one_sample).shape
        if grad_outputs is None:
            seeds = np.ones((batch, self.n_outputs))
        else:
            seeds = np.asarray(grad_outputs, dtype=np.float64)
            if seeds.shape != output_shape:
                raise ValueError(f"Program.value_and_grad: grad_outputs must have the outputs' shape "
                                 f"{output_shape}, got {seeds.shape}")
            seeds = np.ascontiguousarray(seeds.reshape(batch, self.n_outputs))
        chunks = min(batch, MAX_CHUNKS)
        values_scratch, grads_scratch, partials = self._scratch_arrays(chunks)
        results = np.empty((batch, self.n_outputs))
        input_grads = np.empty((batch, self.n_inputs))
        backend.cpu.call("replay_gradients", self._codes, self._lefts, self._rights, self._constants,
                         self._outputs, fixed_values, rows, seeds, values_scratch, grads_scratch, partials, results,
                         input_grads, work=batch * len(self))
        if self._captured.size:
            tape = self._tape
            tape._flush()
            tape._grads[self._captured] += partials.sum(axis=0)
        result = self._shape_outputs(results, one_sample)
        return (float(result) if result.ndim == 0 else result), (input_grads[0] if one_sample else input_grads)
