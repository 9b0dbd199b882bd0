"""Logical reductions: all and any against PyTorch (dims, keepdim, NaN, empty), the threaded variants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.kernels._jit import PARALLEL_THRESHOLD

FEW = settings(max_examples=30)


@st.composite
def dims(draw, ndim):
    """None, one dim, a tuple of distinct dims, or ()."""
    bound = max(ndim, 1)
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return None
    if choice == 1:
        return draw(st.integers(-bound, bound - 1))
    if choice == 2 and ndim:
        return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)))
    return ()


@pytest.mark.torch
@pytest.mark.parametrize("op", ["all", "any"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), data=st.data())
def test_all_and_any_match_torch(op, dtype, shape, data):
    import torch

    array = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0, -2.5, np.nan])))
    array = np.asarray(array.astype(dtype) if np.dtype(dtype).kind != "i" else np.nan_to_num(array).astype(dtype))
    dim = data.draw(dims(len(shape)))
    keepdim = data.draw(st.booleans())
    result = getattr(nbprop, op)(nbprop.tensor(array), dim, keepdim)
    if dim is None:
        expected = getattr(torch.from_numpy(array), op)(dim=None, keepdim=keepdim)
    else:
        expected = getattr(torch, op)(torch.from_numpy(array), dim, keepdim)
    assert result.dtype == nbprop.bool
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
    assert getattr(nbprop.tensor(array), op)().item() == getattr(torch.from_numpy(array), op)().item()


def test_bad_dims_and_no_gradient():
    x = nbprop.tensor([[1.0, 0.0]], requires_grad=True)
    assert x.all(1).requires_grad is False and x.any().grad_fn is None
    with pytest.raises(IndexError, match="out of range"):
        x.all(2)
    with pytest.raises(RuntimeError, match="more than once"):
        x.any((1, -1))


def test_threaded_variants():
    rng = np.random.default_rng(0)
    for shape, dim in (((300, 400), 0), ((300, 400), 1), ((2, 200000), 1), ((200000, 2), 0)):
        assert np.prod(shape) >= PARALLEL_THRESHOLD
        array = rng.random(shape) < 0.9995
        x = nbprop.tensor(array)
        np.testing.assert_array_equal(x.all(dim).numpy(), array.all(dim))
        np.testing.assert_array_equal((~x).any(dim).numpy(), (~array).any(dim))
        assert x.all().item() == array.all() and (~x).any().item() == (~array).any()
