"""Elementwise ops: forward against NumPy, gradients by gradcheck and against PyTorch, promotion, extremes."""

import operator

import numpy as np
import pytest
import scipy.special
from helpers import arrays, assert_close, broadcast_pairs, leaf, shapes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop

FLOATS = [np.float32, np.float64]

# name: (nbprop function, NumPy reference, PyTorch function name, low, high). Values are drawn in
# [low, high]; the gradient checks keep away from the kinks (0 for abs and relu, the clamp bounds).
UNARY = {
    "neg": (operator.neg, np.negative, "neg", -3.0, 3.0),
    "abs": (abs, np.abs, "abs", -3.0, 3.0),
    "exp": (nbprop.exp, np.exp, "exp", -3.0, 3.0),
    "log": (nbprop.log, np.log, "log", 0.125, 3.0),
    "sqrt": (nbprop.sqrt, np.sqrt, "sqrt", 0.125, 3.0),
    "rsqrt": (nbprop.rsqrt, lambda a: 1 / np.sqrt(a), "rsqrt", 0.125, 3.0),
    "sin": (nbprop.sin, np.sin, "sin", -3.0, 3.0),
    "cos": (nbprop.cos, np.cos, "cos", -3.0, 3.0),
    "tanh": (nbprop.tanh, np.tanh, "tanh", -3.0, 3.0),
    "sigmoid": (nbprop.sigmoid, lambda a: 1 / (1 + np.exp(-a)), "sigmoid", -3.0, 3.0),
    "relu": (nbprop.relu, lambda a: np.maximum(a, 0), "relu", -3.0, 3.0),
    "clamp": (lambda x: x.clamp(-1.0, 1.5), lambda a: np.clip(a, -1.0, 1.5), "clamp", -3.0, 3.0),
    "erf": (nbprop.erf, scipy.special.erf, "erf", -3.0, 3.0),
    "expm1": (nbprop.expm1, np.expm1, "expm1", -3.0, 3.0),
    "log1p": (nbprop.log1p, np.log1p, "log1p", -0.875, 3.0),
}
TORCH_UNARY_ARGUMENTS = {"clamp": (-1.0, 1.5)}

# name: (nbprop function, NumPy reference, PyTorch function name, (low, high) of a, (low, high) of b).
BINARY = {
    "add": (operator.add, np.add, "add", (-3.0, 3.0), (-3.0, 3.0)),
    "sub": (operator.sub, np.subtract, "sub", (-3.0, 3.0), (-3.0, 3.0)),
    "mul": (operator.mul, np.multiply, "mul", (-3.0, 3.0), (-3.0, 3.0)),
    "div": (operator.truediv, np.divide, "div", (-3.0, 3.0), (0.5, 3.0)),
    "pow": (operator.pow, np.power, "pow", (0.25, 3.0), (-2.0, 2.0)),
    "maximum": (nbprop.maximum, np.maximum, "maximum", (-3.0, 3.0), (-3.0, 3.0)),
    "minimum": (nbprop.minimum, np.minimum, "minimum", (-3.0, 3.0), (-3.0, 3.0)),
    "atan2": (nbprop.atan2, np.arctan2, "atan2", (-3.0, 3.0), (-3.0, 3.0)),
    "hypot": (nbprop.hypot, np.hypot, "hypot", (0.25, 3.0), (-3.0, -0.25)),
    # a / b in (2.11, 2.75): no jump of floor(a / b) within reach of central differences.
    "remainder": (operator.mod, np.remainder, "remainder", (2.25, 2.75), (1.0, 1.0625)),
}


def _away_from_kinks(name, array):
    """Move values off the points where a function is not differentiable (central differences fail there)."""
    if name in ("abs", "relu"):
        return np.where(np.abs(array) < 0.1, 0.5, array)
    if name == "clamp":
        return np.where((np.abs(array + 1.0) < 0.1) | (np.abs(array - 1.5) < 0.1), 0.25, array)
    return array


