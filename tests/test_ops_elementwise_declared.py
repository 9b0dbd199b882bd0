"""The elementwise ops declared in one table: every row is a function, a method and an in-place method; the
newer ops (rounding, sign, //, %, atan2, hypot, erf, expm1, log1p, logsigmoid) against PyTorch at the edges."""

import numpy as np
import pytest
from helpers import assert_close, leaf

import nbprop
import nbprop.nn.functional as F
from nbprop.ops.unary import UNARY, UNARY_ROWS

EDGES = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e-300, -1e-300, 1e300, -1e300, np.inf, -np.inf, np.nan,
         2.0 ** 52 + 0.5, 7.0, -7.0]


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("name", sorted(UNARY_ROWS))
def test_every_row_is_a_function_a_method_and_an_in_place_method(name):
    x = nbprop.tensor([0.25, 0.75, 1.5])
    expected = UNARY[name](x)
    if name == "logsigmoid":
        assert F.logsigmoid is UNARY[name] and not hasattr(nbprop.Tensor, "logsigmoid")
        return
    assert getattr(nbprop, name) is UNARY[name]
    assert_close(getattr(x, name)(), expected)
    y = x.clone()
    assert getattr(y, name + "_")() is y
    assert_close(y, expected)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "sign", "erf", "expm1", "log1p", "abs", "neg"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_edges_equal_pytorchs(name, dtype):
    torch = _torch()
    with np.errstate(over="ignore"):
        array = np.array(EDGES).astype(dtype)  # float32 rounds 1e300 to inf
    expected = getattr(torch, name)(torch.from_numpy(array)).numpy()
    result = getattr(nbprop, name)(nbprop.tensor(array)).numpy()
    assert result.dtype == expected.dtype
    numbers = ~np.isnan(expected)  # the sign of a NaN means nothing
    np.testing.assert_array_equal(np.signbit(result[numbers]), np.signbit(expected[numbers]))
    assert_close(result, expected)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "sign", "abs", "neg"])
def test_integer_rounding_and_sign_keep_the_dtype_as_pytorchs(name):
    torch = _torch()
    array = np.array([-(2**62) - 1, -3, 0, 5, 2**62 + 1], dtype=np.int64)
    expected = getattr(torch, name)(torch.from_numpy(array)).numpy()
    result = getattr(nbprop, name)(nbprop.tensor(array)).numpy()
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, expected)
    assert nbprop.sign(nbprop.tensor([True, False])).dtype == nbprop.bool
    with pytest.raises(TypeError, match="neg: negation of a boolean tensor"):
        nbprop.neg(nbprop.tensor([True]))


@pytest.mark.torch
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "sign"])
def test_piecewise_constant_ops_have_a_zero_gradient_as_pytorchs(name):
    torch = _torch()
    x = leaf([0.3, -1.7, 2.5])
    getattr(nbprop, name)(x).sum().backward()
    reference = torch.tensor([0.3, -1.7, 2.5], dtype=torch.float64, requires_grad=True)
    getattr(torch, name)(reference).sum().backward()
    assert_close(x.grad, reference.grad.numpy())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsigmoid_is_stable_at_extremes_as_pytorchs(dtype):
    torch = _torch()
    array = np.array([-1e4, -1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0, 1e4], dtype=dtype)
    x = nbprop.tensor(array, requires_grad=True)
    result = F.logsigmoid(x)
    result.sum().backward()
    reference = torch.tensor(array, requires_grad=True)
    expected = torch.nn.functional.logsigmoid(reference)
    expected.sum().backward()
    assert_close(result, expected.detach().numpy())
    assert_close(x.grad, reference.grad.numpy())
    assert nbprop.nn.LogSigmoid()(x).shape == x.shape


def _pairs(dtype):
    values = np.array([7.0, -7.0, 7.5, -7.5, 0.0, -0.0, 1e-3, 5.0, 6.0, 1e17, -3e9, np.inf, np.nan], dtype=dtype)
    divisors = np.array([2.0, -2.0, 0.1, -3.0, 0.0, np.inf, -np.inf, 1e-300, np.nan], dtype=dtype)
    a, b = np.meshgrid(values, divisors)
    return a.ravel(), b.ravel()


