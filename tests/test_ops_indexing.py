"""Indexing: basic (views), advanced (copies, scatter-add backward), boolean masks, setitem with autograd."""

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf, nonempty_shapes, shapes, to_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.backend import DEVICES
from nbprop.kernels._jit import PARALLEL_THRESHOLD
from nbprop.ops import indexing

FEW = settings(max_examples=30)


def _random(shape, seed=0, dtype=np.float64):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _positive_steps(key):
    items = key if isinstance(key, tuple) else (key,)
    return all(not isinstance(item, slice) or item.step is None or item.step > 0 for item in items)


def _scatter_add(shape, key, gradient):
    expected = np.zeros(shape)
    np.add.at(expected, key, gradient)
    return expected


# ------------------------------------------------------------------------------------------ getitem


@FEW
@given(shape=shapes, data=st.data())
def test_basic_indexing_is_a_view_equal_to_numpy(shape, data):
    array = data.draw(arrays(shape))
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True).filter(_positive_steps))
    x = nbprop.tensor(array)
    result = x[key]
    assert_close(result, np.asarray(array[key]))
    assert result._version_counter is x._version_counter
    assert array.size == 0 or result.numel() == 0 or np.shares_memory(result.numpy(), x.numpy())


@FEW
@given(shape=nonempty_shapes.filter(lambda s: len(s) > 0), data=st.data())
def test_advanced_indexing_and_its_scatter_add_backward_match_numpy(shape, data):
    array = data.draw(arrays(shape))
    key = data.draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=0, max_dims=2,
                                                                                    min_side=0, max_side=4)))
    x = leaf(array)
    result = x[tuple(nbprop.tensor(k.astype(np.int64)) for k in key)]
    expected = array[key]
    assert_close(result, expected)
    if any(k.ndim for k in key):  # 0-d index tensors act as ints, as in PyTorch: a view
        assert not np.shares_memory(result.detach().numpy(), x.detach().numpy())
    gradient = _random(expected.shape, seed=1)
    result.backward(nbprop.tensor(gradient))
    assert_close(x.grad, _scatter_add(shape, key, gradient))


@FEW
@given(shape=shapes.filter(lambda s: len(s) > 0), data=st.data())
def test_boolean_masks_match_numpy(shape, data):
    array = data.draw(arrays(shape))
    count = data.draw(st.integers(1, len(shape)))
    mask = data.draw(hnp.arrays(np.bool_, shape[:count]))
    x = leaf(array)
    result = x[nbprop.tensor(mask)]
    assert_close(result, array[mask])
    gradient = _random(result.shape, seed=2)
    result.backward(nbprop.tensor(gradient))
    expected = np.zeros(shape)
    expected[mask] = gradient
    assert_close(x.grad, expected)
    assert_close(nbprop.tensor(array)[..., True], array[..., True])


def test_repeated_indices_accumulate_in_backward():
    x = leaf(np.arange(4.0))
    result = x[nbprop.tensor([1, 1, 3, 1, -1])]
    assert_close(result, np.array([1.0, 1.0, 3.0, 1.0, 3.0]))
    result.backward(nbprop.tensor(np.array([1.0, 2.0, 4.0, 8.0, 16.0])))
    assert_close(x.grad, np.array([0.0, 11.0, 0.0, 20.0]))


KEYS = {
    "int": lambda: 1,
    "negative_int": lambda: (-1, slice(None), -2),
    "slices": lambda: (slice(None, None, 2), slice(1, None)),
    "newaxis_ellipsis": lambda: (None, Ellipsis, slice(0, 3, 2)),
    "index_list": lambda: [2, 0, 2],
    "index_pair": lambda: ([0, 2, 2], [1, 1, 3]),
    "separated": lambda: ([[0], [2]], slice(None), [1, 3]),
    "int_and_index": lambda: (0, slice(None), [3, 1]),
    "zero_dim_index": lambda: (nbprop.tensor(1), [0, 2]),
    "index_after_slice": lambda: (slice(1, None), [[0, 1], [1, 0]]),
    "mask": lambda: nbprop.tensor([True, False, True]),
    "mask_2d": lambda: nbprop.tensor(np.arange(12).reshape(3, 4) % 3 == 0),
    "mask_and_index": lambda: (nbprop.tensor([True, False, True]), slice(None), [0, 4]),
    "empty_index": lambda: ([],),
}


def _to_torch_key(key):
    import torch

    items = key if isinstance(key, tuple) else (key,)
    converted = tuple(torch.from_numpy(np.array(i.numpy())) if isinstance(i, nbprop.Tensor) else
                      torch.tensor(i, dtype=torch.long) if isinstance(i, list) else i for i in items)
    return converted if isinstance(key, tuple) else converted[0]


