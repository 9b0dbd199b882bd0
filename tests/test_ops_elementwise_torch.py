"""Elementwise gradients and special values against PyTorch (float64, broadcasting, kinks, NaN, infinities)."""


import numpy as np
import pytest
from helpers import assert_close, broadcast_pairs, leaf, nonempty_shapes, shapes
from hypothesis import given, settings
from test_ops_elementwise import BINARY, FLOATS, TORCH_UNARY_ARGUMENTS, UNARY, _grad_output, _random

import nbprop

# ----------------------------------------------------------------------------- gradients vs PyTorch


def _torch_grads(torch_function, arrays_in, grad_output):
    import torch

    leaves = [torch.tensor(array, requires_grad=True) for array in arrays_in]
    result = torch_function(*leaves)
    result.backward(torch.from_numpy(grad_output))
    return result.detach().numpy(), [tensor.grad.numpy() for tensor in leaves]


def _our_grads(function, arrays_in, grad_output):
    leaves = [leaf(array) for array in arrays_in]
    result = function(*leaves)
    result.backward(nbprop.tensor(grad_output))
    return result, [tensor.grad for tensor in leaves]


def _assert_gradients_equal_pytorchs(function, torch_function, arrays_in, grad_output, **tolerances):
    """The result and every input gradient of `function` match `torch_function`'s on the same inputs."""
    expected, expected_grads = _torch_grads(torch_function, arrays_in, grad_output)
    result, grads = _our_grads(function, arrays_in, grad_output)
    assert_close(result, expected, **tolerances)
    for grad, expected_grad in zip(grads, expected_grads):
        assert_close(grad, expected_grad, **tolerances)


@pytest.mark.torch
@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=10)
@given(shape=shapes)
def test_unary_gradients_equal_pytorchs(name, shape):
    import torch

    function, _, torch_name, low, high = UNARY[name]
    array = _random(shape, low, high)
    grad_output = _grad_output(shape)
    torch_function = getattr(torch, torch_name)
    extra = TORCH_UNARY_ARGUMENTS.get(name, ())
    _assert_gradients_equal_pytorchs(function, lambda x: torch_function(x, *extra), [array], grad_output)


@pytest.mark.torch
@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=10)
@given(shape=nonempty_shapes)
def test_binary_gradients_equal_pytorchs_same_shape(name, shape):
    import torch

    function, _, torch_name, (low_a, high_a), (low_b, high_b) = BINARY[name]
    inputs = [_random(shape, low_a, high_a, 2), _random(shape, low_b, high_b, 3)]
    grad_output = _grad_output(shape)
    _assert_gradients_equal_pytorchs(function, getattr(torch, torch_name), inputs, grad_output)


@pytest.mark.torch
@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=10)
@given(pair=broadcast_pairs)
def test_binary_gradients_equal_pytorchs_broadcasting(name, pair):
    import torch

    function, _, torch_name, (low_a, high_a), (low_b, high_b) = BINARY[name]
    inputs = [_random(pair.input_shapes[0], low_a, high_a, 2), _random(pair.input_shapes[1], low_b, high_b, 3)]
    grad_output = _grad_output(pair.result_shape)
    _assert_gradients_equal_pytorchs(function, getattr(torch, torch_name), inputs, grad_output)


@pytest.mark.torch
def test_where_gradients_equal_pytorchs_broadcasting():
    import torch

    condition = np.array([[True], [False]])
    inputs = [_random((2, 3), -1, 1, 2), _random((3,), -1, 1, 3)]
    grad_output = _grad_output((2, 3))
    _assert_gradients_equal_pytorchs(lambda a, b: nbprop.where(nbprop.tensor(condition), a, b),
                                     lambda a, b: torch.where(torch.from_numpy(condition), a, b), inputs, grad_output)


@pytest.mark.torch
@pytest.mark.parametrize("expression", [
    lambda x: 2 * x, lambda x: x ** 0.5, lambda x: 1 / x, lambda x: 2 ** x, lambda x: 3.0 - x, lambda x: x / 7,
], ids=["2*x", "x**0.5", "1/x", "2**x", "3-x", "x/7"])
def test_scalar_expression_gradients_equal_pytorchs(expression):
    array = _random((3, 2), 0.2, 2.0)
    grad_output = _grad_output((3, 2))
    _assert_gradients_equal_pytorchs(expression, expression, [array], grad_output)


# ------------------------------------------------------------------------------------ special values

NAN, INF = np.nan, np.inf

