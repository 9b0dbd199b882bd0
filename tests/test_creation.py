"""Tensor factories: from data, filled, ranges, random (seeded), and the *_like forms."""

import numpy as np
import pytest
from helpers import shapes
from hypothesis import given

import nbprop


def test_tensor_infers_pytorchs_dtypes():
    assert nbprop.tensor([1.0, 2.0]).dtype == nbprop.float32
    assert nbprop.tensor([1, 2]).dtype == nbprop.int64
    assert nbprop.tensor([True]).dtype == nbprop.bool
    assert nbprop.tensor([1, 2.5]).dtype == nbprop.float32
    assert nbprop.tensor([]).dtype == nbprop.float32 and nbprop.tensor([]).shape == (0,)
    assert nbprop.tensor(np.array([1.0], np.float64)).dtype == nbprop.float64  # NumPy float64 stays float64
    assert nbprop.tensor(np.array([1], np.int32)).dtype == nbprop.int64
    assert nbprop.tensor(np.array([1], np.uint8)).dtype == nbprop.int64
    assert nbprop.tensor([[1, 2], [3, 4]], dtype=nbprop.float64).dtype == nbprop.float64
    assert nbprop.tensor([1.9, -1.9], dtype=nbprop.int64).tolist() == [1, -1]


def test_tensor_rejects_unsupported_data():
    with pytest.raises(TypeError, match="cannot make a tensor from data of NumPy dtype <U1"):
        nbprop.tensor(["a"])
    with pytest.raises(TypeError, match="complex128"):
        nbprop.tensor([1 + 2j])
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        nbprop.tensor([1.0], device="cuda")


@given(shape=shapes)
def test_filled_factories(shape):
    for factory, value in ((nbprop.zeros, 0.0), (nbprop.ones, 1.0)):
        tensor = factory(shape)
        assert tensor.shape == shape and tensor.dtype == nbprop.float32
        np.testing.assert_array_equal(tensor.numpy(), np.full(shape, value, np.float32))
        assert factory(*shape).shape == shape
    full = nbprop.full(shape, 2.5, dtype=nbprop.float64)
    np.testing.assert_array_equal(full.numpy(), np.full(shape, 2.5))
    assert nbprop.empty(shape).shape == shape and nbprop.empty(*shape, dtype=nbprop.int64).dtype == nbprop.int64


def test_factory_arguments():
    assert nbprop.zeros().shape == () and nbprop.zeros(()).shape == ()
    assert nbprop.zeros(2, 3).shape == (2, 3) and nbprop.zeros((2, 3)).shape == (2, 3)
    assert nbprop.zeros([2, 3]).shape == (2, 3)
    assert nbprop.ones(2, dtype=nbprop.int64).tolist() == [1, 1]
    assert nbprop.ones(2, dtype=nbprop.bool).tolist() == [True, True]
    assert nbprop.zeros(2, requires_grad=True).requires_grad
    assert nbprop.zeros(2, device="cpu").device == "cpu"
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        nbprop.ones(2, device="cuda")
    with pytest.raises(ValueError, match="negative dimensions"):
        nbprop.zeros(-1)


def test_full_takes_its_dtype_from_the_value():
    assert nbprop.full((2,), 1.5).dtype == nbprop.float32
    assert nbprop.full((2,), 3).dtype == nbprop.int64
    assert nbprop.full((2,), True).dtype == nbprop.bool
    assert nbprop.full(3, 2.0).shape == (3,)
    assert nbprop.full((2, 2), 7, dtype=nbprop.float64).tolist() == [[7.0, 7.0], [7.0, 7.0]]


def test_like_factories_keep_shape_and_dtype():
    source = nbprop.tensor([[1, 2, 3]], dtype=nbprop.float64)
    for factory in (nbprop.zeros_like, nbprop.ones_like, nbprop.empty_like, nbprop.randn_like, nbprop.rand_like):
        made = factory(source)
        assert made.shape == (1, 3) and made.dtype == nbprop.float64 and made.device == "cpu"
        assert not np.shares_memory(made.numpy(), source.numpy())
    assert nbprop.zeros_like(source).tolist() == [[0.0, 0.0, 0.0]]
    assert nbprop.ones_like(source, dtype=nbprop.int64).dtype == nbprop.int64
    assert nbprop.zeros_like(source, requires_grad=True).requires_grad
    full = nbprop.full_like(nbprop.zeros(2, dtype=nbprop.int64), 2.7)
    assert full.dtype == nbprop.int64 and full.tolist() == [2, 2]  # as PyTorch: the value is cast
    assert nbprop.full_like(source, 0.5).tolist() == [[0.5, 0.5, 0.5]]


