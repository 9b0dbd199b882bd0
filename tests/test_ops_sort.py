"""Sorting: sort, argsort and topk against PyTorch (stable ties, NaN largest), gradients, bad input, threaded lines."""

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.kernels._jit import PARALLEL_THRESHOLD

FEW = settings(max_examples=25)
DTYPES = [np.float32, np.float64, np.int64]


def _with_ties(shape, seed=0, dtype=np.float64, nan=False):
    """Small integers (many ties), with some NaN and -0.0 for floats when asked."""
    rng = np.random.default_rng(seed)
    array = rng.integers(-3, 4, shape).astype(dtype)
    if nan and np.dtype(dtype).kind == "f":
        array[rng.random(shape) < 0.2] = np.nan
        array[array == 0] = np.where(rng.random(array[array == 0].shape) < 0.5, -0.0, 0.0)
    return array


def _distinct(shape, seed=0):
    """Distinct float64 values (sorting is differentiable there)."""
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(size).reshape(shape) * 0.5 + 0.25


cases = st.tuples(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6), st.integers(0, 2**16))


def _dim(data, shape):
    bound = max(len(shape), 1)
    return data.draw(st.integers(-bound, bound - 1))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES + [np.bool_])
@FEW
@given(case=cases, descending=st.booleans(), data=st.data())
def test_stable_sort_matches_torch_exactly(dtype, case, descending, data):
    import torch

    shape, seed = case
    array = _with_ties(shape, seed, dtype if dtype != np.bool_ else np.int64, nan=True).astype(dtype)
    dim = _dim(data, shape)
    result = nbprop.sort(nbprop.tensor(array), dim, descending=descending, stable=True)
    expected = torch.sort(torch.from_numpy(array), dim=dim, descending=descending, stable=True)
    assert type(result).__name__ == "sort" and result._fields == ("values", "indices")
    assert result.values.dtype == np.dtype(dtype) and result.indices.dtype == np.int64
    np.testing.assert_array_equal(result.values.numpy(), expected.values.numpy())
    np.testing.assert_array_equal(result.indices.numpy(), expected.indices.numpy())
    if np.dtype(dtype).kind == "f":  # -0.0 and 0.0 keep their order, as the indices say
        np.testing.assert_array_equal(np.signbit(result.values.numpy()), np.signbit(expected.values.numpy()))
    argsorted = nbprop.tensor(array).argsort(dim, descending)
    np.testing.assert_array_equal(argsorted.numpy(), expected.indices.numpy())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(case=cases, largest=st.booleans(), data=st.data())
def test_topk_matches_torch(dtype, case, largest, data):
    import torch

    shape, seed = case
    array = _with_ties(shape, seed, dtype, nan=True)
    dim = _dim(data, shape)
    size = shape[dim % len(shape)] if shape else 1
    k = data.draw(st.integers(0, size))
    result = nbprop.topk(nbprop.tensor(array), k, dim, largest=largest)
    expected = torch.topk(torch.from_numpy(array), k, dim, largest=largest)
    assert type(result).__name__ == "topk"
    np.testing.assert_array_equal(result.values.numpy(), expected.values.numpy())
    # PyTorch leaves the order of tied indices open; nbprop gives the stable sort's first k.
    stable = nbprop.sort(nbprop.tensor(array), dim, descending=largest, stable=True)
    axis = dim % len(shape) if shape else 0
    first_k = np.take(stable.indices.numpy(), np.arange(k), axis=axis) if shape else stable.indices.numpy()
    np.testing.assert_array_equal(result.indices.numpy(), first_k)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(lines=st.integers(1, 3), size=st.integers(8, 64), largest=st.booleans(), seed=st.integers(0, 2**16),
       data=st.data())
def test_topk_of_a_few_from_long_lines_matches_torch(dtype, lines, size, largest, seed, data):
    """k at most an eighth of the line: the heap selection, which must give the stable sort's first k."""
    import torch

    array = _with_ties((lines, size), seed, dtype, nan=True)
    k = data.draw(st.integers(1, size // 8))
    result = nbprop.tensor(array).topk(k, largest=largest)
    expected = torch.topk(torch.from_numpy(array), k, largest=largest)
    np.testing.assert_array_equal(result.values.numpy(), expected.values.numpy())
    stable = nbprop.tensor(array).sort(descending=largest, stable=True).indices.numpy()
    np.testing.assert_array_equal(result.indices.numpy(), stable[:, :k])


@pytest.mark.torch
def test_unstable_sort_and_topk_break_ties_by_position():
    import torch

    array = np.array([1.0, np.nan, 1.0, 0.0, np.nan, 1.0] * 50)
    values, indices = nbprop.tensor(array).sort(descending=True)
    expected = torch.sort(torch.from_numpy(array), descending=True)
    np.testing.assert_array_equal(values.numpy(), expected.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), np.argsort(-np.nan_to_num(array, nan=np.inf), kind="stable"))
    result = nbprop.tensor([1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.0, 0.0]).topk(3)
    assert result.values.tolist() == [2.0, 2.0, 1.0] and result.indices.tolist() == [4, 5, 0]
    result = nbprop.tensor([1.0, np.nan, 3.0, np.nan]).topk(3, largest=False, sorted=False)
    assert result.indices.tolist() == [0, 2, 1]


@pytest.mark.torch
@pytest.mark.parametrize("op", ["sort", "topk"])
@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5), descending=st.booleans(),
       data=st.data())