@pytest.mark.torch
@pytest.mark.parametrize("name", KEYS)
def test_getitem_forward_and_backward_match_torch(name):
    import torch

    key = KEYS[name]()
    x = leaf(_random((3, 4, 5)))
    result = x[key]
    torch_x = to_torch(x)
    torch_result = torch_x[_to_torch_key(key)]
    assert_close(result, torch_result.detach().numpy())
    gradient = _random(tuple(torch_result.shape), seed=4)
    result.backward(nbprop.tensor(gradient))
    torch_result.backward(torch.from_numpy(gradient))
    assert_close(x.grad, torch_x.grad.numpy())


@pytest.mark.parametrize("name", KEYS)
def test_getitem_gradcheck(name):
    key = KEYS[name]()
    assert nbprop.gradcheck(lambda t: t[key] * 1, [leaf(_random((3, 4, 5)))])


def test_zero_dim_tensor_indexing():
    x = nbprop.tensor(np.float64(2.5))
    assert_close(x[...], np.float64(2.5))
    assert_close(x[None], np.array([2.5]))
    assert x[()]._version_counter is x._version_counter


@pytest.mark.parametrize("key, error, message", [
    (3, IndexError, r"getitem: index 3 is out of bounds for dimension 0 with size 3"),
    ((slice(None), -6), IndexError, r"getitem: index -6 is out of bounds for dimension 1 with size 5"),
    (([0, 1], [2, 5]), IndexError, r"getitem: index 5 is out of bounds for dimension 1 with size 5"),
    ((0, 0, 0), IndexError, r"getitem: too many indices for tensor of dimension 2 \(shape \[3, 5\]\)"),
    (slice(None, None, -1), ValueError, "getitem: step must be greater than zero"),
    (slice(None, None, 0), ValueError, "getitem: step must be greater than zero"),
    ((Ellipsis, Ellipsis), IndexError, r"getitem: an index can only have a single ellipsis"),
    ("a", TypeError, "getitem: unsupported index of type str"),
])
def test_getitem_errors(key, error, message):
    with pytest.raises(error, match=message):
        nbprop.zeros(3, 5)[key]


def test_index_tensor_dtype_and_mask_shape_errors():
    x = nbprop.zeros(3, 5)
    with pytest.raises(IndexError, match="getitem: tensors used as indices must be int64 or bool tensors, got float32"):
        x[nbprop.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"getitem: the shape of the mask \[2\] at index 0 does not match the shape "
                                         r"of the indexed tensor \[3, 5\]"):
        x[nbprop.tensor([True, False])]


# ------------------------------------------------------------------------------------------ setitem


@FEW
@given(shape=nonempty_shapes.filter(lambda s: len(s) > 0), data=st.data())
def test_setitem_matches_numpy(shape, data):
    array = data.draw(arrays(shape))
    basic = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True).filter(_positive_steps))
    advanced = data.draw(hnp.integer_array_indices(shape))
    for key in (basic, advanced):
        x = nbprop.tensor(array)
        expected = array.copy()
        target_shape = expected[key].shape
        value = _random(target_shape[1:] if target_shape else (), seed=5)  # broadcast over the first dim
        x[tuple(k if not isinstance(k, np.ndarray) else nbprop.tensor(k.astype(np.int64))
                for k in (key if isinstance(key, tuple) else (key,)))] = nbprop.tensor(value)
        expected[key] = value
        assert_close(x, expected)
        assert x._version == 1


def test_setitem_number_mask_and_version():
    x = nbprop.tensor(np.arange(6.0).reshape(2, 3))
    view = x[1]
    x[nbprop.tensor([[True, False, True], [False, True, False]])] = -1.0
    assert_close(x, np.array([[-1.0, 1.0, -1.0], [3.0, -1.0, 5.0]]))
    view[0] = 7  # a view shares storage and version
    assert x[1, 0].item() == 7 and x._version == 2
    ints = nbprop.zeros(3, dtype=nbprop.int64)
    ints[0] = 1.7  # a Python number is cast, as PyTorch does
    ints[1:] = nbprop.tensor([2.9, 3.1])  # basic indexing casts a tensor like copy_
    assert ints.tolist() == [1, 2, 3]


@pytest.mark.torch
@pytest.mark.parametrize("key, value_shape", [((slice(None), 1), (3,)), (([0, 2, 0], slice(1, 3)), (2,)),
                                              ((Ellipsis, [1, 1]), (1, 2)), ((0, slice(1, None)), (1, 1, 3))])
