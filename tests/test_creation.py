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


def test_from_numpy_shares_memory_of_supported_dtypes():
    for dtype in (np.float32, np.float64, np.int64, np.bool_):
        array = np.zeros((2, 3), dtype)
        made = nbprop.from_numpy(array)
        assert made.dtype == dtype and np.shares_memory(made.numpy(), array)
    array = np.arange(6.0)
    made = nbprop.from_numpy(array[::2])
    array[2] = 7.0
    assert made.tolist() == [0.0, 7.0, 4.0]

    class Subclass(np.ndarray):
        pass

    assert type(nbprop.from_numpy(np.zeros(2).view(Subclass)).numpy()) is np.ndarray
    with pytest.raises(TypeError, match="from_numpy: expects a NumPy array, got list"):
        nbprop.from_numpy([1.0])
    with pytest.raises(ValueError, match=r"from_numpy: the array's byte order \(>f4\) is not the machine's"):
        nbprop.from_numpy(np.zeros(2, ">f4"))
    with pytest.raises(TypeError, match="from_numpy: dtype uint64 is not supported.*astype"):
        nbprop.from_numpy(np.zeros(2, np.uint64))
    with pytest.raises(TypeError, match="from_numpy: dtype complex64 is not supported"):
        nbprop.from_numpy(np.zeros(2, np.complex64))


@pytest.mark.torch
def test_from_numpy_of_a_read_only_array_warns_shares_and_refuses_in_place_writes():
    import torch

    array = np.arange(4.0, dtype=np.float32)
    array.flags.writeable = False
    with pytest.warns(UserWarning, match="The given NumPy array is not writable"):
        torch.from_numpy(array)
    with pytest.warns(UserWarning, match="The given NumPy array is not writable"):
        made = nbprop.from_numpy(array)
    assert np.shares_memory(made.numpy(), array)
    assert (made * 2).tolist() == [0.0, 2.0, 4.0, 6.0] and made.sum().item() == 6.0
    writes = {"add_": lambda: made.add_(1), "copy_": lambda: made.copy_(nbprop.ones(4)),
              "setitem": lambda: made.__setitem__(0, 5.0), "fill_": lambda: made.fill_(2.0),
              "mul_": lambda: made[1:].mul_(2)}
    for op, write in writes.items():
        with pytest.raises(RuntimeError, match=f"{op}: the memory of the tensor written to .* is read-only") as info:
            write()
        assert "expanded view" not in str(info.value)
    assert array.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert made.clone().add_(1).tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(RuntimeError, match="add_: the tensor written to is an expanded view"):
        nbprop.zeros(1, 3).expand(2, 3).add_(1)


NARROW = [(np.int8, nbprop.int64), (np.int16, nbprop.int64), (np.int32, nbprop.int64), (np.uint8, nbprop.int64),
          (np.uint16, nbprop.int64), (np.uint32, nbprop.int64), (np.float16, nbprop.float32)]


@pytest.mark.parametrize(("narrow", "wide"), NARROW)
def test_from_numpy_copies_narrow_dtypes_into_the_computing_ones(narrow, wide):
    array = np.array([[0, 1, 2], [3, 100, 127]], narrow)
    made = nbprop.from_numpy(array)
    assert made.dtype == wide and made.shape == (2, 3)
    assert made.tolist() == array.astype(wide).tolist()
    assert not np.shares_memory(made.numpy(), array)  # a copy, as the docstring says
    array[0, 0] = 9
    assert made.tolist()[0][0] == 0
    made.add_(1)  # the copy is the tensor's own, writeable memory
    assert array.tolist()[0][1] == 1
    read_only = np.ones(2, narrow)
    read_only.flags.writeable = False
    assert nbprop.from_numpy(read_only).add_(1).tolist() == [2, 2]  # no warning: nothing is shared
    assert nbprop.from_numpy(np.array(7, narrow)).shape == ()


@pytest.mark.torch
def test_from_numpy_narrow_dtypes_compute_as_pytorch():
    import torch

    integers = np.array([[3, -7, 12], [0, 5, -1]], np.int32)
    ours, theirs = nbprop.from_numpy(integers), torch.from_numpy(integers)
    assert theirs.dtype == torch.int32
    for op in (lambda x: x + x, lambda x: x * 3 - 1, lambda x: x.sum(), lambda x: x.max(), lambda x: x > 2,
               lambda x: x.T, lambda x: x[1], lambda x: x.sum(dim=0), lambda x: x.float() / 2):
        np.testing.assert_array_equal(op(ours).numpy(), op(theirs).numpy())
    table = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    rows = np.array([5, 0, 2], np.int32)
    np.testing.assert_array_equal(nbprop.from_numpy(table)[nbprop.from_numpy(rows)].numpy(),
                                  torch.from_numpy(table)[torch.from_numpy(rows)].numpy())

    pixels = np.array([[0, 17, 255], [128, 3, 64]], np.uint8)
    ours, theirs = nbprop.from_numpy(pixels), torch.from_numpy(pixels)
    for op in (lambda x: x.float() / 255, lambda x: x.sum(), lambda x: x.max(), lambda x: x * 1.5,
               lambda x: x == 3):
        np.testing.assert_array_equal(op(ours).numpy(), op(theirs).numpy())

    halves = np.array([[0.5, -1.25, 3.0], [256.0, 0.0, -6.5]], np.float16)
    ours, theirs = nbprop.from_numpy(halves), torch.from_numpy(halves)
    assert theirs.dtype == torch.float16
    # Exact in float16 too, so PyTorch's float16 results equal ours in float32.
    for op in (lambda x: x * 2, lambda x: x + x, lambda x: -x, lambda x: x.abs(), lambda x: x.max(),
               lambda x: x.relu(), lambda x: x.T * 0.5, lambda x: x.sum(dim=1)):
        np.testing.assert_array_equal(op(ours).numpy(), op(theirs).float().numpy())
    np.testing.assert_array_equal(ours.numpy(), theirs.float().numpy())
    weight = nbprop.from_numpy(np.array([[1.0], [2.0], [-1.0]], np.float16)).requires_grad_()
    (ours @ weight).sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy(), halves.astype(np.float32).sum(axis=0, keepdims=True).T)


def test_tensor_refuses_integers_past_int64():
    with pytest.raises(ValueError, match="tensor: the value 9223372036854775808 does not fit int64"):
        nbprop.tensor([2**63])
    with pytest.raises(ValueError, match="does not fit int64"):
        nbprop.tensor(np.array([1, 2**64 - 1], np.uint64))
    assert nbprop.tensor([2**63 - 1]).tolist() == [2**63 - 1]
    assert nbprop.tensor(np.array([5], np.uint64)).tolist() == [5]
    assert nbprop.tensor(np.array([2**63], np.uint64), dtype=nbprop.float64).tolist() == [2.0**63]
