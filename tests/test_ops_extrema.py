"""Extreme-value reductions: max/min along a dim against NumPy, NaN and ties, the (values, indices) result."""

import numpy as np
import pytest
from helpers import arrays, assert_close, nonempty_shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop
from nbprop.ops import extrema


@pytest.mark.parametrize("op", ["max", "min"])
@settings(max_examples=30)
@given(data=st.data())
def test_max_min_along_dim_match_numpy(op, data):
    shape = data.draw(nonempty_shapes)
    array = data.draw(arrays(shape, np.float64, -2.0, 2.0))
    array = np.round(array)  # ties, to check the first occurrence wins
    ndim = array.ndim
    dim = data.draw(st.integers(-ndim, ndim - 1)) if ndim else 0
    keepdim = data.draw(st.booleans())
    result = getattr(nbprop.tensor(array), op)(dim, keepdim)
    axis = dim % ndim if ndim else None
    values = getattr(np, op)(array, axis=axis, keepdims=keepdim and ndim > 0)
    indices = getattr(np, "arg" + op)(array, axis=axis, keepdims=keepdim and ndim > 0)
    assert type(result).__name__ == op and result._fields == ("values", "indices")
    assert_close(result.values, values)
    assert result.indices.dtype == np.int64
    np.testing.assert_array_equal(result.indices.numpy(), indices)
    whole_index = getattr(nbprop.tensor(array), "arg" + op)()
    assert whole_index.shape == () and whole_index.item() == getattr(np, "arg" + op)(array)
    along = getattr(nbprop.tensor(array), "arg" + op)(dim, keepdim)
    np.testing.assert_array_equal(along.numpy(), indices)


@pytest.mark.parametrize("op", ["argmax", "argmin", "max", "min", "amax", "amin"])
def test_nan_wins_and_propagates(op):
    array = np.array([[1.0, np.nan, 3.0, np.nan], [4.0, 2.0, 7.0, 7.0]])
    x = nbprop.tensor(array)
    if op.startswith("arg"):
        np.testing.assert_array_equal(getattr(x, op)(1).numpy(), [1, 2 if op == "argmax" else 1])
        assert getattr(x, op)().item() == 1
    elif op in ("max", "min"):
        result = getattr(x, op)(1)
        assert_close(result.values, [np.nan, 7.0 if op == "max" else 2.0])
        np.testing.assert_array_equal(result.indices.numpy(), [1, 2 if op == "max" else 1])
        assert np.isnan(getattr(x, op)().item())
    else:
        assert_close(getattr(x, op)(1), [np.nan, 7.0 if op == "amax" else 2.0])


def test_max_result_is_a_named_tuple():
    result = extrema.max(nbprop.tensor(np.array([[1.0, 5.0]])), 1)
    values, indices = result
    assert result.values is values and result[1] is indices
    assert repr(result).startswith("max(values=")