def test_setitem_gradients_match_torch(key, value_shape):
    import torch

    x = leaf(_random((3, 4)))
    value = leaf(_random(value_shape, seed=1))
    y = x * 2
    y[key] = value * 3
    gradient = _random((3, 4), seed=2)
    (y * y).backward(nbprop.tensor(gradient))
    torch_x, torch_value = to_torch(x), to_torch(value)
    torch_y = torch_x * 2
    torch_y[_to_torch_key(key)] = torch_value * 3
    (torch_y * torch_y).backward(torch.from_numpy(gradient))
    assert_close(y, torch_y.detach().numpy())
    assert_close(x.grad, torch_x.grad.numpy())
    assert_close(value.grad, torch_value.grad.numpy())


def test_setitem_gradcheck():
    def function(x, value):
        y = x * 1
        y[1:, [0, 2]] = value
        return y * y

    assert nbprop.gradcheck(function, [leaf(_random((3, 4))), leaf(_random((1, 2), seed=1))])


def test_setitem_errors_and_saved_tensor_detection():
    parameter = leaf(_random((2, 3)))
    with pytest.raises(RuntimeError, match=r"setitem: a leaf tensor that requires grad \(shape \(2, 3\)\)"):
        parameter[0] = 1.0
    with nbprop.no_grad():
        parameter[0] = 1.0
    assert_close(parameter[0], np.ones(3))
    y = parameter * 1
    product = y * y  # saves y
    y[1, 1] = 0.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        product.backward(nbprop.ones(2, 3, dtype=nbprop.float64))
    with pytest.raises(RuntimeError, match=r"setitem: shape mismatch: value tensor of shape \[4\] cannot be "
                                           r"broadcast to indexing result of shape \[3\]"):
        nbprop.zeros(2, 3)[0] = nbprop.zeros(4)
    with pytest.raises(RuntimeError, match="setitem: index put requires the source and destination dtypes match"):
        nbprop.zeros(2, 3, dtype=nbprop.int64)[[0, 1]] = nbprop.zeros(3)
    with pytest.raises(RuntimeError, match="setitem: the tensor written to is an expanded view"):
        nbprop.zeros(3).expand(2, 3)[0, 0] = 1.0
    with pytest.raises(TypeError, match="setitem: the value must be a Tensor or a number, got str"):
        nbprop.zeros(3)[0] = "a"


# ---------------------------------------------------------------------------------- scatter-add kernel


def test_scatter_add_is_deterministic_above_the_parallel_threshold():
    count = PARALLEL_THRESHOLD + 10_000
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 500, size=count)
    weights = _random((500, 3), dtype=np.float32)
    gradient = _random((count, 3), seed=1, dtype=np.float32)

    def backward():
        x = nbprop.tensor(weights, requires_grad=True)
        x[nbprop.tensor(indices)].backward(nbprop.tensor(gradient))
        return x.grad.numpy()

    first, second = backward(), backward()
    assert np.array_equal(first, second)
    assert_close(first, _scatter_add((500, 3), indices, gradient.astype(np.float64)), dtype=np.float32, rtol=1e-4,
                 atol=1e-4)
    # The serial and parallel variants sum each destination in the same order: the same bits.
    for inner in (1, 3):
        positions = (indices[:, None] * 3 + np.arange(3)).reshape(-1) if inner == 1 else indices
        device = DEVICES["cpu"]
        order, starts = np.empty(positions.size, np.int64), np.empty(positions.size + 1, np.int64)
        segment_rows, status = np.empty(positions.size, np.int64), np.empty(3, np.int64)
        device.call("index_sort", positions, 1500 // inner, order, starts, segment_rows, status)
        assert status[0] == 1500 // inner and status[1] == -1
        kernel = device.kernel("index_add_segments")
        serial, parallel = np.zeros((1500 // inner, inner), np.float32), np.zeros((1500 // inner, inner), np.float32)
        kernel.serial(gradient.reshape(-1, inner), order, starts, segment_rows, status, serial)
        kernel.parallel(gradient.reshape(-1, inner), order, starts, segment_rows, status, parallel)
        assert np.array_equal(serial, parallel) and np.array_equal(serial.reshape(500, 3), first)


def test_index_add_helper_accumulates():
    values = nbprop.tensor(np.array([1.0, 2.0, 3.0]))
    result = indexing.index_add(values, np.array([2, 0, 2], np.int64), (2, 2))
    assert_close(result, np.array([[2.0, 0.0], [4.0, 0.0]]))
    rows = indexing.index_add(nbprop.tensor(np.arange(6.0).reshape(3, 2)), np.array([1, 1, 0], np.int64), (2, 2), 1)
    assert_close(rows, np.array([[4.0, 5.0], [2.0, 4.0]]))
