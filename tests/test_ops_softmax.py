"""softmax, log_softmax and logsumexp: forward against NumPy/SciPy, gradients, extremes, errors, determinism."""

import math

import numpy as np
import pytest
import scipy.special
from helpers import arrays, assert_close, leaf, nonempty_shapes, shapes, to_torch
from hypothesis import given
from hypothesis import strategies as st

import nbprop
from nbprop.kernels import softmax as kernels
from nbprop.ops.softmax import log_softmax, logsumexp, softmax


def _reference(name, x, dim, keepdim=False):
    """SciPy's results, extended to 0-d inputs and empty reductions (which SciPy refuses)."""
    if x.ndim == 0:
        value = {"softmax": 1.0, "log_softmax": 0.0, "logsumexp": float(x)}[name]
        return np.array(value, x.dtype)
    if name == "logsumexp":
        axes = tuple(range(x.ndim)) if dim == () else dim
        if x.size == 0:
            with np.errstate(divide="ignore"):
                return np.log(np.exp(x).sum(axes, keepdims=keepdim))  # -inf over an empty reduction
        return scipy.special.logsumexp(x, axis=axes, keepdims=keepdim)
    if x.size == 0:
        return np.empty_like(x)
    return getattr(scipy.special, name)(x, axis=dim)


@st.composite
def _input_and_dim(draw, shape_strategy=shapes, dtype=np.float64):
    shape = draw(shape_strategy)
    x = draw(arrays(shape, dtype, -20.0, 20.0))
    dim = draw(st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1))
    return x, dim


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=_input_and_dim())
def test_forward_matches_scipy(name, data):
    x, dim = data
    function = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[name]
    assert_close(function(nbprop.tensor(x), dim), _reference(name, x, dim))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=_input_and_dim(dtype=np.float32))
def test_forward_float32(name, data):
    x, dim = data
    function = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[name]
    result = function(nbprop.tensor(x), dim)
    assert result.dtype == np.float32
    assert_close(result, _reference(name, x.astype(np.float64), dim).astype(np.float32), rtol=1e-5, atol=1e-5)


@given(x=shapes.flatmap(arrays), keepdim=st.booleans(), data=st.data())
def test_logsumexp_dim_tuples(x, keepdim, data):
    dims = tuple(data.draw(st.sets(st.integers(0, max(x.ndim, 1) - 1)))) if x.ndim else ()
    negative = tuple(dim - x.ndim if data.draw(st.booleans()) else dim for dim in dims)
    result = logsumexp(nbprop.tensor(x), negative, keepdim)
    assert_close(result, _reference("logsumexp", x, dims, keepdim))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=_input_and_dim(nonempty_shapes))
def test_gradcheck(name, data):
    x, dim = data
    function = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[name]
    # A weighted sum makes the softmax gradient non-zero (the plain sum of a softmax is constant).
    weights = nbprop.tensor(np.cos(np.arange(max(x.size, 1))).reshape(x.shape) if x.ndim else np.array(0.5))
    assert nbprop.gradcheck(lambda u: function(u, dim) * (weights if name != "logsumexp" else 1.0), (leaf(x),))


def test_gradcheck_logsumexp_over_several_dims():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    assert nbprop.gradcheck(lambda u: logsumexp(u, (0, 2), keepdim=True), (leaf(x),))
    assert nbprop.gradcheck(lambda u: logsumexp(u, (-1, 0)), (leaf(x),))


def _torch_function(torch, name):
    return {"softmax": torch.softmax, "log_softmax": torch.log_softmax, "logsumexp": torch.logsumexp}[name]


