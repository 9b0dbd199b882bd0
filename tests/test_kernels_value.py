"""Scalar-engine kernels: each op code forward and backward, the reverse sweep's bookkeeping, replay variants."""

import math

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from nbprop.kernels import value as kernels
from nbprop.kernels._jit import PARALLEL_THRESHOLD

# code: (f(a, b, c) in float64 NumPy, d f / d a, d f / d b or None for unary ops, domain of a, domain of b).
OPS = {
    kernels.ADD: (lambda a, b, c: a + b, lambda a, b, c: 1.0, lambda a, b, c: 1.0, (-3, 3), (-3, 3)),
    kernels.SUB: (lambda a, b, c: a - b, lambda a, b, c: 1.0, lambda a, b, c: -1.0, (-3, 3), (-3, 3)),
    kernels.MUL: (lambda a, b, c: a * b, lambda a, b, c: b, lambda a, b, c: a, (-3, 3), (-3, 3)),
    kernels.DIV: (lambda a, b, c: a / b, lambda a, b, c: 1 / b, lambda a, b, c: -a / b**2, (-3, 3), (0.5, 3)),
    kernels.POW: (lambda a, b, c: a**b, lambda a, b, c: b * a ** (b - 1), lambda a, b, c: a**b * np.log(a),
                  (0.25, 3), (-2, 2)),
    kernels.ADD_CONSTANT: (lambda a, b, c: a + c, lambda a, b, c: 1.0, None, (-3, 3), None),
    kernels.CONSTANT_SUB: (lambda a, b, c: c - a, lambda a, b, c: -1.0, None, (-3, 3), None),
    kernels.MUL_CONSTANT: (lambda a, b, c: a * c, lambda a, b, c: c, None, (-3, 3), None),
    kernels.DIV_CONSTANT: (lambda a, b, c: a / c, lambda a, b, c: 1 / c, None, (-3, 3), None),
    kernels.CONSTANT_DIV: (lambda a, b, c: c / a, lambda a, b, c: -c / a**2, None, (0.5, 3), None),
    kernels.POW_CONSTANT: (lambda a, b, c: a**c, lambda a, b, c: c * a ** (c - 1), None, (0.25, 3), None),
    kernels.CONSTANT_POW: (lambda a, b, c: c**a, lambda a, b, c: c**a * np.log(c), None, (-2, 2), None),
    kernels.NEG: (lambda a, b, c: -a, lambda a, b, c: -1.0, None, (-3, 3), None),
    kernels.EXP: (lambda a, b, c: np.exp(a), lambda a, b, c: np.exp(a), None, (-3, 3), None),
    kernels.LOG: (lambda a, b, c: np.log(a), lambda a, b, c: 1 / a, None, (0.25, 3), None),
    kernels.TANH: (lambda a, b, c: np.tanh(a), lambda a, b, c: 1 - np.tanh(a) ** 2, None, (-3, 3), None),
    kernels.SIGMOID: (lambda a, b, c: 1 / (1 + np.exp(-a)), lambda a, b, c: np.exp(-a) / (1 + np.exp(-a)) ** 2,
                      None, (-3, 3), None),
    kernels.RELU: (lambda a, b, c: np.maximum(a, 0.0), lambda a, b, c: float(a > 0), None, (-3, 3), None),
}


def tape_of(nodes, capacity=None):
    """Arrays of a tape from (code, left, right, constant) rows."""
    capacity = capacity or len(nodes)
    codes, lefts, rights = (np.zeros(capacity, np.int64) for _ in range(3))
    constants = np.zeros(capacity)
    for index, (code, left, right, constant) in enumerate(nodes):
        codes[index], lefts[index], rights[index], constants[index] = code, left, right, constant
    return codes, lefts, rights, constants


def one_op(code, a, b, constant):
    """Forward and backward of node 2 = op(node 0, node 1) on a three-node tape."""
    binary = code <= kernels.LAST_BINARY
    codes, lefts, rights, constants = tape_of([
        (kernels.LEAF, 0, 0, a), (kernels.LEAF, 1, 1, b), (code, 0, 1 if binary else 0, constant),
    ])
    values, grads, reached = np.zeros(3), np.zeros(3), np.zeros(3, np.uint8)
    kernels.tape_forward(codes, lefts, rights, constants, values, 0, 3)
    kernels.tape_backward(codes, lefts, rights, constants, values, grads, reached, 2)
    assert not reached.any()
    return values[2], grads[0], grads[1]


