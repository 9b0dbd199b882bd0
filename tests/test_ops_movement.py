"""Movement ops: reshape/view/flatten, permute/transpose, squeeze/unsqueeze, split/chunk and cat/stack."""

import math

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf, shapes, to_torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop

FEW = settings(max_examples=25)


def _random(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _gradients_like_torch(function, torch_function, *arrays_in):
    """Backward of the same random gradient through nbprop and PyTorch; returns both sets of gradients."""
    import torch

    inputs = [leaf(a) for a in arrays_in]
    result = function(*inputs)
    gradient = _random(result.shape, seed=7)
    result.backward(nbprop.tensor(gradient))
    torch_inputs = [to_torch(t) for t in inputs]
    torch_result = torch_function(*torch_inputs)
    assert_close(result, torch_result.detach().numpy())
    torch_result.backward(torch.from_numpy(gradient))
    for mine, theirs in zip(inputs, torch_inputs):
        assert_close(mine.grad, theirs.grad.numpy())


# ---------------------------------------------------------------------------------- reshape and view


@FEW
@given(shape=shapes, data=st.data())
def test_reshape_and_view_match_numpy_and_share_storage(shape, data):
    array = data.draw(arrays(shape))
    x = nbprop.tensor(array)
    size = array.size
    for target in [(-1,), (size, 1), tuple(reversed(shape)), (1,) + tuple(shape)]:
        result = x.reshape(target)
        assert_close(result, array.reshape(target))
        assert np.shares_memory(result.numpy(), x.numpy()) or size == 0
        assert result._version_counter is x._version_counter
        assert_close(x.view(target), array.reshape(target))


def test_reshape_copies_when_no_view_exists_and_view_raises():
    x = nbprop.tensor(_random((3, 4))).t()
    copied = x.reshape(12)
    assert_close(copied, x.numpy().reshape(12))
    assert not np.shares_memory(copied.numpy(), x.numpy())
    assert copied._version_counter is not x._version_counter
    with pytest.raises(RuntimeError, match=r"view: view size is not compatible.*\(4, 3\).*Use .reshape"):
        x.view(12)


@pytest.mark.parametrize("shape, message", [
    ((5,), r"reshape: shape \[5\] is invalid for input of size 6"),
    ((-1, -1), r"reshape: only one dimension can be inferred"),
    ((-1, 4), r"reshape: shape \[-1, 4\] is invalid for input of size 6"),
    ((-2, 3), r"reshape: invalid shape dimension -2"),
])
def test_reshape_errors(shape, message):
    with pytest.raises(RuntimeError, match=message):
        nbprop.zeros(2, 3).reshape(shape)


def test_reshape_of_empty_with_ambiguous_inference_raises():
    with pytest.raises(RuntimeError, match="ambiguous"):
        nbprop.zeros(0, 3).reshape(-1, 0)


@pytest.mark.parametrize("shape, start, end", [((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 3, 4), 1, 1),
                                               ((2, 0, 4), 0, 1), ((), 0, -1), ((5,), 0, 0)])
def test_flatten(shape, start, end):
    array = _random(shape)
    result = nbprop.tensor(array).flatten(start, end)
    if array.ndim == 0:
        expected = array.reshape(1)
    else:
        start, end = start % array.ndim, end % array.ndim
        expected = array.reshape(shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])
    assert_close(result, expected)
    with pytest.raises(RuntimeError, match="flatten: invalid args: start_dim 2 cannot come after end_dim 1"):
        nbprop.zeros(2, 3, 4).flatten(2, 1)


# -------------------------------------------------------------------------------- permute, transpose


@FEW
@given(shape=shapes, data=st.data())
def test_permute_and_transpose_match_numpy(shape, data):
    array = data.draw(arrays(shape))
    dims = data.draw(st.permutations(range(len(shape))))
    x = nbprop.tensor(array)
    result = x.permute(*dims) if dims else x.permute(())
    assert_close(result, np.transpose(array, dims))
    assert result._version_counter is x._version_counter
    if array.ndim:
        dim0 = data.draw(st.integers(-array.ndim, array.ndim - 1))
        dim1 = data.draw(st.integers(-array.ndim, array.ndim - 1))
        assert_close(x.transpose(dim0, dim1), np.swapaxes(array, dim0, dim1))


