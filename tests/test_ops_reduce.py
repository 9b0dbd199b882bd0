"""Reductions: forward against NumPy, gradients by central differences and against PyTorch, errors."""

import warnings

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf, nonempty_shapes, shapes
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop
from nbprop.ops.broadcast import sum_to_shape

NUMPY = {
    "sum": np.sum, "mean": np.mean, "prod": np.prod, "amax": np.max, "amin": np.min,
    "var": lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims, ddof=1),
    "std": lambda a, axis, keepdims: np.std(a, axis=axis, keepdims=keepdims, ddof=1),
}


@st.composite
def reductions(draw, shape_strategy=shapes, dtype=np.float64):
    """An array, a dim argument (None, an int, or a tuple of distinct dims, maybe negative) and keepdim."""
    shape = draw(shape_strategy)
    array = draw(arrays(shape, dtype))
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]) if ndim else st.just("none"))
    if kind == "none":
        dim = None
    elif kind == "int":
        dim = draw(st.integers(-ndim, ndim - 1))
    else:
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        dim = tuple(axis - ndim if draw(st.booleans()) else axis for axis in axes)
    return array, dim, draw(st.booleans())


def _axes(dim, ndim):
    if dim is None:
        return None
    return tuple(axis % ndim for axis in (dim if isinstance(dim, tuple) else (dim,)))


@pytest.mark.parametrize("name", sorted(NUMPY))
@settings(max_examples=30)
@given(case=reductions())
def test_forward_matches_numpy(name, case):
    array, dim, keepdim = case
    axes = _axes(dim, array.ndim)
    reduced = array.shape if axes is None else [array.shape[axis] for axis in axes]
    if name in ("amax", "amin") and 0 in reduced:
        with pytest.raises((IndexError, RuntimeError), match=name):
            getattr(nbprop.tensor(array), name)(() if dim is None else dim, keepdim)
        return
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = NUMPY[name](array, axis=axes, keepdims=keepdim)
    actual = getattr(nbprop.tensor(array), name)(dim, keepdim=keepdim)
    assert actual.dtype == np.float64
    assert_close(actual, np.asarray(expected))


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "amax", "amin", "var", "std"])
@settings(max_examples=15)
@given(case=reductions(nonempty_shapes, np.float32))
def test_float32_forward(name, case):
    array, dim, keepdim = case
    axes = _axes(dim, array.ndim)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = NUMPY[name](array.astype(np.float64), axis=axes, keepdims=keepdim)
    actual = getattr(nbprop.tensor(array), name)(dim, keepdim=keepdim)
    assert actual.dtype == np.float32
    assert_close(actual, np.asarray(expected, np.float32), dtype=np.float32, atol=1e-5)


def test_integer_and_bool_dtypes():
    integers = nbprop.tensor(np.array([[1, 2, 3], [4, 5, 6]], np.int64))
    booleans = nbprop.tensor(np.array([True, True, False]))
    assert integers.sum().dtype == np.int64 and integers.sum().item() == 21
    assert booleans.sum().dtype == np.int64 and booleans.sum().item() == 2
    assert integers.prod(1).tolist() == [6, 120] and booleans.prod().dtype == np.int64
    assert integers.sum(0, dtype=nbprop.float64).dtype == np.float64
    assert_close(integers.mean(dtype=nbprop.float64), 3.5)
    assert nbprop.tensor(np.array([1.5, 2.5])).sum(dtype=nbprop.int64).item() == 3  # cast, then sum
    assert integers.amax().item() == 6 and integers.max(1).values.tolist() == [3, 6]
    assert integers.argmin(1).tolist() == [0, 0]
    big = nbprop.tensor(np.array([2**53, 1, 1], np.int64))
    assert big.sum().item() == 2**53 + 2  # int64 accumulation, not float64
    with pytest.raises(RuntimeError, match="mean"):
        integers.mean()
    with pytest.raises(RuntimeError, match="floating point"):
        integers.var()
    with pytest.raises(TypeError, match="argmax"):
        booleans.argmax()


