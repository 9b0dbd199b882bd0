"""matmul, mm and bmm: every 1-D/2-D/N-D combination and batch broadcast against NumPy, gradients, errors."""

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.ops.matmul import bmm, matmul, mm

# (a shape, b shape): every rank combination, broadcast batches, size-1 and empty dimensions.
SHAPE_PAIRS = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((3,), (5, 3, 4)), ((5, 2, 3), (3,)),
    ((5, 2, 3), (5, 3, 4)), ((4, 2, 3), (1, 3, 4)), ((1, 2, 3), (4, 3, 2)),
    ((2, 1, 2, 3), (4, 3, 5)), ((3, 1, 2, 3), (1, 2, 3, 2)), ((1, 1), (1, 1)), ((1,), (1,)),
    ((0,), (0,)), ((2, 0), (0, 4)), ((0, 3), (3, 2)), ((2, 3), (3, 0)), ((0, 2, 3), (3, 4)),
    ((2, 2, 3), (0, 1, 3, 4)), ((0,), (2, 0, 3)),
]
NONEMPTY_PAIRS = [pair for pair in SHAPE_PAIRS if all(all(pair_shape) for pair_shape in pair)]


def _pair(shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_matches_numpy(shapes, dtype):
    a, b = _pair(shapes, dtype)
    result = matmul(nbprop.tensor(a), nbprop.tensor(b))
    assert result.dtype == dtype
    assert_close(result, np.matmul(a, b))


@st.composite
def _matmul_shapes(draw):
    """Operand shapes of rank 1 to 4 with broadcastable batches and sizes 0 to 3."""
    batches = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, min_side=0, max_side=3))
    n, k, m = (draw(st.integers(0, 3)) for _ in range(3))
    a_shape = (k,) if draw(st.booleans()) and not batches.input_shapes[0] else batches.input_shapes[0] + (n, k)
    b_shape = (k,) if draw(st.booleans()) and not batches.input_shapes[1] else batches.input_shapes[1] + (k, m)
    return a_shape, b_shape


@given(_matmul_shapes(), st.integers(0, 2**32 - 1))
def test_matmul_random_shapes_match_numpy(shapes, seed):
    a, b = _pair(shapes, seed=seed)
    assert_close(matmul(nbprop.tensor(a), nbprop.tensor(b)), np.matmul(a, b))


@pytest.mark.parametrize("shapes", NONEMPTY_PAIRS, ids=str)
def test_matmul_gradcheck(shapes):
    a, b = _pair(shapes)
    assert nbprop.gradcheck(matmul, (leaf(a), leaf(b)))


@pytest.mark.torch
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_matmul_gradients_match_torch(shapes):
    import torch

    a, b = _pair(shapes)
    ours_a, ours_b = leaf(a), leaf(b)
    theirs_a, theirs_b = to_torch(ours_a), to_torch(ours_b)
    result, expected = matmul(ours_a, ours_b), torch.matmul(theirs_a, theirs_b)
    grad_output = np.random.default_rng(1).standard_normal(expected.shape)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    assert_close(result, expected)
    assert_close(ours_a.grad, theirs_a.grad)
    assert_close(ours_b.grad, theirs_b.grad)


def _transposed_leaf(array):
    """A leaf whose data is the transpose of a C-contiguous array (F-contiguous), as `x.mT` gives."""
    tensor = nbprop.Tensor._make(np.ascontiguousarray(np.swapaxes(array, -1, -2)).swapaxes(-1, -2), None, "cpu")
    tensor.requires_grad = True
    return tensor


@pytest.mark.parametrize("shapes", [((2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4)), ((5, 2, 3), (3, 4)),
                                    ((2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2))], ids=str)
@pytest.mark.parametrize("layout", ["tn", "nt", "tt"])
def test_transposed_operands(shapes, layout):
    a, b = _pair(shapes)
    ours_a = _transposed_leaf(a) if layout[0] == "t" else leaf(a)
    ours_b = _transposed_leaf(b) if layout[1] == "t" else leaf(b)
    result = matmul(ours_a, ours_b)
    assert_close(result, np.matmul(a, b))
    grad_output = np.random.default_rng(2).standard_normal(result.shape)
    result.backward(nbprop.tensor(grad_output))
    grad_a = np.matmul(grad_output, np.swapaxes(b, -1, -2))
    grad_b = np.matmul(np.swapaxes(a, -1, -2), grad_output)
    assert_close(ours_a.grad, _sum_to(grad_a, a.shape))
    assert_close(ours_b.grad, _sum_to(grad_b, b.shape))


