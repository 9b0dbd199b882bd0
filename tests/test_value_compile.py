"""Compiled replay of the scalar engine: equal to eager Values for new inputs, captured parameters, batches."""

import math
import random

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from test_value import build, eager, steps

from nbprop import value
from nbprop.value import Tape, Value


@settings(max_examples=25)
@given(st.integers(1, 4), steps, st.integers(0, 2**32 - 1))
def test_compiled_replay_equals_eager_for_new_inputs(n_inputs, program, seed):
    replay = value.compile(lambda *inputs: build(inputs, program), n_inputs)
    rows = np.random.default_rng(seed).uniform(-2, 2, size=(5, n_inputs))
    outputs, grads = replay.value_and_grad(rows)
    assert np.array_equal(replay.forward(rows), outputs, equal_nan=True)
    for row, output, grad in zip(rows, outputs, grads):
        with Tape().scope():
            expected, expected_grads = eager(row.tolist(), program)
        assert_close(output, expected, rtol=1e-14, atol=0)
        assert_close(grad, np.array(expected_grads), rtol=1e-12, atol=1e-14)
        single_output, single_grad = replay.value_and_grad(row)
        assert single_output == output and np.array_equal(single_grad, grad, equal_nan=True)


def test_compiled_replaycaptures_parameters_and_accumulates_their_gradients():
    tape = Tape()
    with tape:
        weights = [Value(0.5), Value(-1.5)]
        bias = Value(0.25)
    program = value.compile(lambda x0, x1: ((weights[0] * x0 + weights[1] * x1 + bias).tanh(), x0 * x1), 2, tape=tape)
    assert (program.n_inputs, program.n_outputs, len(tape)) == (2, 2, 3)
    assert [v.index for v in program.captured] == [0, 1, 2]
    rows = np.array([[1.0, 2.0], [-0.5, 0.25], [3.0, -1.0]])
    seeds = np.array([[1.0, 0.0], [2.0, 1.0], [0.5, 0.0]])
    outputs, input_grads = program.value_and_grad(rows, seeds)
    expected_params = np.zeros(3)
    for row, seed, output, input_grad in zip(rows, seeds, outputs, input_grads):
        with tape.scope():
            x0, x1 = Value(row[0]), Value(row[1])
            hidden = (weights[0] * x0 + weights[1] * x1 + bias).tanh()
            total = seed[0] * hidden + seed[1] * (x0 * x1)
            for parameter in (*weights, bias):
                parameter.grad = 0
            total.backward()
            assert_close(output, np.array([hidden.data, row[0] * row[1]]))
            assert_close(input_grad, np.array([x0.grad, x1.grad]))
            expected_params += [p.grad for p in (*weights, bias)]
    for parameter in (*weights, bias):
        parameter.grad = 0
    program.value_and_grad(rows, seeds)
    assert_close(np.array([p.grad for p in (*weights, bias)]), expected_params)
    weights[0].data = 2.0  # replays read the parameters' current values
    assert_close(program.forward(np.array([1.0, 0.0]))[0], math.tanh(2.25))


def test_parameters_passed_as_inputs_get_their_gradients_returned():
    def neuron(w0, w1, b, x0, x1):
        return (w0 * x0 + w1 * x1 + b).relu()

    program = value.compile(neuron, 5)
    params_and_samples = np.array([[0.5, -1.0, 0.1, 2.0, 0.5], [0.5, -1.0, 0.1, -1.0, 0.5]])
    outputs, grads = program.value_and_grad(params_and_samples)
    assert_close(outputs, np.array([0.6, 0.0]))
    assert_close(grads, np.array([[2.0, 0.5, 1.0, 0.5, -1.0], [0.0] * 5]))


def test_compiled_batch_is_deterministic_and_parallel_matches_serial():
    random.seed(0)
    model = value.MLP(2, [16, 16, 1])
    program = value.compile(lambda x0, x1: model([x0, x1]), 2)
    rows = np.random.default_rng(0).normal(size=(600, 2))  # 600 samples x ~1000 nodes: the parallel kernel
    model.zero_grad()
    first = program.value_and_grad(rows)
    first_params = [p.grad for p in model.parameters()]
    model.zero_grad()
    second = program.value_and_grad(rows)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first_params == [p.grad for p in model.parameters()]
    for index in (0, 123, 599):
        single = program.value_and_grad(rows[index])
        assert single[0] == first[0][index] and np.array_equal(single[1], first[1][index])


def test_compile_drops_its_trace_and_dead_nodes():
    tape = value.current_tape()
    before = len(tape)
    program = value.compile(lambda x: [x * 2, (x - 1).log()][0], 1)
    assert len(tape) == before
    assert len(program) == 2  # the input and x * 2: the unused log is gone (its 0 * inf would be NaN)
    output, grad = program.value_and_grad(np.array([1.0]))
    assert output == 2.0 and grad.tolist() == [2.0]
    constant = value.compile(lambda: 3.5, 0)
    assert constant.forward(np.empty(0)) == 3.5 and constant.forward(np.empty((4, 0))).tolist() == [3.5] * 4


def test_compile_errors():
    hidden = Value(1.0) * 2
    with pytest.raises(ValueError, match="computed before tracing"):
        value.compile(lambda x: x * hidden, 1)
    with pytest.raises(TypeError, match="must return Values or numbers, got str"):
        value.compile(lambda x: "x", 1)
    with pytest.raises(ValueError, match="n_inputs must be a non-negative integer"):
        value.compile(lambda x: x, -1)
    with pytest.raises(ValueError, match=r"example must have shape \(2,\)"):
        value.compile(lambda x, y: x, 2, example=[1.0])
    program = value.compile(lambda x, y: x * y, 2)
    with pytest.raises(ValueError, match=r"inputs must have shape \(2,\) or \(batch, 2\), got \(3,\)"):
        program.forward(np.zeros(3))
    with pytest.raises(ValueError, match=r"grad_outputs must have the outputs' shape \(4,\), got \(3,\)"):
        program.value_and_grad(np.zeros((4, 2)), np.ones(3))
    tape = Tape()
    with tape:
        weight = Value(1.0)
    scaled = value.compile(lambda x: x * weight, 1, tape=tape)
    tape.reset()
    with pytest.raises(RuntimeError, match="dropped Values the program captured"):
        scaled.forward(np.ones(1))