@pytest.mark.parametrize("code", sorted(OPS))
@settings(max_examples=15)
@given(st.floats(0, 1), st.floats(0, 1), st.sampled_from([-1.5, -0.5, 0.5, 2.0, 3.0]))
def test_each_op_forward_and_backward(code, first_fraction, second_fraction, constant):
    function, first_derivative, second_derivative, (low, high), second_domain = OPS[code]
    a = low + (high - low) * first_fraction
    b = 0.0 if second_domain is None else second_domain[0] + (second_domain[1] - second_domain[0]) * second_fraction
    if code == kernels.RELU and abs(a) < 1e-3:
        a = 0.5
    if code == kernels.CONSTANT_POW:
        constant = abs(constant)  # a negative base to a real power is NaN
    result, grad_a, grad_b = one_op(code, a, b, constant)
    assert_close(result, function(a, b, constant), rtol=1e-14)
    assert_close(grad_a, first_derivative(a, b, constant), rtol=1e-12, atol=1e-15)
    if second_derivative is not None:
        assert_close(grad_b, second_derivative(a, b, constant), rtol=1e-12, atol=1e-15)
    else:
        assert grad_b == 0.0
    # Central differences in the first operand (away from relu's kink).
    step = 1e-6
    numeric = (one_op(code, a + step, b, constant)[0] - one_op(code, a - step, b, constant)[0]) / (2 * step)
    assert_close(grad_a, numeric, rtol=1e-5, atol=1e-6)


def test_extremes_follow_ieee():
    assert one_op(kernels.SIGMOID, 1000.0, 0.0, 0.0) == (1.0, 0.0, 0.0)
    assert one_op(kernels.SIGMOID, -1000.0, 0.0, 0.0) == (0.0, 0.0, 0.0)
    assert one_op(kernels.TANH, -1000.0, 0.0, 0.0) == (-1.0, 0.0, 0.0)
    assert one_op(kernels.LOG, 0.0, 0.0, 0.0)[:2] == (-math.inf, math.inf)
    assert math.isnan(one_op(kernels.LOG, -1.0, 0.0, 0.0)[0])
    assert one_op(kernels.EXP, 1000.0, 0.0, 0.0)[:2] == (math.inf, math.inf)
    assert one_op(kernels.DIV, 1.0, 0.0, 0.0)[0] == math.inf
    assert one_op(kernels.POW_CONSTANT, 0.0, 0.0, -1.0)[0] == math.inf
    assert one_op(kernels.POW_CONSTANT, 0.0, 0.0, 0.0)[:2] == (1.0, 0.0)  # 0 ** 0 = 1, no NaN gradient
    assert one_op(kernels.POW, 0.0, 2.0, 0.0) == (0.0, 0.0, 0.0)  # d/db at base 0 is 0, not 0 * -inf
    assert one_op(kernels.RELU, 0.0, 0.0, 0.0) == (0.0, 0.0, 0.0)


def test_backward_marks_only_what_the_root_reaches_and_follows_micrograd():
    # 0, 1 leaves; 2 = 0 * 1; 3 = 2 + 0 (root); 4 = 1 * 5.0 (not reached).
    codes, lefts, rights, constants = tape_of([
        (kernels.LEAF, 0, 0, 2.0), (kernels.LEAF, 1, 1, 3.0), (kernels.MUL, 0, 1, 0.0), (kernels.ADD, 2, 0, 0.0),
        (kernels.MUL_CONSTANT, 1, 1, 5.0),
    ], capacity=8)
    values, reached = np.zeros(8), np.zeros(8, np.uint8)
    kernels.tape_forward(codes, lefts, rights, constants, values, 0, 5)
    assert values[:5].tolist() == [2.0, 3.0, 6.0, 8.0, 15.0]
    grads = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 0, 0, 0])
    kernels.tape_backward(codes, lefts, rights, constants, values, grads, reached, 3)
    # Root 1, interior node 2 recomputed (1), leaves accumulate, node 4 untouched.
    assert grads[:5].tolist() == [10.0 + 3.0 + 1.0, 20.0 + 2.0, 1.0, 1.0, 50.0]
    assert not reached.any()
    reached_from = np.zeros(8, np.uint8)
    kernels.tape_reachable(codes, lefts, rights, np.array([2], np.int64), reached_from, 5)
    assert reached_from[:5].tolist() == [1, 1, 1, 0, 0]