SPECIAL_CASES = {
    # name: (expression on (x,) or (x, y), arrays)
    "pow at base 0": (
        lambda x, y: x ** y, [[0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 2.0], [2.0, 0.0, 0.5, 1.0, -1.0, 0.5, 0.0]]
    ),
    "maximum ties and NaN": (nbprop.maximum, [[1.0, 2.0, NAN, 1.0, -0.0], [1.0, 3.0, 1.0, NAN, 0.0]]),
    "minimum ties and NaN": (nbprop.minimum, [[1.0, 2.0, NAN, 1.0, -0.0], [1.0, 3.0, 1.0, NAN, 0.0]]),
    "relu at 0 and NaN": (nbprop.relu, [[0.0, -0.0, 1.0, -1.0, NAN, INF]]),
    "clamp bounds inclusive": (lambda x: x.clamp(-1.0, 1.0), [[-1.0, 1.0, -1.5, 1.5, 0.0, NAN]]),
    "clamp min above max": (lambda x: x.clamp(1.0, -1.0), [[-2.0, 0.0, 2.0]]),
    "sqrt at 0": (nbprop.sqrt, [[0.0, 4.0, -1.0, INF, NAN]]),
    "rsqrt at 0": (nbprop.rsqrt, [[0.0, 4.0, -1.0, INF]]),
    "log at 0": (nbprop.log, [[0.0, -1.0, 1.0, INF, NAN]]),
    "abs at 0 and NaN": (abs, [[0.0, -0.0, -2.0, NAN]]),
    "exp overflow": (nbprop.exp, [[1000.0, -1000.0, 710.0, NAN]]),
    "sigmoid extremes": (nbprop.sigmoid, [[1000.0, -1000.0, 40.0, -40.0, 0.0, NAN]]),
    "tanh extremes": (nbprop.tanh, [[1000.0, -1000.0, 20.0, NAN]]),
    "div by 0": (lambda x, y: x / y, [[1.0, -1.0, 0.0, NAN], [0.0, 0.0, 0.0, 1.0]]),
    "mul with inf": (lambda x, y: x * y, [[0.0, INF, NAN], [INF, 2.0, 1.0]]),
    "sin cos of inf": (lambda x: x.sin() + x.cos(), [[INF, -INF, NAN]]),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", SPECIAL_CASES)
def test_special_values_like_pytorch(name):
    import torch

    expression, values = SPECIAL_CASES[name]
    inputs = [np.array(value) for value in values]
    grad_output = np.ones_like(inputs[0])
    torch_expression = {
        "maximum ties and NaN": torch.maximum, "minimum ties and NaN": torch.minimum, "relu at 0 and NaN": torch.relu,
        "sqrt at 0": torch.sqrt, "rsqrt at 0": torch.rsqrt, "log at 0": torch.log, "exp overflow": torch.exp,
        "sigmoid extremes": torch.sigmoid, "tanh extremes": torch.tanh,
    }.get(name, expression)
    with np.errstate(all="ignore"):
        _assert_gradients_equal_pytorchs(expression, torch_expression, inputs, grad_output, rtol=1e-15, atol=0)


def test_sigmoid_is_finite_at_extremes_with_zero_gradient():
    for dtype in FLOATS:
        x = nbprop.tensor([1000.0, -1000.0], dtype=dtype, requires_grad=True)
        y = x.sigmoid()
        y.backward(nbprop.ones(2, dtype=dtype))
        np.testing.assert_array_equal(y.detach().numpy(), [1.0, 0.0])
        np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_exp_overflows_to_inf_and_log_of_zero_is_minus_inf():
    np.testing.assert_array_equal(nbprop.exp(nbprop.tensor([100.0])).numpy(), [np.inf])  # float32
    np.testing.assert_array_equal(nbprop.exp(nbprop.tensor([1000.0], dtype=nbprop.float64)).numpy(), [np.inf])
    np.testing.assert_array_equal(nbprop.log(nbprop.tensor([0.0, -0.0])).numpy(), [-np.inf, -np.inf])
    assert np.isnan(nbprop.log(nbprop.tensor([-1.0])).item())
    assert np.isnan(nbprop.sqrt(nbprop.tensor([-1.0])).item())


@pytest.mark.parametrize("op", [nbprop.relu, nbprop.sigmoid, nbprop.tanh, nbprop.exp, abs,
                                lambda x: x.clamp(0, 1), lambda x: nbprop.maximum(x, x * 0)])
def test_nan_propagates_forward(op):
    assert np.isnan(op(nbprop.tensor([np.nan])).item())