@pytest.mark.torch
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("shape, dim", [((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -3), ((7,), 0),
                                        ((), 0), ((2, 0, 3), 1), ((2, 0, 3), 2), ((1, 1), -1)])
@pytest.mark.parametrize("scale", [1.0, 1e4, 1e30])
def test_gradients_match_torch(name, shape, dim, scale):
    import torch

    rng = np.random.default_rng(4)
    ours = leaf(rng.standard_normal(shape) * scale)
    theirs = to_torch(ours)
    result = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[name](ours, dim)
    expected = _torch_function(torch, name)(theirs, dim)
    grad_output = rng.standard_normal(expected.shape)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    assert_close(result, expected)
    assert_close(ours.grad, theirs.grad)
    if scale > 1 and name == "log_softmax" and ours.numel():
        assert np.isfinite(result.detach().numpy()).all() and np.isfinite(ours.grad.numpy()).all()


@pytest.mark.parametrize("scale", [1e4, 1e30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_at_extremes(scale, dtype):
    x = np.array([[1.0, -1.0, 0.5], [-1.0, -1.0, -2.0]], dtype) * dtype(scale)
    ours = leaf(x, dtype)
    log_probabilities = log_softmax(ours, 1)
    expected = np.array([[0.0, -2.0 * scale, -0.5 * scale], [-math.log(2.0), -math.log(2.0), -scale - math.log(2.0)]])
    assert_close(log_probabilities, expected.astype(dtype), rtol=1e-6, atol=1e-6)
    grad_output = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype)
    log_probabilities.backward(nbprop.tensor(grad_output))
    # g - softmax * sum(g): softmax is one-hot in row 0, (1/2, 1/2, 0) in row 1.
    assert_close(ours.grad, np.array([[-5.0, 2.0, 3.0], [-3.5, -2.5, 6.0]], dtype))
    assert_close(softmax(nbprop.tensor(x), 1), np.array([[1, 0, 0], [0.5, 0.5, 0]], dtype))
    assert_close(logsumexp(nbprop.tensor(x), 1), np.array([scale, -scale + math.log(2.0)], dtype))


def test_infinite_rows_follow_pytorch():
    x = np.array([[-math.inf, -math.inf, -math.inf], [-math.inf, 1.0, math.inf], [-math.inf, 0.0, 0.0]])
    ours = leaf(x)
    assert np.isnan(softmax(nbprop.tensor(x), 1).numpy()[:2]).all()
    assert_close(softmax(nbprop.tensor(x), 1).numpy()[2], [0.0, 0.5, 0.5])
    assert np.isnan(log_softmax(nbprop.tensor(x), 1).numpy()[:2]).all()
    assert_close(log_softmax(nbprop.tensor(x), 1).numpy()[2], [-math.inf, -math.log(2), -math.log(2)])
    result = logsumexp(ours, 1)
    assert_close(result, [-math.inf, math.inf, math.log(2.0)])
    result.backward(nbprop.tensor(np.ones(3)))
    # PyTorch's gradients: NaN for the all -inf row and at +inf, 0 where exp(x - lse) vanishes.
    assert_close(ours.grad, [[math.nan] * 3, [0.0, 0.0, math.nan], [0.0, 0.5, 0.5]])


@pytest.mark.torch
def test_infinite_rows_gradients_match_torch():
    import torch

    x = np.array([[-math.inf, -math.inf, -math.inf], [-math.inf, 1.0, math.inf], [-math.inf, 0.0, 2.0]])
    for name in ["softmax", "log_softmax", "logsumexp"]:
        ours = leaf(x)
        theirs = to_torch(ours)
        result = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[name](ours, -1)
        expected = _torch_function(torch, name)(theirs, -1)
        grad_output = np.arange(1.0, expected.numel() + 1).reshape(expected.shape)
        result.backward(nbprop.tensor(grad_output))
        expected.backward(torch.from_numpy(grad_output))
        assert_close(result, expected)
        assert_close(ours.grad, theirs.grad)


def test_integer_inputs():
    integers = nbprop.tensor(np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match=r"softmax: not implemented for int64 tensors.*'Long'"):
        softmax(integers, 1)
    with pytest.raises(TypeError, match=r"log_softmax: not implemented for bool tensors"):
        log_softmax(nbprop.tensor(np.ones(3, bool)), 0)
    result = logsumexp(integers, 1)  # PyTorch computes it in the default float dtype
    assert result.dtype == nbprop.get_default_dtype()
    assert_close(result, scipy.special.logsumexp(np.arange(6.0).reshape(2, 3), axis=1).astype(result.dtype))


def test_errors():
    x = nbprop.tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match=r"softmax: dimension 2 is out of range.*\[-2, 1\]"):
        softmax(x, 2)
    with pytest.raises(IndexError, match=r"log_softmax: dimension 1 is out of range for a tensor of 0"):
        log_softmax(nbprop.tensor(np.array(1.0)), 1)
    with pytest.raises(IndexError, match=r"logsumexp: dimension -3 is out of range"):
        logsumexp(x, (0, -3))
    with pytest.raises(RuntimeError, match=r"logsumexp: a dimension appears more than once in dim=\(0, -2\)"):
        logsumexp(x, (0, -2))
    with pytest.raises(TypeError, match=r"softmax: dim must be an int, got NoneType"):
        softmax(x, None)
    with pytest.raises(TypeError, match=r"logsumexp: expects a Tensor, got list"):
        logsumexp([1.0, 2.0], 0)


def test_tensor_methods():
    x = np.random.default_rng(5).standard_normal((3, 4))
    tensor = nbprop.tensor(x)
    assert_close(tensor.softmax(0), scipy.special.softmax(x, axis=0))
    assert_close(tensor.log_softmax(-1), scipy.special.log_softmax(x, axis=-1))
    assert_close(tensor.logsumexp(1, keepdim=True), scipy.special.logsumexp(x, axis=1, keepdims=True))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("dim", [0, 1])
def test_deterministic_including_parallel_variant(name, dim):
    # 300 x 300 = 90,000 elements: the forward and backward kernels (rows, n) run their prange variants.
    x = np.random.default_rng(6).standard_normal((300, 300)) * 10
    function = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[name]

    def run():
        ours = leaf(x)
        result = function(ours, dim)
        result.backward(nbprop.tensor(np.sin(np.arange(result.numel())).reshape(result.shape)))
        return result.detach().numpy().copy(), ours.grad.numpy().copy()

    first, second = run(), run()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert_close(first[0], _reference(name, x, dim))
    # Each variant repeats itself bit for bit, and the two agree to rounding. (Not bit for bit: with the
    # nsz + reassoc fast-math flags a freshly compiled kernel and its cached copy can vectorise a row's sum
    # differently, see the report on kernels/_jit.py.)
    rows = np.ascontiguousarray(np.moveaxis(x, dim, -1))
    kernel = getattr(kernels, {"softmax": "softmax_rows", "log_softmax": "log_softmax_rows",
                               "logsumexp": "logsumexp_rows"}[name])
    results = {}
    for variant in ("serial", "parallel"):
        first_out, second_out = (np.empty(rows.shape if name != "logsumexp" else rows.shape[:1]) for _ in range(2))
        getattr(kernel, variant)(rows, first_out)
        getattr(kernel, variant)(rows, second_out)
        np.testing.assert_array_equal(first_out, second_out)
        results[variant] = first_out
    assert_close(results["serial"], results["parallel"], rtol=1e-14, atol=1e-300)
