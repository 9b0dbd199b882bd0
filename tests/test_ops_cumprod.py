"""Running products: cumprod against PyTorch (dtypes, float64 accumulation of float32), its gradient with zeros,
gradcheck, threaded lines, errors, and the opaque device."""

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf, to_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from opaque_device import assert_same_on_opaque, install

import nbprop
from nbprop.kernels._jit import PARALLEL_THRESHOLD

FEW = settings(max_examples=25, deadline=None)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


def _dim(data, shape):
    bound = max(len(shape), 1)
    return data.draw(st.integers(-bound, bound - 1))


def _with_zeros(data, array):
    """Some elements of `array` set to zero (none, one or several per line)."""
    if array.size == 0:
        return array
    mask = data.draw(hnp.arrays(np.bool_, array.shape))
    return np.where(mask & (np.abs(array) < 1.0), 0.0, array)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
@FEW
@given(shape=shapes, data=st.data())
def test_cumprod_matches_torch_bit_for_bit(dtype, shape, data):
    import torch

    array = data.draw(arrays(shape, np.float64, -2.0, 2.0))
    array = np.asarray(array > 0) if dtype == np.bool_ else np.asarray(array * 3 if dtype == np.int64 else array,
                                                                        dtype)
    dim = _dim(data, shape)
    result = nbprop.cumprod(nbprop.tensor(array), dim)
    expected = torch.cumprod(torch.from_numpy(array), dim)
    assert result.dtype == np.dtype(np.int64 if dtype in (np.int64, np.bool_) else dtype)
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
    converted = nbprop.tensor(array).cumprod(dim, dtype=nbprop.float64)
    np.testing.assert_array_equal(converted.numpy(), torch.cumprod(torch.from_numpy(array), dim,
                                                                    dtype=torch.float64).numpy())


@pytest.mark.torch
@FEW
@given(shape=shapes, data=st.data())
def test_cumprod_gradient_with_zeros_matches_torch(shape, data):
    x = leaf(_with_zeros(data, data.draw(arrays(shape))))
    dim = _dim(data, shape)
    result = x.cumprod(dim)
    gradient = np.random.default_rng(1).standard_normal(result.shape)
    result.backward(nbprop.tensor(gradient))
    torch_x = to_torch(x, True)
    torch_x.cumprod(dim).backward(to_torch(nbprop.tensor(gradient)))
    assert_close(x.grad, torch_x.grad.numpy())


def test_cumprod_gradient_is_exact_with_one_and_several_zeros():
    # d out[j] / d x[m] is the product of x[:j + 1] without x[m]: no division, so exact with zeros.
    x = leaf([2.0, 0.0, 3.0, 0.0, 5.0])
    x.cumprod(0).backward(nbprop.ones(5, dtype=nbprop.float64))
    # out = [2, 0, 0, 0, 0]; x[1] reaches 2 + 2*3 = 8 through out[1], out[2]; x[3] reaches 2*0*3 = 0.
    assert x.grad.numpy().tolist() == [1.0, 8.0, 0.0, 0.0, 0.0]


def test_cumprod_gradcheck_and_gradgradcheck():
    x = leaf(np.random.default_rng(2).standard_normal((3, 4)))
    assert nbprop.gradcheck(lambda t: nbprop.cumprod(t, 1), (x,))
    assert nbprop.gradcheck(lambda t: t.cumprod(0) * t, (x,))
    zeros = leaf([[0.5, 0.0, -1.5, 0.0], [0.0, 2.0, 1.0, 3.0]])
    assert nbprop.gradgradcheck(lambda t: nbprop.cumprod(t, 1), (zeros,))
    assert nbprop.gradgradcheck(lambda t: nbprop.cumprod(t, 0) ** 2, (zeros,))
    scalar = leaf(1.5)
    assert nbprop.gradgradcheck(lambda t: nbprop.cumprod(t, 0) ** 3, (scalar,))


def test_cumprod_threaded_lines_equal_serial():
    # Many short lines in the parallel variant, and one line of all the elements: the same values either way.
    rng = np.random.default_rng(4)
    array = 1.0 + 1e-7 * rng.standard_normal((8, PARALLEL_THRESHOLD // 8 + 1))
    threaded = nbprop.cumprod(nbprop.tensor(array), 0).numpy()
    serial = np.stack([nbprop.cumprod(nbprop.tensor(array[:, column]), 0).numpy() for column in range(3)], axis=1)
    np.testing.assert_array_equal(threaded[:, :3], serial)
    gradient = nbprop.tensor(rng.standard_normal(array.shape))
    x = leaf(array)
    x.cumprod(0).backward(gradient)
    for column in range(3):
        single = leaf(array[:, column])
        single.cumprod(0).backward(nbprop.tensor(gradient.numpy()[:, column].copy()))
        np.testing.assert_array_equal(x.grad.numpy()[:, column], single.grad.numpy())


def test_cumprod_errors_name_the_op():
    with pytest.raises(IndexError, match="cumprod"):
        nbprop.cumprod(nbprop.ones(2, 3), 2)
    with pytest.raises(TypeError, match="cumprod"):
        nbprop.cumprod([1.0, 2.0], 0)


def test_cumprod_on_the_opaque_device():
    install()
    x = np.random.default_rng(6).standard_normal((3, 4))
    x[1, 2] = 0.0
    assert_same_on_opaque(lambda t: nbprop.cumprod(t, 1), x)
    assert_same_on_opaque(lambda t: t.cumprod(0) * t, x)
