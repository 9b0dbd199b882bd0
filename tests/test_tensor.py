"""The Tensor API: attributes, conversions, dtypes, NumPy interop, repr and Python protocols."""

import numpy as np
import pytest
from helpers import assert_close

import nbprop


def test_attributes():
    x = nbprop.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.shape == (2, 3) and x.ndim == 2 and x.dim() == 2
    assert x.dtype == nbprop.float32 and x.device == "cpu"
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2
    assert x.numel() == 6 and len(x) == 2
    assert x.is_leaf and not x.requires_grad and x.grad is None and x.grad_fn is None
    assert x.is_contiguous() and x.is_floating_point()
    with pytest.raises(IndexError, match=r"size: dimension 2 is out of range for a tensor of 2 dimensions"):
        x.size(2)
    scalar = nbprop.tensor(3.5)
    assert scalar.shape == () and scalar.ndim == 0 and scalar.numel() == 1
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(scalar)


def test_tensor_keeps_zero_dimensional_data_zero_dimensional():
    for data in (3.0, 2, True, np.float64(1.5), np.array(2.0)):
        assert nbprop.tensor(data).shape == ()
    assert nbprop.tensor(nbprop.tensor(2.0)).shape == ()
    assert nbprop.tensor([[5]]).shape == (1, 1)
    x = nbprop.tensor(2.0, dtype=nbprop.float64, requires_grad=True)
    y = x.exp() * x
    assert y.shape == ()
    y.backward()
    assert x.grad.shape == ()
    assert_close(x.grad, np.exp(2.0) * 3.0)


def test_item_and_python_numbers():
    assert nbprop.tensor(2.5).item() == 2.5
    assert isinstance(nbprop.tensor([7]).item(), int)
    assert nbprop.tensor([[True]]).item() is True
    assert float(nbprop.tensor([1.5])) == 1.5 and int(nbprop.tensor(4)) == 4
    assert bool(nbprop.tensor([1.0])) and not bool(nbprop.tensor(0))
    assert [10, 20, 30][nbprop.tensor(1)] == 20
    with pytest.raises(RuntimeError, match="a tensor with 2 elements cannot be converted to a scalar"):
        nbprop.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="truth value of a tensor with 2 elements is ambiguous"):
        bool(nbprop.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][nbprop.tensor(1.0)]
    assert nbprop.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]


def test_numpy_shares_storage_and_refuses_tensors_that_require_grad():
    x = nbprop.tensor([1.0, 2.0])
    array = x.numpy()
    array[0] = 10.0
    assert x.tolist() == [10.0, 2.0]
    y = nbprop.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"numpy\(\): cannot call on a tensor that requires grad; use "
                                           r"tensor.detach\(\).numpy\(\)"):
        y.numpy()
    assert np.shares_memory(y.detach().numpy(), y.data.numpy())
    np.testing.assert_array_equal(np.asarray(nbprop.tensor([1, 2])), [1, 2])
    assert np.asarray(nbprop.tensor([1, 2]), dtype=np.float64).dtype == np.float64


def test_from_numpy_shares_memory_both_ways():
    array = np.arange(6.0).reshape(2, 3)
    x = nbprop.from_numpy(array)
    assert x.dtype == nbprop.float64 and x.shape == (2, 3)
    array[0, 0] = 42.0
    assert x.tolist()[0][0] == 42.0
    with nbprop.no_grad():
        x.add_(1)
    assert array[0, 0] == 43.0
    strided = nbprop.from_numpy(array[:, ::2])
    assert strided.shape == (2, 2) and not strided.is_contiguous()
    assert_close(strided * 2, array[:, ::2] * 2)
    for dtype in (np.float32, np.int64, np.bool_):
        assert nbprop.from_numpy(np.zeros(2, dtype)).dtype == dtype
    with pytest.raises(TypeError, match="from_numpy: dtype uint64 is not supported"):
        nbprop.from_numpy(np.zeros(2, np.uint64))
    with pytest.raises(TypeError, match="from_numpy: expects a NumPy array, got list"):
        nbprop.from_numpy([1.0, 2.0])