@pytest.mark.torch
@pytest.mark.parametrize("name", ["floor_divide", "remainder"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floor_divide_and_remainder_of_floats_equal_pytorchs_bit_for_bit(name, dtype):
    torch = _torch()
    a, b = _pairs(dtype)
    expected = getattr(torch, name)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    result = getattr(nbprop, name)(nbprop.tensor(a), nbprop.tensor(b)).numpy()
    # One known difference: where a / b overflows, PyTorch's vectorized float64 remainder gives NaN; the exact
    # remainder (fmod's, and Python's) is finite, and that is what nbprop returns.
    finite = np.isfinite(a) & np.isfinite(b) & (b != 0)
    overflow = np.isinf(a.astype(np.float64) / b) & finite if name == "remainder" else 0
    for index in np.flatnonzero(overflow):
        assert result[index] == dtype(float(a[index]) % float(b[index]))
    kept = ~np.asarray(overflow, bool)
    np.testing.assert_array_equal(result[kept], expected[kept])
    numbers = kept & ~np.isnan(expected)  # the sign of a NaN means nothing
    np.testing.assert_array_equal(np.signbit(result[numbers]), np.signbit(expected[numbers]))


@pytest.mark.torch
def test_the_operators_with_numbers_on_either_side_equal_pytorchs():
    torch = _torch()
    array = np.array([[7, -7, 0, 9]], dtype=np.int64)
    ours, theirs = nbprop.tensor(array), torch.from_numpy(array)
    for expression in (lambda t: t // 2, lambda t: t % -3, lambda t: 20 // (t + 10), lambda t: 20 % (t + 10),
                       lambda t: t // 2.5, lambda t: t % 2.5, lambda t: (t * 1.5) // t.T.clamp(1, 5)):
        result, expected = expression(ours), expression(theirs)
        assert result.dtype == expected.numpy().dtype
        assert_close(result, expected.numpy())
    x = nbprop.tensor([7, -8])
    x //= 3
    x %= 2
    assert x.tolist() == [0, 1]


def test_integer_division_by_zero_raises_as_pytorch():
    for operation in (lambda a, b: a // b, lambda a, b: a % b):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            operation(nbprop.tensor([7, 1]), nbprop.tensor([2, 0]))
    with pytest.raises(TypeError, match="floor_divide: not supported for bool"):
        nbprop.tensor([True]) // nbprop.tensor([True])


def test_floor_divide_is_not_differentiable_as_pytorch():
    x = leaf([3.0, 4.0])
    y = x // 2
    assert y.requires_grad
    with pytest.raises(RuntimeError, match="derivative for floor_divide is not implemented"):
        y.sum().backward()


def test_remainder_gradients_by_central_differences():
    a, b = leaf([[5.5, -5.5, 2.2]]), leaf([[2.0], [-3.0]])
    assert nbprop.gradcheck(lambda a, b: a % b, (a, b))
    assert nbprop.gradcheck(lambda a, b: nbprop.atan2(a, b), (a, b))
    assert nbprop.gradcheck(lambda a, b: nbprop.hypot(a, b), (a, b))


@pytest.mark.torch
def test_atan2_and_hypot_promote_and_check_dtypes_as_pytorch():
    torch = _torch()
    assert nbprop.atan2(nbprop.tensor([1]), nbprop.tensor([2])).dtype == nbprop.float32
    assert_close(nbprop.atan2(nbprop.tensor([1]), nbprop.tensor([2])),
                 torch.atan2(torch.tensor([1]), torch.tensor([2])).numpy())
    with pytest.raises(TypeError, match="hypot: expects floating-point tensors"):
        nbprop.hypot(nbprop.tensor([3]), nbprop.tensor([4]))
    large = nbprop.tensor([3e300, 4e300], dtype=nbprop.float64)
    assert_close(nbprop.hypot(large[:1], large[1:]), [5e300])
