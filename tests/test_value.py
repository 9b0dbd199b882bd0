"""The scalar engine: Value against the Tensor engine, PyTorch and micrograd; tape memory; compiled replay."""

import math
import random

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop
from nbprop import value
from nbprop.value import Tape, Value

# Each op of a random expression: name -> f(a, b, number) over Values, 0-d Tensors or PyTorch tensors
# alike. Logs, divisors and powers take operands made positive or kept off zero, so the expressions stay
# finite, while every op code of the tape is exercised.
OPS = {
    "add": lambda a, b, c: a + b,
    "sub": lambda a, b, c: a - b,
    "mul": lambda a, b, c: a * b,
    "div": lambda a, b, c: a / (b * b + 0.5),
    "pow": lambda a, b, c: (a * a + 0.5) ** b.tanh(),
    "add_number": lambda a, b, c: a + c,
    "sub_number": lambda a, b, c: a - c,
    "number_add": lambda a, b, c: c + a,
    "number_sub": lambda a, b, c: c - a,
    "mul_number": lambda a, b, c: a * c,
    "number_mul": lambda a, b, c: c * a,
    "div_number": lambda a, b, c: a / (abs(c) + 0.25),
    "number_div": lambda a, b, c: c / (a * a + 0.5),
    "pow_number": lambda a, b, c: (a * a + 0.25) ** c,
    "pow_integer": lambda a, b, c: a ** 3 if c > 0 else a ** 2,
    "number_pow": lambda a, b, c: (abs(c) + 0.5) ** a.tanh(),
    "neg": lambda a, b, c: -a,
    "exp": lambda a, b, c: (a.tanh() * 2).exp(),
    "log": lambda a, b, c: (a * a + 0.1).log(),
    "tanh": lambda a, b, c: a.tanh(),
    "sigmoid": lambda a, b, c: (a * 3).sigmoid(),
    "relu": lambda a, b, c: a.relu(),
}

numbers_ = st.floats(-2.0, 2.0, allow_nan=False).filter(lambda x: abs(x) > 1e-3)
steps = st.lists(
    st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 1000), st.integers(0, 1000), numbers_),
    min_size=1, max_size=14,
)
inputs_ = st.lists(numbers_, min_size=1, max_size=4)


def build(inputs, program):
    """Apply the ops of `program` to a pool that starts with `inputs`; every result joins the pool (so later
    ops share earlier subexpressions); the output sums the new results, with a tanh to keep it moderate."""
    pool = list(inputs)
    for name, first, second, number in program:
        pool.append(OPS[name](pool[first % len(pool)], pool[second % len(pool)], number))
    total = pool[len(inputs)]
    for term in pool[len(inputs) + 1:]:
        total = total + term.tanh()
    return total


def eager(numbers, program):
    leaves = [Value(x) for x in numbers]
    output = build(leaves, program)
    output.backward()
    return output.data, [leaf.grad for leaf in leaves]


def tensor_engine(numbers, program):
    leaves = [nbprop.tensor(x, dtype=nbprop.float64, requires_grad=True) for x in numbers]
    output = build(leaves, program)
    output.backward()
    return output.item(), [0.0 if leaf.grad is None else leaf.grad.item() for leaf in leaves]


@settings(max_examples=40)
@given(inputs_, steps)
def test_random_expressions_equal_the_tensor_engine(numbers, program):
    with Tape().scope():
        data, grads = eager(numbers, program)
    expected_data, expected_grads = tensor_engine(numbers, program)
    assert_close(data, expected_data, rtol=1e-12, atol=1e-12)
    assert_close(np.array(grads), np.array(expected_grads), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@settings(max_examples=30)
@given(inputs_, steps)
def test_random_expressions_equal_pytorch(numbers, program):
    import torch

    with Tape().scope():
        data, grads = eager(numbers, program)
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in numbers]
    output = build(leaves, program)
    output.backward()
    assert_close(data, output.item(), rtol=1e-12, atol=1e-12)
    expected = [0.0 if leaf.grad is None else leaf.grad.item() for leaf in leaves]
    assert_close(np.array(grads), np.array(expected), rtol=1e-10, atol=1e-12)