def test_tensor_copies_its_data():
    array = np.array([1.0, 2.0])
    x = nbprop.tensor(array)
    array[0] = 5.0
    assert x.tolist() == [1.0, 2.0]
    y = nbprop.tensor(x)
    with nbprop.no_grad():
        y.add_(1)
    assert x.tolist() == [1.0, 2.0]


def test_dtype_conversions():
    x = nbprop.tensor([1.7, -2.7, 0.0])
    assert x.to(nbprop.float64).dtype == nbprop.float64
    assert x.to("float64").dtype == nbprop.float64
    assert x.to(np.float64).dtype == nbprop.float64
    assert x.to(float).dtype == nbprop.float32
    assert x.double().dtype == nbprop.float64 and x.double().float().dtype == nbprop.float32
    assert x.long().tolist() == [1, -2, 0]  # truncation toward zero, like PyTorch
    assert x.int().dtype == nbprop.int64
    assert x.bool().tolist() == [True, True, False]
    assert x.type_as(nbprop.tensor([1])).dtype == nbprop.int64
    assert x.to(nbprop.float32) is x and x.to("cpu") is x and x.cpu() is x
    copied = x.to(nbprop.float32, copy=True)
    assert copied is not x and not np.shares_memory(copied.numpy(), x.numpy())
    with pytest.raises(RuntimeError, match=r"to\(\): device 'cuda' is not available"):
        x.to("cuda")
    with pytest.raises(TypeError, match="dtype .*complex64.* is not supported"):
        x.to(np.complex64)


def test_dtype_conversion_is_differentiable():
    x = nbprop.tensor([1.5, -0.5], requires_grad=True)
    y = x.double() * 3
    assert y.dtype == nbprop.float64
    y.backward(nbprop.ones(2, dtype=nbprop.float64))
    assert x.grad.dtype == nbprop.float32
    assert_close(x.grad, np.array([3.0, 3.0], np.float32))
    probe = nbprop.tensor([0.5, -1.25], dtype=nbprop.float64, requires_grad=True)
    # A float32 detour: large steps, so that float32 rounding does not swamp the differences.
    assert nbprop.gradcheck(lambda t: (t.float() * 2).double(), (probe,), eps=1e-2, atol=1e-4)


def test_dtypes_and_aliases():
    assert nbprop.float32 == np.float32 and nbprop.float64 == np.float64
    assert nbprop.int64 == np.int64 and nbprop.bool == np.bool_
    assert nbprop.float is nbprop.float32 and nbprop.double is nbprop.float64 and nbprop.long is nbprop.int64
    assert nbprop.get_default_dtype() == nbprop.float32
    for spelling in (nbprop.float64, np.float64, "float64", "double", np.dtype("float64")):
        assert nbprop.zeros(1, dtype=spelling).dtype == nbprop.float64
    assert nbprop.tensor([1, 2], dtype=np.int32).dtype == nbprop.int64  # other integer widths widen
    assert nbprop.tensor([1.0], dtype=np.float16).dtype == nbprop.float32
    with pytest.raises(TypeError, match="dtype .* is not supported"):
        nbprop.zeros(1, dtype=np.complex128)


def test_set_default_dtype():
    try:
        nbprop.set_default_dtype(nbprop.float64)
        assert nbprop.tensor([1.5]).dtype == nbprop.float64
        assert nbprop.zeros(2).dtype == nbprop.float64
        assert (nbprop.tensor([1, 2]) / 2).dtype == nbprop.float64
    finally:
        nbprop.set_default_dtype(nbprop.float32)
    with pytest.raises(TypeError, match="only float32 or float64 can be the default"):
        nbprop.set_default_dtype(nbprop.int64)