@pytest.mark.torch
@pytest.mark.parametrize("arguments", [(5,), (2, 7), (0, 1, 0.1), (-1, 1, 0.3), (10, 0, -3), (1.5,), (0, 5, 2),
                                       (3, 3), (0.5, 2.5, 0.5)])
def test_arange_matches_pytorch(arguments):
    import torch

    ours = nbprop.arange(*arguments)
    theirs = torch.arange(*arguments)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_arange_arguments():
    assert nbprop.arange(5, dtype=nbprop.float64).dtype == nbprop.float64
    assert nbprop.arange(0, 5, requires_grad=True, dtype=nbprop.float32).requires_grad
    with pytest.raises(ValueError, match="arange: step must be nonzero"):
        nbprop.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="arange: the bounds .* are inconsistent with the sign of step"):
        nbprop.arange(0, 5, -1)


def test_linspace_eye_randint():
    np.testing.assert_allclose(nbprop.linspace(0, 1, 5).numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    assert nbprop.linspace(0, 1, 5).dtype == nbprop.float32
    np.testing.assert_array_equal(nbprop.eye(2, 3).numpy(), np.eye(2, 3))
    assert nbprop.eye(3, dtype=nbprop.float64).dtype == nbprop.float64
    nbprop.manual_seed(0)
    values = nbprop.randint(2, 5, (1000,))
    assert values.dtype == nbprop.int64 and values.shape == (1000,)
    assert set(values.tolist()) == {2, 3, 4}
    assert nbprop.randint(5, size=(2, 3)).shape == (2, 3)


def test_random_factories_shapes_dtypes_and_ranges():
    nbprop.manual_seed(1)
    normal = nbprop.randn(200, 100)
    assert normal.shape == (200, 100) and normal.dtype == nbprop.float32
    assert abs(normal.numpy().mean()) < 0.05 and abs(normal.numpy().std() - 1) < 0.05
    uniform = nbprop.rand(200, 100, dtype=nbprop.float64)
    assert uniform.dtype == nbprop.float64
    assert uniform.numpy().min() >= 0.0 and uniform.numpy().max() < 1.0
    assert abs(uniform.numpy().mean() - 0.5) < 0.02
    assert nbprop.randn((2, 3)).shape == (2, 3) and nbprop.randn().shape == ()
    assert nbprop.randn(2, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="randn: samples need a floating dtype"):
        nbprop.randn(2, dtype=nbprop.int64)
    with pytest.raises(TypeError, match="rand: samples need a floating dtype"):
        nbprop.rand(2, dtype=nbprop.bool)


def test_manual_seed_makes_random_tensors_reproducible():
    nbprop.manual_seed(123)
    first = (nbprop.randn(4, 5).numpy(), nbprop.rand(3).numpy(), nbprop.randint(0, 100, (6,)).numpy())
    nbprop.manual_seed(123)
    second = (nbprop.randn(4, 5).numpy(), nbprop.rand(3).numpy(), nbprop.randint(0, 100, (6,)).numpy())
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert nbprop.initial_seed() == 123
    nbprop.manual_seed(124)
    assert not np.array_equal(nbprop.randn(4, 5).numpy(), first[0])
    with pytest.raises(TypeError, match="manual_seed: expects an integer seed, got float"):
        nbprop.manual_seed(1.5)


def test_as_tensor_avoids_copies():
    array = np.array([1.0, 2.0])
    assert np.shares_memory(nbprop.as_tensor(array).numpy(), array)
    x = nbprop.tensor([1.0])
    assert nbprop.as_tensor(x) is x
    assert nbprop.as_tensor(x, dtype=nbprop.float64).dtype == nbprop.float64
    assert nbprop.as_tensor([1, 2]).dtype == nbprop.int64