def test_empty_reductions():
    empty = nbprop.tensor(np.zeros((0, 3)))
    assert_close(empty.sum(0), np.zeros(3))
    assert_close(empty.prod(0), np.ones(3))
    assert_close(empty.mean(0), np.full(3, np.nan))
    assert_close(empty.sum(), 0.0) and assert_close(empty.prod(), 1.0)
    assert_close(empty.amax(1), np.zeros(0))
    assert empty.max(1).indices.shape == (0,)
    assert_close(empty.var(0), np.full(3, np.nan))


def test_zero_dimensional():
    scalar = nbprop.tensor(3.5)
    for name in ("sum", "mean", "prod", "amax", "amin"):
        assert getattr(scalar, name)(0).shape == () and getattr(scalar, name)(-1, keepdim=True).item() == 3.5
    assert scalar.max(0).values.item() == 3.5 and scalar.max(0).indices.item() == 0
    assert scalar.argmax(0).item() == 0 and scalar.argmax().item() == 0
    assert np.isnan(scalar.var().item()) and scalar.std(correction=0).item() == 0.0
    x = leaf(2.0)
    x.max().backward()
    assert x.grad.item() == 1.0


def test_dim_forms():
    array = np.arange(24.0).reshape(2, 3, 4)
    x = nbprop.tensor(array)
    assert_close(x.sum(dim=()), array.sum())  # PyTorch: an empty dim list reduces everything
    assert_close(x.amax(dim=[]), array.max())
    assert_close(x.sum([0, -1]), array.sum((0, 2)))
    assert_close(x.mean((2, 0), keepdim=True), array.mean((0, 2), keepdims=True))
    assert_close(x.var(False), array.var())  # var(unbiased) overload
    assert_close(x.var(1, unbiased=False), array.var(1))
    assert_close(x.std(1, correction=2), array.std(1, ddof=2))
    assert_close(nbprop.tensor(np.array([1.0, 2.0])).var(correction=3), np.inf)
    assert np.isnan(nbprop.tensor(np.array([5.0])).var().item())


def test_errors_name_the_op_and_shape():
    x = nbprop.tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"sum: dimension 2 is out of range for a tensor of shape \(2, 3\)"):
        x.sum(2)
    with pytest.raises(IndexError, match=r"amax: dimension -3 .*\(2, 3\)"):
        x.amax((0, -3))
    with pytest.raises(RuntimeError, match=r"mean: dim \(0, -2\) names a dimension more than once"):
        x.mean((0, -2))
    with pytest.raises(TypeError, match="dim must be an int"):
        x.sum(1.0)
    with pytest.raises(TypeError, match="max: dim must be an int.*amax"):
        x.max((0, 1))
    with pytest.raises(RuntimeError, match=r"max\(\): expected reduction dim to be specified .*\(0,\)"):
        nbprop.tensor(np.zeros(0)).max()
    with pytest.raises(IndexError, match=r"min\(\): expected reduction dim 0 to have non-zero size"):
        nbprop.tensor(np.zeros((0, 2))).min(0)
    with pytest.raises(RuntimeError, match=r"amin\(\): expected reduction dim to be specified"):
        nbprop.tensor(np.zeros((0, 2))).amin()
    with pytest.raises(IndexError, match=r"argmax\(\): expected reduction dim"):
        nbprop.tensor(np.zeros(0)).argmax()
    with pytest.raises(TypeError, match="either unbiased or correction"):
        x.var(0, unbiased=True, correction=1)


def test_var_of_constant_data_is_exactly_zero():
    for value in (0.1, 1e300, -3.7, 1.0 / 3.0):
        for length in (1, 3, 7, 1000, 70_001):
            data = np.full((2, length), value)
            assert (nbprop.tensor(data).var(1, correction=0).numpy() == 0).all()
            assert (nbprop.tensor(data.T.copy()).std(0, correction=0).numpy() == 0).all()
            if abs(value) < 1e30:
                assert (nbprop.tensor(data.astype(np.float32)).var(1, correction=0).numpy() == 0).all()