def test_requires_grad_and_data():
    x = nbprop.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = nbprop.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="cannot be called on a non-leaf tensor"):
        y.requires_grad_(False)
    data = y.data
    assert not data.requires_grad and np.shares_memory(data.numpy(), y._data)
    z = nbprop.tensor([0.0, 0.0])
    z.data = nbprop.tensor([3.0, 4.0])
    assert z.tolist() == [3.0, 4.0]
    with pytest.raises(TypeError, match="Tensor.data must be set to a Tensor"):
        z.data = [1.0]


def test_repr_is_readable():
    assert repr(nbprop.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(nbprop.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(nbprop.tensor(3.0)) == "tensor(3.)"
    assert repr(nbprop.tensor([1.0], dtype=nbprop.float64)) == "tensor([1.], dtype=nbprop.float64)"
    assert repr(nbprop.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(nbprop.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<MulBackward0>)"
    assert repr(nbprop.tensor([True])) == "tensor([True])"  # as PyTorch: a bool tensor's values say its dtype
    assert repr(nbprop.zeros(2, 2)).startswith("tensor([[0., 0.],\n        [0., 0.]]")


def test_iteration_and_hash():
    x = nbprop.tensor([[1, 2], [3, 4]])
    assert [row.tolist() for row in x] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(nbprop.tensor(1))
    assert len({x, nbprop.tensor([1])}) == 2  # hashable by identity, although == is elementwise


def test_tensor_constructor_class():
    x = nbprop.Tensor([1.0, 2.0], requires_grad=True)
    assert isinstance(x, nbprop.Tensor) and x.requires_grad and x.device == "cpu"
    assert nbprop.Tensor([1, 2], dtype=nbprop.float64).dtype == nbprop.float64


def test_method_forms_match_operators():
    a = nbprop.tensor([1.0, -2.0, 3.0])
    b = nbprop.tensor([2.0, 2.0, -1.0])
    pairs = [
        (a.add(b), a + b), (a.sub(b), a - b), (a.mul(b), a * b), (a.div(b), a / b), (a.pow(2), a ** 2),
        (a.neg(), -a), (a.abs(), abs(a)), (a.add(b, alpha=2), a + 2 * b), (a.sub(b, alpha=0.5), a - 0.5 * b),
        (a.maximum(b), nbprop.maximum(a, b)), (a.minimum(b), nbprop.minimum(a, b)), (a.clip(0, 1), a.clamp(0, 1)),
        (a.where(a > 0, b), nbprop.where(a > 0, a, b)), (+a, a),
    ]
    for method, operator_form in pairs:
        np.testing.assert_array_equal(method.numpy(), operator_form.numpy())
    for method, operator_form in [(a.eq(b), a == b), (a.ne(b), a != b), (a.lt(b), a < b), (a.le(b), a <= b),
                                  (a.gt(b), a > b), (a.ge(b), a >= b)]:
        np.testing.assert_array_equal(method.numpy(), operator_form.numpy())


def test_numpy_scalars_and_arrays_defer_to_tensor():
    x = nbprop.tensor([1.0, 2.0])
    assert isinstance(np.float64(2.0) * x, nbprop.Tensor)
    assert (np.float64(2.0) * x).dtype == nbprop.float32  # a NumPy scalar counts as a Python number
    assert (np.int64(3) + nbprop.tensor([1])).dtype == nbprop.int64


def test_in_place_arithmetic_operators():
    x = nbprop.tensor([1.0, 2.0])
    storage = x.numpy()
    x += 1
    x *= 3
    x -= nbprop.tensor([1.0, 1.0])
    x /= 2
    assert x.numpy() is storage and x.tolist() == [2.5, 4.0]
    x.clamp_(max=3.0)
    assert x.tolist() == [2.5, 3.0]
    x.zero_()
    assert x.tolist() == [0.0, 0.0]
    x.fill_(1.5)
    x.copy_(nbprop.tensor([[7.0]]).reshape(1))
    assert x.tolist() == [7.0, 7.0]
    assert x._version == 8
