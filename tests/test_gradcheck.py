"""gradcheck itself: passes correct gradients, names the worst wrong element, refuses what it cannot check."""

import numpy as np
import pytest
from helpers import leaf

import nbprop
from nbprop import GradcheckError


class WrongCube(nbprop.Function):
    """x ** 3 with a backward that is wrong at one element only (the flat index 4)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        error = np.zeros(x.shape)
        error.reshape(-1)[4] = 0.5
        return grad_output * 3 * x * x + nbprop.tensor(error) * grad_output


class ProductAndSum(nbprop.Function):
    """Two outputs, x * y and x + y; the gradient of y through the sum is wrong by a factor 2."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y, x + y

    @staticmethod
    def backward(ctx, grad_product, grad_sum):
        x, y = ctx.saved_tensors
        return grad_product * y + grad_sum, grad_product * x + grad_sum * 2


def test_passes_on_correct_functions():
    x, y = leaf(np.random.default_rng(0).normal(size=(2, 3))), leaf(np.random.default_rng(1).normal(size=(3,)))
    assert nbprop.gradcheck(lambda a, b: (a * b).tanh() + a.exp() / (1 + b * b), (x, y))
    assert nbprop.gradcheck(lambda a: (a.sin(), a * 2), (x,))  # several outputs
    assert nbprop.gradcheck(nbprop.sigmoid, leaf([0.5, -0.5]))  # a single tensor instead of a tuple
    assert nbprop.gradcheck(lambda a: (a * 2, a > 0), (x,))  # bool outputs are skipped
    assert nbprop.gradcheck(lambda a, scale: a * scale, (x, 3.0))  # non-tensor inputs pass through


def test_inputs_that_do_not_require_grad_are_held_constant():
    x = leaf([1.0, 2.0])
    constant = nbprop.tensor([3.0, -1.0], dtype=nbprop.float64)
    assert nbprop.gradcheck(lambda a, b: a * b, (x, constant))


def test_empty_and_zero_dimensional_inputs():
    assert nbprop.gradcheck(lambda a: a * 2, (leaf(np.zeros((0, 3))),))
    assert nbprop.gradcheck(lambda a: a.exp(), (leaf(1.5),))


def test_names_the_worst_element_of_a_wrong_backward():
    x = leaf(np.arange(1.0, 7.0).reshape(2, 3))
    with pytest.raises(GradcheckError, match=r"Jacobian mismatch for input 0 \(shape \(2, 3\)\), 1 of 36 entries off; "
                                             r"worst at output element 4, input element 4: analytical .*75\.5.*, "
                                             r"numerical .*75\.0"):
        nbprop.gradcheck(WrongCube.apply, (x,))
    assert nbprop.gradcheck(WrongCube.apply, (x,), raise_exception=False) is False
    assert isinstance(GradcheckError("message"), RuntimeError)


def test_finds_a_wrong_gradient_of_the_second_input_through_the_second_output():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    # Outputs flattened one after the other: elements 2 and 3 are the sum, whose gradient is off on the diagonal.
    expected = (r"input 1 \(shape \(2,\)\), 2 of 8 entries off; worst at output element [23], input element [01]: "
                r"analytical .*2\.0.*, numerical .*1\.0")
    with pytest.raises(GradcheckError, match=expected):
        nbprop.gradcheck(ProductAndSum.apply, (x, y))
    assert nbprop.gradcheck(lambda a: ProductAndSum.apply(a, nbprop.tensor([3.0, 4.0], dtype=nbprop.float64)), (x,))


def test_tolerances_are_respected():
    # The wrong element is off by 0.5 on a derivative of 75: within rtol 1e-2, outside the default 1e-3.
    x = leaf(np.arange(1.0, 7.0))
    assert nbprop.gradcheck(WrongCube.apply, (x,), rtol=1e-2)
    with pytest.raises(GradcheckError):
        nbprop.gradcheck(WrongCube.apply, (x,))


def test_refuses_what_it_cannot_check():
    with pytest.raises(ValueError, match="gradcheck: input 0 is float32; central differences need float64"):
        nbprop.gradcheck(lambda a: a * 2, (nbprop.tensor([1.0], requires_grad=True),))
    with pytest.raises(ValueError, match="gradcheck: no input requires grad"):
        nbprop.gradcheck(lambda a: a * 2, (nbprop.tensor([1.0], dtype=nbprop.float64),))
    strided = nbprop.from_numpy(np.arange(6.0)[::2]).requires_grad_()
    with pytest.raises(ValueError, match="gradcheck: input 0 must be a contiguous, writeable tensor"):
        nbprop.gradcheck(lambda a: a * 2, (strided,))


def test_leaves_inputs_unchanged_and_grad_untouched():
    values = np.array([0.3, -1.2, 2.0])
    x = leaf(values)
    nbprop.gradcheck(lambda a: a.sin() * a, (x,))
    np.testing.assert_array_equal(x.detach().numpy(), values)
    assert x.grad is None


def test_nan_in_both_jacobians_is_accepted():
    # sqrt at -1: NaN forward, NaN analytical and numerical derivative.
    assert nbprop.gradcheck(nbprop.sqrt, (leaf([-1.0]),))