def test_permute_errors():
    with pytest.raises(RuntimeError, match="permute: duplicate dims are not allowed"):
        nbprop.zeros(2, 3).permute(0, 0)
    with pytest.raises(RuntimeError, match=r"permute: the tensor has 2 dimensions \(shape \(2, 3\)\)"):
        nbprop.zeros(2, 3).permute(0)
    with pytest.raises(IndexError, match="transpose: dimension 2 is out of range"):
        nbprop.zeros(2, 3).transpose(0, 2)


# --------------------------------------------------------------------------------- squeeze, unsqueeze


@FEW
@given(shape=shapes, data=st.data())
def test_squeeze_unsqueeze_match_numpy(shape, data):
    array = data.draw(arrays(shape))
    x = nbprop.tensor(array)
    assert_close(x.squeeze(), np.squeeze(array))
    if array.ndim:
        dim = data.draw(st.integers(-array.ndim, array.ndim - 1))
        expected = np.squeeze(array, dim) if array.shape[dim] == 1 else array  # a non-1 dim is a no-op
        assert_close(x.squeeze(dim), expected)
        dims = tuple(data.draw(st.sets(st.integers(0, array.ndim - 1))))
        ones = tuple(d for d in dims if array.shape[d] == 1)
        assert_close(x.squeeze(dims), np.squeeze(array, ones) if ones else array)
    dim = data.draw(st.integers(-array.ndim - 1, array.ndim))
    assert_close(x.unsqueeze(dim), np.expand_dims(array, dim))
    assert x.unsqueeze(dim)._version_counter is x._version_counter


def test_squeeze_repeated_dim_raises():
    with pytest.raises(RuntimeError, match=r"squeeze: a dimension appears more than once in \(0, 1, 0\)"):
        nbprop.zeros(1, 3).squeeze((0, 1, 0))


# ------------------------------------------------------------------------------------- split, chunk


@pytest.mark.torch
@pytest.mark.parametrize("size", [0, 1, 5, 6, 7, 10])
@pytest.mark.parametrize("pieces", [1, 2, 3, 4, 5])
def test_split_and_chunk_sizes_match_torch(size, pieces):
    import torch

    array = _random((2, size))
    x = nbprop.tensor(array)
    for mine, theirs in [(x.chunk(pieces, 1), torch.from_numpy(array).chunk(pieces, 1))] + (
        [(x.split(pieces, -1), torch.from_numpy(array).split(pieces, -1))]
    ):
        assert [p.shape for p in mine] == [tuple(p.shape) for p in theirs]
        for piece, expected in zip(mine, theirs):
            assert_close(piece, expected.numpy())
            assert piece._version_counter is x._version_counter


def test_split_with_sizes_and_errors():
    array = _random((5, 2))
    pieces = nbprop.tensor(array).split([2, 0, 3])
    for piece, expected in zip(pieces, np.split(array, [2, 2])):
        assert_close(piece, expected)
    with pytest.raises(RuntimeError, match=r"split: split_with_sizes expects split_sizes to sum exactly to 5"):
        nbprop.tensor(array).split([1, 2])
    with pytest.raises(RuntimeError, match="split: expects split_size be non-negative"):
        nbprop.tensor(array).split(-1)
    with pytest.raises(RuntimeError, match="split: split_size can only be 0 if dimension size is 0"):
        nbprop.tensor(array).split(0)
    with pytest.raises(RuntimeError, match="chunk: expects `chunks` to be greater than 0, got: 0"):
        nbprop.tensor(array).chunk(0)


def test_split_gradcheck_and_pieces_have_their_own_gradient():
    x = leaf(_random((5, 3)))
    assert nbprop.gradcheck(lambda t: t.split(2, 0), [x])
    second = x.split(2, 0)[1]
    (second * 3).backward(nbprop.ones(2, 3, dtype=nbprop.float64))
    expected = np.zeros((5, 3))
    expected[2:4] = 3
    assert_close(x.grad, expected)


# --------------------------------------------------------------------------------------- cat, stack


