"""Gather and scatter: gather, scatter, scatter_add, index_select, masked_fill against PyTorch, their gradients,
bounds-checked indices (also changed after forward), the threaded variants."""

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


def _random(shape, seed=0, dtype=np.float64):
    array = np.random.default_rng(seed).standard_normal(shape) * 3
    return np.asarray(np.round(array) if np.dtype(dtype).kind in "ib" else array, dtype=dtype)


@st.composite
def gather_cases(draw, unique_per_line=False):
    """(input shape, dim, index array): index of the input's rank, no larger than the input apart from dim."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    axis = dim % len(shape)
    index_shape = tuple(draw(st.integers(0, size)) for size in shape)
    if unique_per_line:
        # scatter: distinct positions along dim within each line, so that no write overwrites another
        count = draw(st.integers(0, shape[axis]))
        index_shape = index_shape[:axis] + (count,) + index_shape[axis + 1:]
        seed = draw(st.integers(0, 2**16))
        moved = list(index_shape[:axis] + index_shape[axis + 1:])
        lines = np.random.default_rng(seed).random(moved + [shape[axis]]).argsort(-1)[..., :count]
        index = np.moveaxis(lines, -1, axis).astype(np.int64)
        return shape, dim, np.ascontiguousarray(index)
    index_shape = index_shape[:axis] + (draw(st.integers(0, 5)),) + index_shape[axis + 1:]
    index = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(0, shape[axis] - 1)))
    return shape, dim, index


# ----------------------------------------------------------------------------------------------- gather


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES + [np.bool_])
@FEW
@given(case=gather_cases())
def test_gather_matches_torch(dtype, case):
    import torch

    shape, dim, index = case
    array = _random(shape, dtype=dtype)
    result = nbprop.gather(nbprop.tensor(array), dim, nbprop.tensor(index))
    expected = torch.gather(torch.from_numpy(array), dim, torch.from_numpy(index))
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result.numpy(), expected.numpy())


@pytest.mark.torch
@FEW
@given(case=gather_cases())
def test_gather_gradient_matches_torch(case):
    shape, dim, index = case
    x = leaf(_random(shape))
    result = x.gather(dim, nbprop.tensor(index))
    gradient = _random(result.shape, seed=1)
    result.backward(nbprop.tensor(gradient))
    expected_x = to_torch(x, requires_grad=True)
    expected_x.gather(dim, to_torch(nbprop.tensor(index))).backward(to_torch(nbprop.tensor(gradient)))
    assert_close(x.grad, expected_x.grad.numpy())


def test_gather_gradcheck_with_repeated_indices():
    x = leaf(_random((3, 4)))
    index = nbprop.tensor([[0, 0, 3], [2, 2, 2]])
    assert nbprop.gradcheck(lambda t: nbprop.gather(t, 1, index), (x,))
    assert nbprop.gradcheck(lambda t: t.gather(0, nbprop.tensor([[2, 0, 1, 1]])), (x,))


def test_gather_of_zero_dimensional_tensors():
    x = nbprop.tensor(3.0, dtype=nbprop.float64, requires_grad=True)
    result = nbprop.gather(x, 0, nbprop.tensor([0, 0]))
    assert result.shape == (2,) and result.tolist() == [3.0, 3.0]
    result.sum().backward()
    assert x.grad.item() == 2.0
    assert nbprop.gather(nbprop.tensor([1.0, 2.0]), 0, nbprop.tensor(1)).shape == ()


# ---------------------------------------------------------------------------------------------- scatter


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(case=gather_cases(unique_per_line=True), use_value=st.booleans())
def test_scatter_matches_torch(dtype, case, use_value):
    import torch

    shape, dim, index = case
    array = _random(shape, dtype=dtype)
    source = _random(index.shape, seed=2, dtype=dtype)
    if use_value:
        result = nbprop.tensor(array).scatter(dim, nbprop.tensor(index), value=2.5)
        expected = torch.from_numpy(array).scatter(dim, torch.from_numpy(index), value=2.5)
    else:
        result = nbprop.scatter(nbprop.tensor(array), dim, nbprop.tensor(index), nbprop.tensor(source))
        expected = torch.scatter(torch.from_numpy(array), dim, torch.from_numpy(index), torch.from_numpy(source))
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result.numpy(), expected.numpy())


@pytest.mark.torch
@pytest.mark.parametrize("accumulate", [False, True])
@FEW
@given(case=gather_cases(unique_per_line=True))
def test_scatter_and_scatter_add_gradients_match_torch(accumulate, case):
    shape, dim, index = case
    x, source = leaf(_random(shape)), leaf(_random(index.shape, seed=3))
    op = "scatter_add" if accumulate else "scatter"
    result = getattr(nbprop, op)(x, dim, nbprop.tensor(index), source)
    gradient = _random(shape, seed=4)
    result.backward(nbprop.tensor(gradient))
    torch_x, torch_source = to_torch(x, True), to_torch(source, True)
    torch_result = getattr(torch_x, op)(dim, to_torch(nbprop.tensor(index)), torch_source)
    torch_result.backward(to_torch(nbprop.tensor(gradient)))
    assert_close(result, torch_result.detach().numpy())
    assert_close(x.grad, torch_x.grad.numpy())
    assert_close(source.grad, torch_source.grad.numpy())


@pytest.mark.torch
def test_scatter_add_with_repeated_indices_matches_torch_in_float32():
    import torch

    index = np.array([[0, 1, 0, 0, 2], [2, 2, 2, 1, 0]])
    source = _random((2, 5), seed=5, dtype=np.float32)
    base = _random((3, 5), seed=6, dtype=np.float32)
    result = nbprop.tensor(base).scatter_add(0, nbprop.tensor(index), nbprop.tensor(source))
    expected = torch.from_numpy(base).scatter_add(0, torch.from_numpy(index), torch.from_numpy(source))
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
    flags = nbprop.tensor([[True, False], [False, False]]).scatter_add(1, nbprop.tensor([[1, 1]]),
                                                                      nbprop.tensor([[True, True]]))
    assert flags.dtype == nbprop.bool and flags.tolist() == [[True, True], [False, False]]


@pytest.mark.torch
def test_scatter_with_repeated_indices_keeps_the_last_write_and_zeroes_overwritten_gradients():
    import torch

    x, source = leaf(np.zeros((2, 3))), leaf([[1.0, 2.0, 3.0]])
    index = [[2, 0, 2]]
    result = x.scatter(1, nbprop.tensor(index), source)
    torch_x, torch_source = to_torch(x, True), to_torch(source, True)
    expected = torch_x.scatter(1, torch.tensor(index), torch_source)
    assert_close(result, expected.detach().numpy())
    weights = _random((2, 3), seed=7)
    (result * nbprop.tensor(weights)).sum().backward()
    (expected * torch.from_numpy(weights)).sum().backward()
    assert_close(x.grad, torch_x.grad.numpy())
    assert_close(source.grad, torch_source.grad.numpy())
    assert x.grad.tolist()[0] == [0.0, weights[0, 1], 0.0]


def test_scatter_gradcheck_and_a_source_larger_than_the_index():
    x, source = leaf(_random((3, 4))), leaf(_random((2, 5), seed=8))
    index = nbprop.tensor([[3, 0], [1, 2]])
    assert nbprop.gradcheck(lambda a, b: nbprop.scatter(a, 1, index, b), (x, source))
    assert nbprop.gradcheck(lambda a, b: nbprop.scatter_add(a, 0, nbprop.tensor([[2, 2], [2, 0]]), b), (x, source))
    # Only source[:2, :2] is read: the rest of source gets zero gradient (PyTorch raises in backward here).
    nbprop.scatter(x, 1, index, source).sum().backward()
    expected = np.zeros((2, 5))
    expected[:, :2] = 1.0
    assert_close(source.grad, expected)


def test_in_place_scatter_and_scatter_add():
    x = nbprop.zeros(2, 3)
    version = x._version
    assert x.scatter_(1, nbprop.tensor([[2], [0]]), 5.0) is x
    assert x.tolist() == [[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]] and x._version == version + 1
    x.scatter_add_(1, nbprop.tensor([[2, 2]]), nbprop.ones(1, 2))
    assert x.tolist() == [[0.0, 0.0, 7.0], [5.0, 0.0, 0.0]]
    counts = nbprop.zeros(4, dtype=nbprop.int64)
    counts.scatter_add_(0, nbprop.tensor([1, 1, 3]), nbprop.ones(3, dtype=nbprop.int64))
    assert counts.tolist() == [0, 2, 0, 1]


# ----------------------------------------------------------------------------------------- index_select


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4), data=st.data())
def test_index_select_and_its_gradient_match_torch(dtype, shape, data):
    import torch

    ndim = len(shape)
    dim = data.draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1))
    size = shape[dim % ndim] if ndim else 1
    index = data.draw(hnp.arrays(np.int64, data.draw(st.sampled_from([(), (0,), (1,), (3,), (6,)]) if ndim else
                                                     st.just((1,))), elements=st.integers(0, size - 1)))
    array = _random(shape, dtype=dtype)
    result = nbprop.index_select(nbprop.tensor(array), dim, nbprop.tensor(index))
    expected = torch.index_select(torch.from_numpy(array), dim, torch.from_numpy(index))
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
    if dtype == np.float64:
        x = leaf(array)
        gradient = _random(result.shape, seed=9)
        x.index_select(dim, nbprop.tensor(index)).backward(nbprop.tensor(gradient))
        torch_x = torch.from_numpy(array).requires_grad_()
        torch_x.index_select(dim, torch.from_numpy(index)).backward(torch.from_numpy(gradient))
        assert_close(x.grad, torch_x.grad.numpy())


def test_index_select_gradcheck():
    x = leaf(_random((3, 2, 4)))
    assert nbprop.gradcheck(lambda t: t.index_select(2, nbprop.tensor([3, 3, 0])), (x,))
    assert nbprop.gradcheck(lambda t: t.index_select(0, nbprop.tensor([1, 1, 2, 0])), (x,))


# ------------------------------------------------------------------------------------------ masked_fill


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES + [np.bool_])
@FEW
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), data=st.data())
def test_masked_fill_broadcasts_as_torch(dtype, shapes, data):
    import torch

    (shape, mask_shape), _ = shapes
    array = _random(shape, dtype=dtype)
    mask = data.draw(hnp.arrays(np.bool_, mask_shape))
    value = data.draw(st.sampled_from([2.7, -1, 0, True]))
    result = nbprop.tensor(array).masked_fill(nbprop.tensor(mask), value)
    expected = torch.from_numpy(array).masked_fill(torch.from_numpy(mask), value)
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
    tensor_value = nbprop.masked_fill(nbprop.tensor(array), nbprop.tensor(mask), nbprop.tensor(-2.5))
    expected = torch.masked_fill(torch.from_numpy(array), torch.from_numpy(mask), torch.tensor(-2.5))
    np.testing.assert_array_equal(tensor_value.numpy(), expected.numpy())


@pytest.mark.torch
def test_masked_fill_gradients_reach_input_and_value_tensor():
    import torch

    x, value = leaf(_random((2, 3))), leaf(1.5)
    mask = np.array([True, False, True])
    weights = _random((2, 3), seed=10)
    (nbprop.masked_fill(x, nbprop.tensor(mask), value) * nbprop.tensor(weights)).sum().backward()
    torch_x, torch_value = to_torch(x, True), to_torch(value, True)
    (torch_x.masked_fill(torch.from_numpy(mask), torch_value) * torch.from_numpy(weights)).sum().backward()
    assert_close(x.grad, torch_x.grad.numpy())
    assert_close(value.grad, torch_value.grad.numpy())
    assert nbprop.gradcheck(lambda a, v: a.masked_fill(nbprop.tensor(mask), v), (leaf(_random((2, 3))), leaf(0.5)))
    # A mask larger than the input: the result takes the broadcast shape, the input's gradient sums back.
    wide = nbprop.tensor([[True, False, False], [False, True, False]])
    assert nbprop.gradcheck(lambda a, v: nbprop.masked_fill(a, wide, v), (leaf(_random(3)), leaf(0.5)))


def test_masked_fill_in_place():
    x = nbprop.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.masked_fill_(nbprop.tensor([False, True]), 0.0) is x
    assert x.tolist() == [[1.0, 0.0], [3.0, 0.0]] and x._version == 1
    with pytest.raises(RuntimeError, match="masked_fill_"):
        x.masked_fill_(nbprop.ones(2, 2, 2, dtype=nbprop.bool), 1.0)


# ------------------------------------------------------------------------------------------ bad input


def test_bad_indices_raise_pytorchs_errors():
    x = nbprop.tensor(_random((2, 3)))
    for bad in ([[5]], [[-1]], [[3]]):
        with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 3"):
            x.gather(1, nbprop.tensor(bad))
        with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 3"):
            x.scatter(1, nbprop.tensor(bad), 1.0)
        with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 3"):
            x.scatter_add(1, nbprop.tensor(bad), nbprop.ones(1, 1, dtype=nbprop.float64))
        with pytest.raises(IndexError, match="index_select"):
            x.index_select(1, nbprop.tensor(bad[0]))
    with pytest.raises(RuntimeError, match="out of bounds"):
        x.gather(0, nbprop.tensor([[0, 2**62, 0]]))
    with pytest.raises(IndexError, match="index_select"):
        x.index_select(0, nbprop.tensor([0, -2**63]))


def test_bad_dims_dtypes_and_shapes_raise_pytorchs_errors():
    x = nbprop.tensor(_random((2, 3)))
    index = nbprop.tensor([[0]])
    for call in (lambda: x.gather(2, index), lambda: x.scatter(-3, index, 1.0), lambda: x.index_select(2, index[0])):
        with pytest.raises(IndexError, match="out of range"):
            call()
    for op in ("gather", "index_select"):
        with pytest.raises(RuntimeError, match="int32 or int64"):
            getattr(x, op)(1, nbprop.tensor([[1.0]]) if op == "gather" else nbprop.tensor([1.0]))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(1, nbprop.tensor([1]))
    with pytest.raises(RuntimeError, match="no larger than self"):
        x.gather(1, nbprop.zeros(3, 1, dtype=nbprop.int64))
    with pytest.raises(RuntimeError, match="no larger than self"):
        x.scatter(1, nbprop.zeros(1, 4, dtype=nbprop.int64), nbprop.zeros(1, 3, dtype=nbprop.float64))
    with pytest.raises(RuntimeError, match="self.dtype to be equal to src.dtype"):
        x.scatter(1, index, nbprop.ones(1, 1))
    with pytest.raises(RuntimeError, match="same number of dimensions as src"):
        x.scatter(1, index, nbprop.tensor(2.0, dtype=nbprop.float64))
    with pytest.raises(IndexError, match="vector"):
        x.index_select(1, index)
    with pytest.raises(RuntimeError, match="only 1 value"):
        nbprop.tensor(3.0).index_select(0, nbprop.tensor([0, 0]))
    with pytest.raises(RuntimeError, match="boolean masks"):
        x.masked_fill(nbprop.tensor([1, 0, 1]), 0.0)
    with pytest.raises(RuntimeError, match="0-dimensional value"):
        x.masked_fill(nbprop.tensor([True, False, True]), nbprop.tensor([1.0]))
    with pytest.raises(RuntimeError, match="broadcast"):
        x.masked_fill(nbprop.tensor([True, False]), 0.0)


@pytest.mark.parametrize("op", ["gather", "scatter", "scatter_add", "index_select"])
def test_an_index_changed_after_forward_is_caught_in_backward(op):
    x = leaf(_random((3, 4)))
    index = nbprop.tensor([[1, 3], [0, 2]]) if op != "index_select" else nbprop.tensor([1, 3])

    def forward():
        if op == "index_select":
            return x.index_select(1, index)
        if op == "gather":
            return x.gather(1, index)
        return getattr(x, op)(1, index, leaf(_random((2, 2), seed=11)))

    # In place through the library: the saved index's version check raises.
    result = forward()
    index += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        result.sum().backward()
    # Behind the library's back (a NumPy write): the bounds check raises PyTorch's error class, no crash.
    index -= 1
    result = forward()
    index.numpy().reshape(-1)[0] = 10**9
    with pytest.raises(IndexError if op == "index_select" else RuntimeError, match="out of bounds"):
        result.sum().backward()
    index.numpy().reshape(-1)[0] = 1
    result = forward()
    index.numpy().reshape(-1)[0] = -(10**9)
    with pytest.raises(IndexError if op == "index_select" else RuntimeError, match="out of bounds"):
        result.sum().backward()


# --------------------------------------------------------------------------------------------- threaded


def test_threaded_variants_match_numpy_bit_for_bit():
    rows, columns = 400, 300  # 120,000 elements of work: the threaded variants run
    assert rows * columns >= PARALLEL_THRESHOLD
    rng = np.random.default_rng(12)
    array = rng.standard_normal((rows, columns)).astype(np.float32)
    index = rng.integers(0, rows, (rows, columns))
    x = nbprop.tensor(array, requires_grad=True)
    gathered = x.gather(0, nbprop.tensor(index))
    np.testing.assert_array_equal(gathered.detach().numpy(), np.take_along_axis(array, index, 0))
    gradient = rng.standard_normal((rows, columns)).astype(np.float32)
    gathered.backward(nbprop.tensor(gradient))
    expected = np.zeros_like(array)
    np.add.at(expected, (index, np.arange(columns)[None]), gradient)  # adds in increasing row, as the kernel
    np.testing.assert_array_equal(x.grad.numpy(), expected)

    summed = nbprop.tensor(array).scatter_add(0, nbprop.tensor(index), nbprop.tensor(gradient))
    expected = array.copy()
    np.add.at(expected, (index, np.arange(columns)[None]), gradient)
    np.testing.assert_array_equal(summed.numpy(), expected)

    selection = rng.integers(0, columns, 500)
    x.grad = None
    selected = x.index_select(1, nbprop.tensor(selection))
    np.testing.assert_array_equal(selected.detach().numpy(), array[:, selection])
    selected_gradient = rng.standard_normal((rows, 500)).astype(np.float32)
    selected.backward(nbprop.tensor(selected_gradient))
    expected = np.zeros_like(array)
    np.add.at(expected.T, selection, selected_gradient.T)
    np.testing.assert_array_equal(x.grad.numpy(), expected)

    permutation = np.argsort(rng.random((rows, columns)), axis=1)
    written = nbprop.tensor(array).scatter(1, nbprop.tensor(permutation), nbprop.tensor(gradient))
    expected = array.copy()
    np.put_along_axis(expected, permutation, gradient, 1)
    np.testing.assert_array_equal(written.numpy(), expected)
    with pytest.raises(RuntimeError, match="out of bounds"):
        bad = index.copy()
        bad[rows - 1, columns - 1] = rows
        x.gather(0, nbprop.tensor(bad))


def test_threaded_variants_with_an_index_smaller_than_the_input():
    rng = np.random.default_rng(13)
    array = rng.standard_normal((2, 3, 70000))
    index = rng.integers(0, 3, (2, 2, 69000))  # 276,000 elements; the inner position map is not the identity
    x = nbprop.tensor(array, requires_grad=True)
    result = x.gather(1, nbprop.tensor(index))
    np.testing.assert_array_equal(result.detach().numpy(), np.take_along_axis(array[:, :, :69000], index, 1))
    gradient = rng.standard_normal(index.shape)
    result.backward(nbprop.tensor(gradient))
    expected = np.zeros_like(array)
    np.add.at(expected, (np.arange(2)[:, None, None], index, np.arange(69000)[None, None]), gradient)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    bad = index.copy()
    bad[1, 1, 68000], bad[0, 0, 5] = 7, -4  # the first bad index in memory order is named
    with pytest.raises(RuntimeError, match="index -4 is out of bounds for dimension 1 with size 3"):
        x.gather(1, nbprop.tensor(bad))


@pytest.mark.parametrize("op", ["gather", "scatter", "scatter_add", "index_select", "masked_fill"])
def test_a_dropped_graph_is_freed_without_the_garbage_collector(op):
    import gc

    calls = {
        "gather": lambda x: x.gather(0, nbprop.tensor([[0, 1, 2, 0]])),
        "scatter": lambda x: x.scatter(0, nbprop.tensor([[0, 1, 2, 1]]), x[:1] * 2),
        "scatter_add": lambda x: x.scatter_add(0, nbprop.tensor([[0, 1, 2, 1]]), x[:1] * 2),
        "index_select": lambda x: x.index_select(1, nbprop.tensor([0, 0])),
        "masked_fill": lambda x: x.masked_fill(nbprop.tensor([True, False, True, False]), leaf(1.0)),
    }
    for run, backward in enumerate((True, True, False)):  # the first run compiles (the compiler's own garbage)
        gc.collect()
        gc.disable()
        try:
            result = calls[op](leaf(_random((3, 4))))
            if backward:
                result.sum().backward()
            del result
            found = gc.collect()
        finally:
            gc.enable()
        assert found == 0 or run == 0


def test_gather_sort_scan_and_logical_ops_run_on_the_opaque_device_bit_for_bit():
    """Their forward and backward reach array data only through the device (tests/opaque_device.py)."""
    import opaque_device

    opaque_device.install()

    def run(device):
        def tensor(data, **options):
            return nbprop.tensor(data, device=device, **options)

        x = tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
        index = tensor([[0, 2, 1, 2], [1, 1, 0, 0]])
        source = tensor(np.ones((2, 4)), requires_grad=True)
        value = tensor(2.0, dtype=nbprop.float64, requires_grad=True)
        results = [
            x.gather(0, index), x.gather(1, tensor([[3], [0]])), x.scatter(0, index, source),
            x.scatter(0, index, 5.0), x.scatter_add(0, index, source), x.index_select(1, tensor([3, 0, 0])),
            x.masked_fill(tensor([True, False, True, False]), value), x.sort(1, descending=True).values,
            x.topk(2, 0).values, x.cumsum(1),
        ]
        sum(result.sum() for result in results).backward()
        host = [result.detach().cpu().numpy() for result in results]
        host += [leaf.grad.cpu().numpy() for leaf in (x, source, value)]
        host += [x.detach().all(1).cpu().numpy(), x.detach().any().cpu().numpy(),
                 x.detach().sort(0).indices.cpu().numpy(), tensor([1, 2, 3]).cumsum(0).cpu().numpy()]
        with pytest.raises(RuntimeError, match="index 5 is out of bounds"):
            x.gather(0, tensor([[5]]))
        return host

    for actual, expected in zip(run("opaque"), run("cpu"), strict=True):
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected)