def test_float32_sum_of_a_million_is_accurate():
    array = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32) + np.float32(0.5)
    expected = array.astype(np.float64).sum()
    for result in (nbprop.tensor(array).sum(), nbprop.tensor(array.reshape(1000, 1000)).sum((0, 1))):
        assert abs(result.item() - expected) <= 1e-6 * abs(expected)
    columns = nbprop.tensor(array.reshape(-1, 4)).sum(0).numpy()
    np.testing.assert_allclose(columns, array.reshape(-1, 4).astype(np.float64).sum(0), rtol=1e-6)


def test_sum_to_shape_and_large_inputs_are_deterministic():
    rng = np.random.default_rng(1)
    cases = [rng.standard_normal((300, 257)), rng.standard_normal((2, 40_000)), rng.standard_normal((9, 8, 30, 31))]
    for array in cases:
        assert array.size > 65536
        for name, arguments in [("sum", (0,)), ("sum", ()), ("mean", (-1,)), ("prod", (0,)), ("amax", ()),
                                ("var", (0,)), ("std", (-1,)), ("argmax", (0,)), ("max", (-1,))]:
            runs = []
            for _ in range(2):
                x = leaf(array)
                result = getattr(x, name)(*arguments)
                result = result.values if name == "max" else result
                if result.dtype.kind == "f":
                    result.sum().backward()
                    runs.append((result.detach().numpy().copy(), x.grad.numpy().copy()))
                else:
                    runs.append((result.numpy().copy(),))
            for first, second in zip(*runs):
                np.testing.assert_array_equal(first, second)
    bias_gradient = sum_to_shape(nbprop.tensor(cases[2]), (1, 8, 1, 1))
    assert_close(bias_gradient, cases[2].sum((0, 2, 3), keepdims=True), rtol=1e-10)


# --------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "amax", "amin", "var", "std"])
@settings(max_examples=12)
@given(case=reductions(st.sampled_from([(), (1,), (3,), (2, 3), (2, 1, 3), (3, 0, 2)])))
def test_gradcheck(name, case):
    array, dim, keepdim = case
    rng = np.random.default_rng(abs(hash(array.tobytes())) % 2**32)
    # Distinct values away from 0: extremes without ties, products and spreads with smooth derivatives.
    array = rng.permutation(array.size).reshape(array.shape) * 0.7 + rng.uniform(0.5, 0.6, array.shape)
    axes = _axes(dim, array.ndim)
    reduced = array.shape if axes is None else [array.shape[axis] for axis in axes]
    if 0 in reduced and name in ("amax", "amin"):
        return
    x = leaf(array)
    nbprop.gradcheck(lambda t: getattr(t, name)(dim, keepdim=keepdim), (x,))


def test_gradcheck_max_min_along_dim_and_prod_with_zeros():
    array = np.random.default_rng(2).permutation(24).reshape(2, 3, 4) * 1.0
    for dim in (0, 1, -1):
        nbprop.gradcheck(lambda t, dim=dim: t.max(dim).values, (leaf(array),))
        nbprop.gradcheck(lambda t, dim=dim: t.min(dim, keepdim=True).values, (leaf(array),))
    one_zero = np.array([[1.5, 0.0, 2.0], [0.5, 3.0, -1.0]])
    nbprop.gradcheck(lambda t: t.prod(1), (leaf(one_zero),))
    nbprop.gradcheck(lambda t: t.prod(0, keepdim=True), (leaf(one_zero),))


def _torch_gradient(function, array):
    import torch

    tensor = torch.tensor(array, requires_grad=True)
    function(tensor).sum().backward()
    return tensor.grad.numpy()


def _gradient(function, array):
    x = leaf(array)
    function(x).sum().backward()
    return x.grad.numpy()