def _random(shape, low, high, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def _grad_output(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape)


# ------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=12)
@given(data=st.data())
def test_unary_forward_matches_numpy(name, dtype, data):
    function, reference, _, low, high = UNARY[name]
    array = data.draw(arrays(data.draw(shapes), dtype, low, high))
    result = function(nbprop.tensor(array))
    assert result.dtype == dtype
    assert result.shape == array.shape
    assert_close(result, reference(array.astype(np.float64)).astype(dtype), dtype=dtype)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("dtype", FLOATS)
@settings(max_examples=15)
@given(data=st.data())
def test_binary_forward_matches_numpy_with_broadcasting(name, dtype, data):
    function, reference, _, (low_a, high_a), (low_b, high_b) = BINARY[name]
    shape_a, shape_b = data.draw(broadcast_pairs).input_shapes
    a = data.draw(arrays(shape_a, dtype, low_a, high_a))
    b = data.draw(arrays(shape_b, dtype, low_b, high_b))
    result = function(nbprop.tensor(a), nbprop.tensor(b))
    expected = reference(a.astype(np.float64), b.astype(np.float64))
    assert result.dtype == dtype
    assert result.shape == expected.shape
    assert_close(result, expected.astype(dtype), dtype=dtype)


@settings(max_examples=25)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, min_side=0, max_side=4),
       data=st.data())
def test_where_forward_broadcasts_three_ways(shapes, data):
    condition_shape, shape_a, shape_b = shapes.input_shapes
    condition = data.draw(hnp.arrays(np.bool_, condition_shape))
    a = data.draw(arrays(shape_a))
    b = data.draw(arrays(shape_b))
    result = nbprop.where(nbprop.tensor(condition), nbprop.tensor(a), nbprop.tensor(b))
    assert_close(result, np.where(condition, a, b))


COMPARISONS = {
    "eq": (operator.eq, np.equal), "ne": (operator.ne, np.not_equal), "lt": (operator.lt, np.less),
    "le": (operator.le, np.less_equal), "gt": (operator.gt, np.greater), "ge": (operator.ge, np.greater_equal),
}