def _sum_to(array, shape):
    """NumPy's gradient of a broadcast: `array` summed back to `shape`."""
    array = array.sum(tuple(range(array.ndim - len(shape))))
    return array.sum(tuple(i for i, size in enumerate(shape) if size == 1), keepdims=True)


def test_dtypes():
    a, b = _pair(((2, 3), (3, 4)))
    with pytest.raises(RuntimeError, match=r"matmul: expected both operands to have the same dtype, got float32 "
                                           r"\(shape \(2, 3\)\) and float64"):
        matmul(nbprop.tensor(a.astype(np.float32)), nbprop.tensor(b))
    with pytest.raises(RuntimeError, match="matmul: expected both operands to have the same dtype"):
        nbprop.tensor(a).long() @ nbprop.tensor(b)
    integers_a = np.arange(-6, 6).reshape(2, 2, 3)
    integers_b = np.arange(12).reshape(3, 4) * 7
    result = matmul(nbprop.tensor(integers_a), nbprop.tensor(integers_b))
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result.numpy(), integers_a @ integers_b)
    np.testing.assert_array_equal(matmul(nbprop.tensor(integers_a[0]), nbprop.tensor(integers_b[:, 0])).numpy(),
                                  integers_a[0] @ integers_b[:, 0])


def test_tensor_methods_and_operator():
    a, b = _pair(((4, 2, 3), (4, 3, 5)))
    ta, tb = nbprop.tensor(a), nbprop.tensor(b)
    assert_close(ta @ tb, a @ b)
    assert_close(ta.matmul(tb), a @ b)
    assert_close(ta.bmm(tb), a @ b)
    assert_close(bmm(ta, tb), a @ b)
    assert_close(nbprop.tensor(a[0]).mm(nbprop.tensor(b[0])), a[0] @ b[0])
    assert_close(mm(nbprop.tensor(a[0]), nbprop.tensor(b[0])), a[0] @ b[0])


def test_errors_name_the_op_and_shapes():
    def t(*shape, dtype=np.float64):
        return nbprop.tensor(np.ones(shape, dtype))

    with pytest.raises(RuntimeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) cannot be multiplied"):
        matmul(t(2, 3), t(4, 5))
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(3,\) and \(4,\) cannot be multiplied"):
        matmul(t(3), t(4))
    with pytest.raises(RuntimeError, match=r"matmul: both arguments need to be at least 1-D.*\(\) and \(3,\)"):
        matmul(t(), t(3))
    with pytest.raises(RuntimeError, match=r"matmul: the batch dimensions of shapes \(2, 2, 3\) and \(3, 3, 1\)"):
        matmul(t(2, 2, 3), t(3, 3, 1))
    with pytest.raises(RuntimeError, match=r"mm: expects two 2-D tensors, got shapes \(3,\) and \(3, 2\)"):
        mm(t(3), t(3, 2))
    with pytest.raises(RuntimeError, match=r"mm: shapes \(2, 3\) and \(2, 3\) cannot be multiplied"):
        mm(t(2, 3), t(2, 3))
    with pytest.raises(RuntimeError, match=r"bmm: expects two 3-D tensors with equal batch sizes.*\(2, 3, 3\) and"):
        bmm(t(2, 3, 3), t(1, 3, 3))
    with pytest.raises(RuntimeError, match=r"bmm: expects two 3-D tensors"):
        bmm(t(3, 3), t(3, 3))
    with pytest.raises(TypeError, match=r"matmul: not implemented for bool tensors"):
        matmul(t(2, 2, dtype=bool), t(2, 2, dtype=bool))
    with pytest.raises(TypeError, match=r"matmul: expects two Tensors, got Tensor and int"):
        matmul(t(2), 2)
    with pytest.raises(TypeError, match=r"matmul: expects two Tensors, got ndarray and Tensor"):
        matmul(np.ones(2), t(2))


def test_deterministic_including_parallel_variant():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 40, 30)), rng.standard_normal((1, 30, 50))

    def run():
        ours_a, ours_b = leaf(a), leaf(b)
        result = matmul(ours_a, ours_b)
        result.backward(nbprop.tensor(np.cos(np.arange(result.numel())).reshape(result.shape)))
        return result.detach().numpy().copy(), ours_a.grad.numpy().copy(), ours_b.grad.numpy().copy()

    first, second = run(), run()
    for one, other in zip(first, second):
        np.testing.assert_array_equal(one, other)
    # The integer kernel is the prange one: 300 x 300 = 90,000 outputs run the parallel variant.
    integers_a = rng.integers(-50, 50, (300, 20))
    integers_b = rng.integers(-50, 50, (20, 300))
    result = matmul(nbprop.tensor(integers_a), nbprop.tensor(integers_b)).numpy()
    np.testing.assert_array_equal(result, integers_a @ integers_b)
    np.testing.assert_array_equal(result, matmul(nbprop.tensor(integers_a), nbprop.tensor(integers_b)).numpy())