TORCH_CASES = [
    ("max() ties", lambda t: t.max(), [[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]]),
    ("min() ties", lambda t: t.min(), [1.0, 1.0, 3.0]),
    ("max() NaN", lambda t: t.max(), [1.0, np.nan, 3.0, np.nan]),
    ("amax ties", lambda t: t.amax(), [[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]]),
    ("amax dims ties", lambda t: t.amax((0, 2)), np.round(np.linspace(-2, 2, 24)).reshape(2, 3, 4)),
    ("amin dim NaN", lambda t: t.amin(1), [[1.0, np.nan, 3.0], [2.0, 2.0, 5.0]]),
    ("max(dim) ties", lambda t: t.max(1).values, [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]),
    ("min(dim) NaN", lambda t: t.min(0, keepdim=True).values, [[1.0, np.nan], [np.nan, 0.0]]),
    ("prod no zero", lambda t: t.prod(1), [[1.5, 2.0, -3.0], [0.5, 4.0, 1.0]]),
    ("prod one zero", lambda t: t.prod(), [1.0, 0.0, 3.0, 4.0]),
    ("prod two zeros", lambda t: t.prod(0), [[1.0, 0.0], [0.0, 0.0], [2.0, 5.0]]),
    ("prod inf", lambda t: t.prod(), [1.0, np.inf, 3.0]),
    ("std zero spread", lambda t: t.std(1), [[1.0, 1.0], [1.0, 2.0]]),
    ("std single", lambda t: t.std(), [1.0]),
    ("var single", lambda t: t.var(), [1.0]),
    ("var correction 3", lambda t: t.var(correction=3), [1.0, 2.0]),
    ("var correction 3 dim", lambda t: t.var(0, correction=3), [1.0, 2.0]),
    ("var correction 2 dim", lambda t: t.var(1, correction=2), [[1.0, 2.0], [3.0, 3.0]]),
    ("var correction 3 constant", lambda t: t.var(correction=3), [[1.0, 1.0]]),
    ("std correction 2", lambda t: t.std(correction=2), [1.0, 2.0]),
    ("std dims", lambda t: t.std((0, 2), correction=0), np.linspace(-1, 2, 24).reshape(2, 3, 4)),
    ("var keepdim", lambda t: t.var(1, keepdim=True) * 3, np.linspace(-1, 2, 12).reshape(3, 4)),
    ("mean dims", lambda t: t.mean((0, 2)) * 2, np.linspace(-1, 2, 24).reshape(2, 3, 4)),
    ("sum dims", lambda t: t.sum((1, -1), keepdim=True) * 2, np.linspace(-1, 2, 24).reshape(2, 3, 4)),
]


@pytest.mark.torch
@pytest.mark.parametrize("function, array", [case[1:] for case in TORCH_CASES],
                         ids=[case[0] for case in TORCH_CASES])
def test_gradients_match_torch(function, array):
    array = np.asarray(array, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _torch_gradient(function, array)
    np.testing.assert_allclose(_gradient(function, array), expected, rtol=1e-12, atol=1e-15, equal_nan=True)


@pytest.mark.torch
@settings(max_examples=20)
@given(case=reductions(nonempty_shapes))
def test_var_std_forward_match_torch(case):
    import torch

    array, dim, keepdim = case
    for name in ("var", "std"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(torch.tensor(array), name)(dim, keepdim=keepdim, correction=1).numpy()
        assert_close(getattr(nbprop.tensor(array), name)(dim, keepdim=keepdim), expected)


def test_strided_and_expanded_inputs():
    array = np.arange(24.0).reshape(4, 6)
    transposed = nbprop.Tensor._make(array.T, None, "cpu")  # a non-contiguous view
    assert_close(transposed.sum(0), array.T.sum(0))
    assert_close(transposed.amax((0, 1)), array.max())
    assert_close(transposed.var(1), array.T.var(1, ddof=1))
    np.testing.assert_array_equal(transposed.argmax(1).numpy(), array.T.argmax(1))
    expanded = nbprop.tensor(np.array([1.0, 2.0, 3.0])).expand(5, 3)  # stride 0 along dim 0
    assert_close(expanded.sum(0), [5.0, 10.0, 15.0])
    assert_close(expanded.prod(1), np.full(5, 6.0))