@settings(max_examples=10)
@given(st.floats(-1.0, 1.0), st.floats(0.5, 1.5))
def test_deep_chain_with_shared_subexpressions_equals_the_tensor_engine(start, scale):
    def chain(x, y):
        for step in range(200):
            shared = (x * scale).tanh()
            x = shared + shared * y.sigmoid() - 0.1 * (shared * shared + 1).log() if step % 2 else shared - y / 3
        return x

    with Tape().scope():
        x, y = Value(start), Value(0.3)
        out = chain(x, y)
        out.backward()
        got = (out.data, x.grad, y.grad)
    tx = nbprop.tensor(start, dtype=nbprop.float64, requires_grad=True)
    ty = nbprop.tensor(0.3, dtype=nbprop.float64, requires_grad=True)
    tout = chain(tx, ty)
    tout.backward()
    assert_close(np.array(got), np.array([tout.item(), tx.grad.item(), ty.grad.item()]), rtol=1e-10, atol=1e-12)


def test_micrograd_sanity_example_values():
    # micrograd's test_engine.py::test_more_ops, whose PyTorch results are these numbers.
    a, b = Value(-4.0), Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    assert_close(g.data, 24.70408163265306)
    assert_close(a.grad, 138.83381924198252)
    assert_close(b.grad, 645.5772594752186)


def test_semantics_follow_micrograd():
    from micrograd.engine import Value as MicrogradValue

    for make in (Value, MicrogradValue):
        x, w = make(1.5), make(-2.0)
        hidden = x * w
        first = hidden * hidden + x
        first.backward()
        assert first.grad == 1
        assert hidden.grad == 2 * (1.5 * -2.0)
        # Leaves accumulate over a second graph until zeroed by hand.
        second = (x * w).relu() + w * 3
        second.backward()
        assert x.grad == 2 * -3.0 * -2.0 + 1
        assert w.grad == 2 * -3.0 * 1.5 + 3
        x.grad = 0
        w.grad = 0
        (x * w).backward()
        assert (x.grad, w.grad) == (-2.0, 1.5)


def test_interior_gradients_are_recomputed_not_compounded():
    x = Value(2.0)
    hidden = x * 3.0
    out = hidden * hidden
    out.backward()
    out.backward()
    assert hidden.grad == 2 * 6.0  # micrograd would hold 24 here and give x 36 + 3 * 24 = 108
    assert x.grad == 2 * (3.0 * 12.0)


def test_data_and_grad_write_the_tape():
    x = Value(1.0)
    y = x * 2
    x.data = 5.0  # y was recorded from x = 1, as micrograd computes eagerly
    assert (x.data, y.data) == (5.0, 2.0)
    z = x * 2
    assert z.data == 10.0
    z.grad = 7.5
    assert z.grad == 7.5
    assert isinstance(x.data, float) and isinstance(x.grad, float)
    with pytest.raises(TypeError, match="Value.data: must be a real number"):
        x.data = "3"


def test_extremes_are_ieee_without_exceptions():
    assert Value(1000.0).sigmoid().data == 1.0
    assert Value(-1000.0).sigmoid().data == 0.0
    for number in (1000.0, -1000.0):
        for op in ("sigmoid", "tanh"):
            x = Value(number)
            getattr(x, op)().backward()
            assert x.grad == 0.0
    assert Value(1000.0).tanh().data == 1.0
    assert Value(0.0).log().data == -math.inf
    assert math.isnan(Value(-1.0).log().data)
    assert Value(1000.0).exp().data == math.inf
    assert Value(-1000.0).exp().data == 0.0
    assert (Value(1.0) / 0).data == math.inf
    assert (1 / Value(0.0)).data == math.inf
    assert math.isnan((Value(0.0) / Value(0.0)).data)
    assert (Value(0.0) ** -1).data == math.inf
    assert math.isnan((Value(-8.0) ** (1 / 3)).data)
    x = Value(0.0)
    x.log().backward()
    assert x.grad == math.inf
    assert Value(float("nan")).relu().data != Value(float("nan")).relu().data


def test_comparisons_read_data_and_identity_equality():
    a, b = Value(1.0), Value(2.0)
    assert a < b and a <= b and b > a and b >= a and a < 1.5 and 1.5 > a and not a > 1
    assert isinstance(a < b, bool)
    same = a
    assert a == same and a != Value(1.0)
    assert len({a, b, a}) == 2
    assert float(b) == 2.0 and repr(a) == "Value(data=1.0, grad=0.0)"
    assert (a + b)._op == "+" and {v.index for v in (a * b)._prev} == {a.index, b.index} and a._prev == set()


def test_numbers_of_every_kind_mix_in():
    x = Value(2.0)
    for number in (3, 3.0, True, np.float64(3.0), np.int64(3), np.float32(3.0)):
        assert (x * number).data == 2.0 * float(number)
        assert (number - x).data == float(number) - 2.0
        assert (x ** number).data == 2.0 ** float(number)
        assert (number ** x).data == float(number) ** 2.0
    assert (x ** Value(3.0)).data == 8.0