# (batch, n, k, m): one block per matrix; row blocks of 32 (k * m = 8,192); rows too long for blocks (whole
# products); float32 rows not a multiple of the block.
BATCHED_KERNEL_SHAPES = [(3, 5, 4, 6), (6, 128, 64, 128), (2, 20, 300, 1000), (4, 70, 64, 128)]


@pytest.mark.parametrize("shape", BATCHED_KERNEL_SHAPES)
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_kernels_serial_and_parallel_agree_bit_for_bit(shape, transpose_a, transpose_b, dtype):
    """The batched kernels cut each product into blocks of rows, the same blocks in both variants."""
    from nbprop.kernels import matmul as kernels

    batch, rows, inner, columns = shape
    rng = np.random.default_rng(7)
    a = rng.standard_normal((batch, inner, rows) if transpose_a else (batch, rows, inner)).astype(dtype)
    b = rng.standard_normal((batch - 1, columns, inner) if transpose_b else (batch - 1, inner, columns)).astype(dtype)
    a_index = np.arange(batch, dtype=np.int64)
    b_index = np.arange(batch, dtype=np.int64) % (batch - 1)  # a broadcast-like reuse of b's matrices
    left = a.transpose(0, 2, 1) if transpose_a else a
    right = (b.transpose(0, 2, 1) if transpose_b else b)[b_index]
    expected = np.matmul(left.astype(np.float64), right.astype(np.float64))
    tolerance = 1e-3 if dtype == np.float32 else 1e-10
    products = []
    for variant in ("serial", "parallel"):
        out = np.full((batch, rows, columns), np.nan, dtype)
        getattr(kernels.matmul_batched, variant)(a, b, a_index, b_index, transpose_a, transpose_b, out)
        products.append(out)
    np.testing.assert_array_equal(products[0], products[1])
    np.testing.assert_allclose(products[0], expected, rtol=tolerance, atol=tolerance)
    out_index = np.arange(batch, dtype=np.int64) % 2  # entries summed back into two targets, in order
    sums = []
    for variant in ("serial", "parallel"):
        out = np.full((2, rows, columns), np.nan, dtype)
        getattr(kernels.matmul_batched_sum, variant)(a, b, a_index, b_index, out_index, transpose_a, transpose_b,
                                                     np.empty((rows, columns), dtype), out)
        sums.append(out)
    np.testing.assert_array_equal(sums[0], sums[1])
    np.testing.assert_allclose(sums[0], np.stack([expected[0::2].sum(0), expected[1::2].sum(0)]),
                               rtol=tolerance, atol=10 * tolerance)


def test_block_rows_keep_every_product_on_one_blas_thread():
    from nbprop.kernels.matmul import SINGLE_THREAD_PRODUCT, block_rows

    assert block_rows(64, 128, 128) == 32 and 32 * 64 * 128 <= SINGLE_THREAD_PRODUCT
    assert block_rows(4, 6, 5) == 5  # a small product is one block
    assert block_rows(1024, 1024, 1024) == 0  # one multithreaded BLAS call per matrix
    assert block_rows(8, 8, 3) == 3


@pytest.mark.torch
def test_bmm_forward_backward_in_row_blocks_matches_torch():
    """The attention-sized bmm, whose products and gradients run in row blocks, against PyTorch."""
    import torch

    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((6, 128, 64)), rng.standard_normal((6, 64, 128))
    grad = rng.standard_normal((6, 128, 128))
    ours_a, ours_b = leaf(a), leaf(b)
    result = bmm(ours_a, ours_b)
    result.backward(nbprop.tensor(grad))
    torch_a, torch_b = to_torch(ours_a), to_torch(ours_b)
    expected = torch.bmm(torch_a, torch_b)
    expected.backward(torch.from_numpy(grad))
    assert_close(result, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    assert_close(ours_a.grad, torch_a.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert_close(ours_b.grad, torch_b.grad.numpy(), rtol=1e-10, atol=1e-10)
