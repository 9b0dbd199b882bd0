"""Running sums: cumsum against PyTorch (dtypes, float64 accumulation of float32), its gradient, threaded lines."""

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf, to_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.kernels._jit import PARALLEL_THRESHOLD

FEW = settings(max_examples=30)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


def _dim(data, shape):
    bound = max(len(shape), 1)
    return data.draw(st.integers(-bound, bound - 1))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
@FEW
@given(shape=shapes, data=st.data())
def test_cumsum_matches_torch_bit_for_bit(dtype, shape, data):
    import torch

    array = data.draw(arrays(shape, np.float64, -1e3, 1e3))
    array = np.asarray(array > 0) if dtype == np.bool_ else array.astype(dtype)
    dim = _dim(data, shape)
    result = nbprop.cumsum(nbprop.tensor(array), dim)
    expected = torch.cumsum(torch.from_numpy(array), dim)
    assert result.dtype == np.dtype(np.int64 if dtype in (np.int64, np.bool_) else dtype)
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
    converted = nbprop.tensor(array).cumsum(dim, dtype=nbprop.float64)
    np.testing.assert_array_equal(converted.numpy(), torch.cumsum(torch.from_numpy(array), dim,
                                                                   dtype=torch.float64).numpy())


@pytest.mark.torch
@FEW
@given(shape=shapes, data=st.data())
def test_cumsum_gradient_matches_torch(shape, data):
    x = leaf(data.draw(arrays(shape)))
    dim = _dim(data, shape)
    result = x.cumsum(dim)
    gradient = np.random.default_rng(1).standard_normal(result.shape)
    result.backward(nbprop.tensor(gradient))
    torch_x = to_torch(x, True)
    torch_x.cumsum(dim).backward(to_torch(nbprop.tensor(gradient)))
    assert_close(x.grad, torch_x.grad.numpy())


def test_cumsum_gradcheck_and_dtype_argument_gradient():
    x = leaf(np.random.default_rng(2).standard_normal((3, 4)))
    assert nbprop.gradcheck(lambda t: nbprop.cumsum(t, 1), (x,))
    assert nbprop.gradcheck(lambda t: t.cumsum(0) * t, (x,))
    single = leaf(np.random.default_rng(3).standard_normal(4), dtype=np.float32)
    single.cumsum(0, dtype=nbprop.float64).sum().backward()
    assert single.grad.dtype == np.float32 and single.grad.tolist() == [4.0, 3.0, 2.0, 1.0]


def test_zero_dimensional_input_and_bad_dims():
    x = nbprop.tensor(2.5)
    assert x.cumsum(0).shape == () and x.cumsum(-1).item() == 2.5
    with pytest.raises(IndexError, match="out of range"):
        x.cumsum(1)
    with pytest.raises(IndexError, match="out of range"):
        nbprop.zeros(2, 3).cumsum(2)
    with pytest.raises(TypeError, match="dim must be an int"):
        nbprop.zeros(2, 3).cumsum(None)


def test_threaded_lines_match_a_float64_serial_scan():
    rng = np.random.default_rng(4)
    for shape, dim in (((300, 400), 0), ((300, 400), 1), ((20, 300, 30), 1)):
        assert np.prod(shape) >= PARALLEL_THRESHOLD  # the threaded variant runs
        array = rng.standard_normal(shape).astype(np.float32)
        x = nbprop.tensor(array, requires_grad=True)
        result = x.cumsum(dim)
        expected = np.cumsum(array, dim, dtype=np.float64).astype(np.float32)
        np.testing.assert_array_equal(result.detach().numpy(), expected)
        gradient = rng.standard_normal(shape).astype(np.float32)
        result.backward(nbprop.tensor(gradient))
        reverse = np.flip(np.cumsum(np.flip(gradient, dim), dim, dtype=np.float64), dim).astype(np.float32)
        np.testing.assert_array_equal(x.grad.numpy(), reverse)
    # One long line is scanned serially, in PyTorch's order.
    array = rng.standard_normal(200000)
    np.testing.assert_array_equal(nbprop.tensor(array).cumsum(0).numpy(), np.cumsum(array))


def test_a_dropped_graph_is_freed_without_the_garbage_collector():
    import gc

    for run, backward in enumerate((True, True, False)):  # the first run compiles (the compiler's own garbage)
        gc.collect()
        gc.disable()
        try:
            result = leaf(np.ones((3, 4))).cumsum(1)
            if backward:
                result.sum().backward()
            del result
            found = gc.collect()
        finally:
            gc.enable()
        assert found == 0 or run == 0