@pytest.mark.parametrize("name", COMPARISONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@settings(max_examples=10)
@given(pair=broadcast_pairs, data=st.data())
def test_comparisons_give_bool_tensors_without_grad(name, dtype, pair, data):
    function, reference = COMPARISONS[name]
    # Small integers so that ties are frequent.
    values = st.integers(-2, 2)
    a = data.draw(hnp.arrays(np.int64, pair.input_shapes[0], elements=values)).astype(dtype)
    b = data.draw(hnp.arrays(np.int64, pair.input_shapes[1], elements=values)).astype(dtype)
    requires_grad = np.dtype(dtype).kind == "f"
    result = function(nbprop.tensor(a, requires_grad=requires_grad), nbprop.tensor(b))
    assert result.dtype == nbprop.bool
    assert not result.requires_grad and result.grad_fn is None
    np.testing.assert_array_equal(result.numpy(), reference(a, b))


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons_with_python_numbers(name):
    function, reference = COMPARISONS[name]
    array = np.array([-1, 0, 1, 2])
    np.testing.assert_array_equal(function(nbprop.tensor(array), 1).numpy(), reference(array, 1))
    np.testing.assert_array_equal(function(nbprop.tensor(array), 0.5).numpy(), reference(array, 0.5))
    np.testing.assert_array_equal(function(1, nbprop.tensor(array)).numpy(), reference(1, array))


@settings(max_examples=30)
@given(pair=broadcast_pairs, data=st.data())
def test_logical_operators_on_bools(pair, data):
    a = data.draw(hnp.arrays(np.bool_, pair.input_shapes[0]))
    b = data.draw(hnp.arrays(np.bool_, pair.input_shapes[1]))
    x, y = nbprop.tensor(a), nbprop.tensor(b)
    for result, expected in ((x & y, a & b), (x | y, a | b), (x ^ y, a ^ b), (~x, ~a)):
        assert result.dtype == nbprop.bool
        np.testing.assert_array_equal(result.numpy(), expected)


def test_logical_operators_reject_non_bool():
    numbers = nbprop.tensor([1, 2])
    with pytest.raises(TypeError, match="logical_and"):
        numbers & nbprop.tensor([True, False])
    with pytest.raises(TypeError, match="logical_not"):
        ~numbers  # noqa: B018
    with pytest.raises(TypeError, match="logical_xor"):
        nbprop.tensor([1.0]) ^ nbprop.tensor([1.0])


def test_bool_arithmetic_follows_pytorch():
    true_false = nbprop.tensor([True, False])
    false_false = nbprop.tensor([False, False])
    assert (true_false + false_false).dtype == nbprop.bool
    np.testing.assert_array_equal((true_false + false_false).numpy(), [True, False])
    np.testing.assert_array_equal((true_false * true_false).numpy(), [True, False])
    assert (true_false + 1).dtype == nbprop.int64
    np.testing.assert_array_equal((true_false + 1).numpy(), [2, 1])
    assert (true_false * 2.5).dtype == nbprop.float32
    with pytest.raises(TypeError, match="sub: subtraction of boolean"):
        true_false - false_false
    with pytest.raises(TypeError, match="neg: negation of a boolean"):
        -true_false  # noqa: B018


# --------------------------------------------------------------------------- scalars and promotion


@pytest.mark.parametrize(("expression", "reference"), [
    (lambda x: 2 * x, lambda a: 2 * a),
    (lambda x: x * 2, lambda a: a * 2),
    (lambda x: x + 1.5, lambda a: a + 1.5),
    (lambda x: 1.5 - x, lambda a: 1.5 - a),
    (lambda x: x - 1, lambda a: a - 1),
    (lambda x: 1 / x, lambda a: 1 / a),
    (lambda x: x / 4, lambda a: a / 4),
    (lambda x: x ** 0.5, lambda a: a ** 0.5),
    (lambda x: x ** 2, lambda a: a ** 2),
    (lambda x: 2 ** x, lambda a: 2 ** a),
    (lambda x: 0.5 ** x, lambda a: 0.5 ** a),
], ids=["2*x", "x*2", "x+1.5", "1.5-x", "x-1", "1/x", "x/4", "x**0.5", "x**2", "2**x", "0.5**x"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_scalars_mixed_with_tensors(expression, reference, dtype):
    array = np.array([[0.5, 1.0, 2.0], [3.0, 0.25, 1.5]], dtype=dtype)
    result = expression(nbprop.tensor(array))
    assert result.dtype == dtype  # a Python number never widens a floating tensor
    assert_close(result, reference(array.astype(np.float64)).astype(dtype), dtype=dtype)
    assert nbprop.gradcheck(expression, (leaf(array),))


def test_dtype_promotion_follows_pytorch():
    float32 = nbprop.tensor([1.0, 2.0])
    float64 = nbprop.tensor([1.0, 2.0], dtype=nbprop.float64)
    int64 = nbprop.tensor([1, 2])
    assert (float32 * 2.5).dtype == nbprop.float32
    assert (float32 * 2).dtype == nbprop.float32
    assert (float32 + float64).dtype == nbprop.float64
    assert (float64 + float32).dtype == nbprop.float64
    assert (int64 * 2.5).dtype == nbprop.float32
    assert (int64 * 2).dtype == nbprop.int64
    assert (int64 + float32).dtype == nbprop.float32
    assert (int64 + float64).dtype == nbprop.float64
    assert (int64 / int64).dtype == nbprop.float32
    assert (int64 / 2).dtype == nbprop.float32
    assert (int64 ** 2).dtype == nbprop.int64
    assert (int64 ** 0.5).dtype == nbprop.float32
    assert nbprop.exp(int64).dtype == nbprop.float32
    assert (int64 < 2).dtype == nbprop.bool
    np.testing.assert_array_equal((int64 / int64).numpy(), [1.0, 1.0])
    np.testing.assert_array_equal((nbprop.tensor([1, 7]) / 2).numpy(), [0.5, 3.5])
    np.testing.assert_array_equal((int64 * 2.5).numpy(), [2.5, 5.0])
    np.testing.assert_array_equal((int64 == nbprop.tensor([1, 3])).numpy(), [True, False])
    # The float64 result of mixing keeps float64 precision.
    assert_close(float64 / 3 + float32, np.array([1.0, 2.0]) / 3 + np.array([1.0, 2.0]))


@pytest.mark.torch
@pytest.mark.parametrize(("left", "right"), [
    (np.float32, 2.5), (np.float32, 2), (np.float64, 2.5), (np.int64, 2.5), (np.int64, 2), (np.bool_, 2),
    (np.bool_, 2.5), (np.float32, np.float64), (np.int64, np.float32), (np.int64, np.int64),
    (np.bool_, np.int64), (np.bool_, np.bool_),
])
@pytest.mark.parametrize("op", ["add", "mul", "truediv", "lt"])
def test_result_dtypes_equal_pytorchs(left, right, op):
    import torch

    function = getattr(operator, op)
    a = np.array([1, 2], dtype=left)
    b = right if isinstance(right, (int, float)) else np.array([1, 1], dtype=right)
    ours = function(nbprop.tensor(a), b if np.isscalar(b) else nbprop.tensor(b))
    theirs = function(torch.from_numpy(a), b if np.isscalar(b) else torch.from_numpy(b))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())


# ------------------------------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("name", UNARY)
def test_unary_gradcheck(name):
    function, _, _, low, high = UNARY[name]
    array = _away_from_kinks(name, _random((2, 3), low, high))
    assert nbprop.gradcheck(function, (leaf(array),))


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=8)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
def test_unary_gradcheck_any_shape(name, shape):
    function, _, _, low, high = UNARY[name]
    array = _away_from_kinks(name, _random(shape, low, high))
    assert nbprop.gradcheck(function, (leaf(array),))


@pytest.mark.parametrize("name", BINARY)
def test_binary_gradcheck_same_shape(name):
    function, _, _, (low_a, high_a), (low_b, high_b) = BINARY[name]
    a = _random((2, 3), low_a, high_a, seed=2)
    b = _random((2, 3), low_b, high_b, seed=3)
    if name == "div":
        b = b * np.array([1.0, -1.0, 1.0])  # negative divisors too
    assert nbprop.gradcheck(function, (leaf(a), leaf(b)))


@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=8)
@given(pair=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3))
def test_binary_gradcheck_broadcasting(name, pair):
    function, _, _, (low_a, high_a), (low_b, high_b) = BINARY[name]
    a = _random(pair.input_shapes[0], low_a, high_a, seed=4)
    b = _random(pair.input_shapes[1], low_b, high_b, seed=5)
    assert nbprop.gradcheck(function, (leaf(a), leaf(b)))