def program_arrays(rng, nodes, fixed, input_count):
    """A random straight-line program: `fixed` captured leaves, inputs, then `nodes` random bounded ops."""
    leaf_count = fixed + input_count
    rows = [(kernels.LEAF, index, index, 0.0) for index in range(leaf_count)]
    safe = [kernels.ADD, kernels.SUB, kernels.MUL, kernels.ADD_CONSTANT, kernels.MUL_CONSTANT, kernels.TANH,
            kernels.SIGMOID, kernels.RELU, kernels.NEG, kernels.CONSTANT_SUB]
    for index in range(leaf_count, leaf_count + nodes):
        code = safe[rng.integers(len(safe))]
        left = int(rng.integers(index))
        right = int(rng.integers(index)) if code <= kernels.LAST_BINARY else left
        rows.append((code, left, right, float(rng.uniform(-1, 1))))
    # Squash with tanh so long products stay finite.
    rows.append((kernels.TANH, leaf_count + nodes - 1, leaf_count + nodes - 1, 0.0))
    return tape_of(rows)


def run_replay(kernel, arrays, fixed_values, inputs, grad_outputs, outputs, chunks):
    node_count = arrays[0].shape[0]
    batch = inputs.shape[0]
    values, grads = np.empty((chunks, node_count)), np.empty((chunks, node_count))
    partials = np.empty((chunks, fixed_values.shape[0]))
    results, input_grads = np.empty((batch, outputs.shape[0])), np.empty(inputs.shape)
    kernel(*arrays, outputs, fixed_values, inputs, grad_outputs, values, grads, partials, results, input_grads)
    return results, input_grads, partials.sum(axis=0)


def test_replay_equals_the_tape_kernels_and_parallel_equals_serial():
    rng = np.random.default_rng(0)
    fixed, input_count, batch = 3, 2, 400
    arrays = program_arrays(rng, 300, fixed, input_count)
    node_count = arrays[0].shape[0]
    assert batch * node_count >= PARALLEL_THRESHOLD
    outputs = np.array([node_count - 1, node_count // 2], np.int64)
    fixed_values = rng.normal(size=fixed)
    inputs = rng.normal(size=(batch, input_count))
    grad_outputs = rng.normal(size=(batch, 2))
    serial = run_replay(kernels.replay_gradients.serial, arrays, fixed_values, inputs, grad_outputs, outputs, 64)
    parallel = run_replay(kernels.replay_gradients.parallel, arrays, fixed_values, inputs, grad_outputs, outputs, 64)
    again = run_replay(kernels.replay_gradients.parallel, arrays, fixed_values, inputs, grad_outputs, outputs, 64)
    for first, second, third in zip(serial, parallel, again):
        assert np.array_equal(first, second) and np.array_equal(second, third)
    # Per-sample results do not depend on the chunking; the captured sum does only by rounding.
    other = run_replay(kernels.replay_gradients.serial, arrays, fixed_values, inputs, grad_outputs, outputs, 7)
    assert np.array_equal(other[0], serial[0]) and np.array_equal(other[1], serial[1])
    assert_close(other[2], serial[2], rtol=1e-12)
    forward = np.empty((batch, 2))
    kernels.replay_forward.parallel(*arrays, outputs, fixed_values, inputs, np.empty((64, node_count)), forward)
    assert np.array_equal(forward, serial[0])
    # Sample by sample on the eager tape kernels, with the same seeds on the outputs.
    codes, lefts, rights, constants = arrays
    expected_fixed = np.zeros(fixed)
    for sample in (0, 17, batch - 1):
        values = np.zeros(node_count)
        values[:fixed] = fixed_values
        values[fixed:fixed + input_count] = inputs[sample]
        kernels.tape_forward(codes, lefts, rights, constants, values, fixed + input_count, node_count)
        assert values[outputs].tolist() == serial[0][sample].tolist()
        grads = np.zeros(node_count)
        for output, seed in zip(outputs, grad_outputs[sample]):
            single = np.zeros(node_count)
            kernels.tape_backward(codes, lefts, rights, constants, values, single, np.zeros(node_count, np.uint8),
                                  output)
            grads += seed * single
        assert_close(serial[1][sample], grads[fixed:fixed + input_count], rtol=1e-10, atol=1e-13)
        expected_fixed += grads[:fixed]
    assert np.isfinite(serial[2]).all() and expected_fixed.shape == serial[2].shape


def test_replay_of_an_empty_batch():
    arrays = program_arrays(np.random.default_rng(1), 5, 1, 1)
    results, input_grads, partials = run_replay(
        kernels.replay_gradients.serial, arrays, np.ones(1), np.empty((0, 1)), np.empty((0, 1)),
        np.array([6], np.int64), 0,
    )
    assert results.shape == (0, 1) and input_grads.shape == (0, 1) and partials.tolist() == [0.0]