def test_bad_operands_raise():
    x = Value(2.0)
    with pytest.raises(TypeError, match="unsupported operand"):
        x + "1"
    with pytest.raises(TypeError, match="unsupported operand"):
        None - x
    with pytest.raises(TypeError, match="Value: data must be a real number, got str"):
        Value("1.0")
    with pytest.raises(TypeError, match="Value: data must be a real number, got Value"):
        Value(x)
    with pytest.raises(TypeError, match="modulo"):
        pow(x, 2, 3)
    with Tape():
        other = Value(1.0)
    with pytest.raises(ValueError, match="different tapes"):
        x + other


def test_a_million_node_graph_backpropagates():
    tape = Tape(capacity=16)
    x = Value(1.0, tape)
    out = x
    for _ in range(500_000):
        out = out * 1.000001 + 1e-7
    out.backward()
    assert len(tape) == 1_000_001 and tape.capacity >= 1_000_001
    assert_close(x.grad, 1.000001**500_000, rtol=1e-9)
    assert_close(out.data, 1.000001**500_000 + 1e-7 * (1.000001**500_000 - 1) / (1.000001 - 1), rtol=1e-9)


def test_truncate_reuses_memory_and_rejects_dropped_values():
    tape = Tape()
    with tape:
        weight = Value(0.5)
    parameters = len(tape)
    capacities = set()
    for _step in range(5):
        with tape.scope():
            loss = (weight * 3.0 - 1.0) ** 2
            loss.backward()
            inside = loss
        assert len(tape) == parameters
        capacities.add(tape.capacity)
    assert capacities == {tape.capacity}
    with pytest.raises(RuntimeError, match="dropped by Tape.truncate"):
        _ = inside.data
    with pytest.raises(RuntimeError, match="dropped by Tape.truncate"):
        inside * 2
    assert weight.grad == 5 * 2 * (0.5 * 3 - 1) * 3  # accumulated: never zeroed
    survivor = weight * 1.0
    tape.truncate(len(tape))
    assert survivor.data == 0.5  # below every later mark: still valid
    with pytest.raises(ValueError, match=r"Tape.truncate: length must be an integer in \[0, 2\]"):
        tape.truncate(3)
    tape.reset()
    assert len(tape) == 0
    with pytest.raises(RuntimeError, match="dropped"):
        _ = weight.grad


def test_tape_context_makes_it_current():
    outer = value.current_tape()
    with Tape() as tape:
        assert value.current_tape() is tape and Value(1.0).tape is tape
        with Tape() as inner, tape:
            assert value.current_tape() is tape
        assert value.current_tape() is tape
        with inner:
            assert Value(1.0).tape is inner
    assert value.current_tape() is outer


def test_mlp_matches_micrograd():
    from micrograd import nn as micrograd_nn

    random.seed(3)
    reference = micrograd_nn.MLP(2, [16, 16, 1])
    random.seed(3)
    model = value.MLP(2, [16, 16, 1])
    assert len(model.parameters()) == len(reference.parameters()) == 337
    assert repr(model) == repr(reference)
    for sample, target in (([0.5, -1.0], 1.0), ([2.0, 0.25], -1.0)):
        loss = (1 + -target * model(sample)).relu() + 1e-4 * sum(p * p for p in model.parameters())
        loss.backward()
        expected = (1 + -target * reference(sample)).relu() + 1e-4 * sum(p * p for p in reference.parameters())
        expected.backward()
        assert_close(loss.data, expected.data)
    assert_close(np.array([p.grad for p in model.parameters()]), np.array([p.grad for p in reference.parameters()]))
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
    with pytest.raises(ValueError, match="Neuron: expected 2 inputs, got 3"):
        model([1.0, 2.0, 3.0])


def test_public_names_survive_the_move_to_nbprop_scalar():
    import importlib

    import nbprop.scalar
    import nbprop.value as imported

    # `nbprop.value` is the same module as the package nbprop/scalar/, whichever way it is reached.
    assert value is imported is nbprop.value is nbprop.scalar is importlib.import_module("nbprop.value")
    assert nbprop.Value is Value is nbprop.scalar.value.Value
    assert value.Tape is Tape is nbprop.scalar.tape.Tape
    assert value.compile is nbprop.scalar.program.compile and value.Program is nbprop.scalar.program.Program
    assert value.MLP is nbprop.scalar.nn.MLP and value.current_tape is nbprop.scalar.tape.current_tape
    assert set(value.__all__) == {"MLP", "Layer", "Module", "Neuron", "Program", "Tape", "Value", "compile",
                                  "current_tape"}
    assert all(callable(getattr(value, name)) for name in value.__all__)