def test_where_and_clamp_with_tensor_bounds_gradcheck():
    condition = nbprop.tensor([[True, False, True], [False, False, True]])
    a, b = leaf(_random((2, 3), -2, 2, seed=6)), leaf(_random((1, 3), -2, 2, seed=7))
    assert nbprop.gradcheck(lambda a, b: nbprop.where(condition, a, b), (a, b))
    x = leaf(np.array([[-2.0, 0.3, 2.0], [0.9, -0.7, 1.7]]))
    low, high = leaf(np.array([-1.0, 0.0, -0.5])), leaf(np.array([[1.0], [0.5]]))
    assert nbprop.gradcheck(lambda x, low, high: x.clamp(low, high), (x, low, high))
    assert nbprop.gradcheck(lambda x: x.clamp(min=0.0), (x,))
    assert nbprop.gradcheck(lambda x: x.clamp(max=0.0), (x,))


def test_composite_expression_gradcheck():
    def composite(x, y):
        return (x * y + x.sin() / (1.5 + y.cos())).tanh() ** 2 - nbprop.maximum(x, y).sigmoid().log()

    assert nbprop.gradcheck(composite, (leaf(_random((3, 2), -1, 1, 8)), leaf(_random((3, 2), -1, 1, 9))))


# --------------------------------------------------------------------------------------------- errors


def test_bad_inputs_give_clear_errors():
    with pytest.raises(RuntimeError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        nbprop.zeros(2, 3) + nbprop.zeros(4)
    with pytest.raises(TypeError, match="mul: unsupported operand types Tensor and str"):
        nbprop.zeros(2) * "a"
    with pytest.raises(TypeError, match="where: condition must be a bool tensor"):
        nbprop.where(nbprop.zeros(2), nbprop.zeros(2), nbprop.zeros(2))
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        nbprop.zeros(2).clamp()
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        nbprop.tensor([1, 2]) ** -1


def test_int_and_empty_inputs():
    np.testing.assert_array_equal(abs(nbprop.tensor([-3, 2])).numpy(), [3, 2])
    np.testing.assert_array_equal(nbprop.tensor([-3, 2]).relu().numpy(), [0, 2])
    np.testing.assert_array_equal(nbprop.tensor([-3, 2]).clamp(-1, 1).numpy(), [-1, 1])
    assert nbprop.tensor([-3, 2]).clamp(-1, 1).dtype == nbprop.int64
    assert nbprop.tensor([-3, 2]).clamp(0.5).dtype == nbprop.float32
    np.testing.assert_array_equal(nbprop.maximum(nbprop.tensor([1, 5]), nbprop.tensor([3, 2])).numpy(), [3, 5])
    empty = nbprop.zeros(0, 3, dtype=nbprop.float64, requires_grad=True)
    result = (empty * 2).exp() + nbprop.zeros(1, 3, dtype=nbprop.float64)
    assert result.shape == (0, 3)
    result.backward(nbprop.zeros(0, 3, dtype=nbprop.float64))
    assert empty.grad.shape == (0, 3)