def test_gradients_match_torch(op, shape, descending, data):
    x = leaf(_distinct(shape, seed=1) * (-1) ** data.draw(st.integers(0, 1)))
    dim = _dim(data, shape)
    size = shape[dim % len(shape)] if shape else 1
    arguments = (data.draw(st.integers(0, size)), dim, descending) if op == "topk" else (dim, descending)
    values = getattr(x, op)(*arguments).values
    gradient = np.random.default_rng(2).standard_normal(values.shape)
    values.backward(nbprop.tensor(gradient))
    torch_x = to_torch(x, True)
    getattr(torch_x, op)(*arguments).values.backward(to_torch(nbprop.tensor(gradient)))
    assert_close(x.grad, torch_x.grad.numpy())


def test_gradcheck():
    x = leaf(_distinct((3, 5), seed=3))
    assert nbprop.gradcheck(lambda t: nbprop.sort(t, 1).values, (x,))
    assert nbprop.gradcheck(lambda t: nbprop.sort(t, 0, descending=True).values, (x,))
    assert nbprop.gradcheck(lambda t: nbprop.topk(t, 2, 1).values, (x,))
    assert nbprop.gradcheck(lambda t: nbprop.topk(t, 1, 0, largest=False).values, (x,))


def test_zero_dimensional_and_empty_inputs():
    x = nbprop.tensor(3.0)
    for result in (x.sort(), x.topk(1), x.topk(0, dim=-1)):
        assert result.values.shape == () and result.values.item() == 3.0 and result.indices.item() == 0
    empty = nbprop.zeros(2, 0)
    assert empty.sort(1).values.shape == (2, 0) and empty.topk(0).indices.shape == (2, 0)
    assert nbprop.zeros(3, 4).topk(0, 0).values.shape == (0, 4)


def test_bad_input_raises_pytorchs_errors():
    x = nbprop.tensor(np.arange(6.0).reshape(2, 3))
    for k in (4, -1):
        with pytest.raises(RuntimeError, match="selected index k out of range"):
            x.topk(k)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        nbprop.tensor(1.0).topk(2)
    with pytest.raises(RuntimeError, match="bool"):
        nbprop.tensor([True, False]).topk(1)
    with pytest.raises(IndexError, match="out of range"):
        x.sort(2)
    with pytest.raises(IndexError, match="out of range"):
        x.topk(1, dim=-3)
    with pytest.raises(TypeError, match="k must be an int"):
        x.topk(1.5)


@pytest.mark.parametrize("op", ["sort", "topk"])
def test_indices_changed_after_forward_are_caught_in_backward(op):
    x = leaf(_distinct((2, 4)))
    result = x.sort(1) if op == "sort" else x.topk(2, 1)
    result.indices.add_(1)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        result.values.sum().backward()
    result = x.sort(1) if op == "sort" else x.topk(2, 1)
    result.indices.numpy()[1, 0] = 4
    with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 4"):
        result.values.sum().backward()


def test_threaded_lines_match_numpys_stable_sort():
    rng = np.random.default_rng(4)
    for shape, dim in (((300, 400), 1), ((400, 300), 0), ((4, 40000), 1)):
        assert np.prod(shape) >= PARALLEL_THRESHOLD  # the threaded variant runs
        array = rng.integers(-50, 50, shape).astype(np.float32)
        array[rng.random(shape) < 0.01] = np.nan
        x = nbprop.tensor(array, requires_grad=True)
        values, indices = x.sort(dim, descending=True)
        expected = np.argsort(-np.nan_to_num(array, nan=np.inf), axis=dim, kind="stable")
        np.testing.assert_array_equal(indices.numpy(), expected)
        np.testing.assert_array_equal(values.detach().numpy(), np.take_along_axis(array, expected, dim))
        gradient = rng.standard_normal(shape).astype(np.float32)
        values.backward(nbprop.tensor(gradient))
        unsorted = np.empty_like(gradient)
        np.put_along_axis(unsorted, expected, gradient, dim)
        np.testing.assert_array_equal(x.grad.numpy(), unsorted)
        # A small k takes the heap selection: the stable sort's first k.
        top = nbprop.tensor(array).topk(7, dim, largest=False)
        ascending = np.argsort(array, axis=dim, kind="stable")
        np.testing.assert_array_equal(top.indices.numpy(), np.take(ascending, np.arange(7), axis=dim))


@pytest.mark.parametrize("op", ["sort", "topk"])
def test_a_dropped_graph_is_freed_without_the_garbage_collector(op):
    import gc

    for run, backward in enumerate((True, True, False)):  # the first run compiles (the compiler's own garbage)
        gc.collect()
        gc.disable()
        try:
            x = leaf(_distinct((3, 4)))
            result = (x.sort(1) if op == "sort" else x.topk(2)).values
            if backward:
                result.sum().backward()
            del result, x
            found = gc.collect()
        finally:
            gc.enable()
        assert found == 0 or run == 0