@FEW
@given(shape=shapes.filter(lambda s: len(s) > 0), data=st.data())
def test_cat_and_stack_match_numpy(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    extents = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    parts = []
    for extent in extents:
        part_shape = list(shape)
        part_shape[dim] = extent
        parts.append(data.draw(arrays(tuple(part_shape))))
    assert_close(nbprop.cat([nbprop.tensor(p) for p in parts], dim), np.concatenate(parts, dim))
    same = [data.draw(arrays(shape)) for _ in extents]
    stack_dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert_close(nbprop.stack([nbprop.tensor(p) for p in same], stack_dim), np.stack(same, stack_dim))


def test_cat_promotes_dtypes_and_skips_legacy_empty():
    ints = nbprop.tensor([[1, 2]])
    floats = nbprop.tensor([[0.5, 1.5]])
    result = nbprop.cat([ints, floats])
    assert result.dtype == nbprop.float32
    assert_close(result, np.array([[1, 2], [0.5, 1.5]], np.float32))
    assert nbprop.cat([nbprop.tensor([True]), nbprop.tensor([3])]).dtype == nbprop.int64
    x = leaf(_random((2, 3)))
    empty = leaf(np.zeros(0))
    result = nbprop.cat([x, empty, x], 1)
    assert_close(result, np.concatenate([x.detach().numpy()] * 2, 1))
    assert result.shape == (2, 6)
    result.backward(nbprop.ones(2, 6, dtype=nbprop.float64))
    assert_close(x.grad, np.full((2, 3), 2.0))
    assert empty.grad.shape == (0,)


@pytest.mark.parametrize("tensors, dim, error, message", [
    ([], 0, ValueError, "cat: expected a non-empty list of Tensors"),
    ([nbprop.zeros(2, 3), nbprop.zeros(2, 4)], 0, RuntimeError,
     r"cat: sizes of tensors must match except in dimension 0. Expected size 3 but got size 4 for tensor number 1"),
    ([nbprop.zeros(2, 3), nbprop.zeros(2, 3, 1)], 0, RuntimeError,
     "cat: tensors must have the same number of dimensions: got 2"),
    ([nbprop.zeros(()), nbprop.zeros(1)], 0, RuntimeError, r"zero-dimensional tensor \(at position 0\)"),
    ([nbprop.zeros(2, 3)], 2, IndexError, "cat: dimension 2 is out of range"),
])
def test_cat_errors(tensors, dim, error, message):
    with pytest.raises(error, match=message):
        nbprop.cat(tensors, dim)


def test_stack_errors():
    with pytest.raises(RuntimeError, match="stack: expects a non-empty TensorList"):
        nbprop.stack([])
    with pytest.raises(RuntimeError, match=r"stack: expects each tensor to be equal size, but got \[2, 3\] at entry 0"):
        nbprop.stack([nbprop.zeros(2, 3), nbprop.zeros(2, 4)])


# ---------------------------------------------------------------------------------------- gradients


MOVES = {
    "reshape": lambda t: t.reshape(3, -1),
    "reshape_copy": lambda t: t.t().reshape(-1),
    "view": lambda t: t.view(2, 3, 2),
    "flatten": lambda t: t.unsqueeze(0).flatten(1),
    "transpose": lambda t: t.transpose(0, 1),
    "permute": lambda t: t.unsqueeze(1).permute(2, 0, 1),
    "squeeze": lambda t: t.unsqueeze(0).unsqueeze(-1).squeeze(),
    "chunk": lambda t: t.chunk(3, 1),
    "cat": lambda t: nbprop.cat([t, t * 2, t[:1]], 0),
    "stack": lambda t: nbprop.stack([t, t * 2], 1),
}


@pytest.mark.parametrize("name", MOVES)
def test_gradcheck(name):
    assert nbprop.gradcheck(MOVES[name], [leaf(_random((4, 3)))])


@pytest.mark.torch
def test_gradients_match_torch():
    import torch

    _gradients_like_torch(lambda t: t.t().reshape(-1), lambda t: t.t().reshape(-1), _random((4, 3)))
    _gradients_like_torch(lambda t: t.permute(2, 0, 1).squeeze(1), lambda t: t.permute(2, 0, 1).squeeze(1),
                          _random((2, 1, 3)))
    _gradients_like_torch(lambda a, b: nbprop.cat([a, b, a], 1), lambda a, b: torch.cat([a, b, a], 1),
                          _random((2, 3)), _random((2, 1)))
    _gradients_like_torch(lambda a, b: nbprop.stack([a, b], -1), lambda a, b: torch.stack([a, b], -1),
                          _random((2, 3)), _random((2, 3)))
    _gradients_like_torch(lambda t: nbprop.cat(t.split([1, 3], 1)[::-1], 1),
                          lambda t: torch.cat(t.split([1, 3], 1)[::-1], 1), _random((2, 4)))


def test_in_place_change_to_a_view_of_a_saved_tensor_makes_backward_raise():
    x = leaf(_random((2, 3)))
    base = x * 1
    view = base.transpose(0, 1)
    product = view * view  # saves the view
    base.mul_(2)  # changes the view's storage
    assert view._version == base._version == 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        product.backward(nbprop.ones(3, 2, dtype=nbprop.float64))
