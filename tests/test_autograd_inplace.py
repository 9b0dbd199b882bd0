"""In-place ops on the tape: leaves, non-leaves, saved tensors, views and expanded tensors, against PyTorch."""

import numpy as np
import pytest
from helpers import assert_close, leaf

import nbprop

F64 = nbprop.float64


def _ones(*shape):
    return nbprop.ones(*shape, dtype=F64)


def test_modifying_a_saved_tensor_in_place_makes_backward_raise():
    x = leaf([1.0, 2.0])
    w = nbprop.tensor([3.0, 4.0], dtype=F64)
    y = x * w
    with nbprop.no_grad():
        w.add_(1)
    with pytest.raises(RuntimeError, match=r"Mul.backward: saved tensor 0 saved for backward \(shape \(2,\).*modified "
                                           r"by an in-place operation \(version 0 when saved, 1 now\)"):
        y.backward(_ones(2))


def test_modifying_a_broadcast_saved_tensor_in_place_makes_backward_raise():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    w = nbprop.tensor([3.0, 4.0], dtype=F64)
    y = x * w  # saves an expanded view of w, which shares w's version counter
    with nbprop.no_grad():
        w.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward(_ones(2, 2))


def test_modifying_a_saved_result_in_place_makes_backward_raise():
    x = leaf([1.0, 2.0])
    y = x.exp()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="Exp.backward: its output 0 saved for backward"):
        y.backward(_ones(2))


def test_modifying_an_unsaved_tensor_in_place_is_fine():
    x = leaf([1.0, 2.0])
    w = nbprop.tensor([3.0, 4.0], dtype=F64)
    y = x + w
    with nbprop.no_grad():
        w.add_(1)
    y.backward(_ones(2))
    assert_close(x.grad, [1.0, 1.0])


def test_in_place_on_a_leaf_that_requires_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"add_: a leaf tensor that requires grad \(shape \(2,\)\) cannot be changed "
                                           "in place"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad"):
        x += 1
    with nbprop.no_grad():
        x.add_(1)
        x.mul_(2)
        x -= 1
        x /= 2
    assert_close(x.detach(), [1.5, 2.5])
    assert x.is_leaf and x.requires_grad and x.grad_fn is None
    assert x._version == 4
    (x * x).backward(_ones(2))
    assert_close(x.grad, [3.0, 5.0])


@pytest.mark.torch
@pytest.mark.parametrize("case", ["add_mul", "iadd", "sub_div", "mul_by_input", "copy", "copy_constant", "clamp",
                                  "fill", "fill_then_add", "zero_then_add"])
def test_in_place_on_non_leaf_tensors_keeps_gradients_like_pytorch(case):
    import torch

    def program(module, x, w):
        y = x * 2
        if case == "add_mul":
            y.add_(1)
            y.mul_(3)
        elif case == "iadd":
            y += w
            y *= w
            y -= 1
        elif case == "sub_div":
            y.sub_(w, alpha=2)
            y.div_(w)
        elif case == "copy":
            y.copy_(w * w)
        elif case == "clamp":
            y.clamp_(-1.0, 2.0)
        elif case == "fill_then_add":
            y.fill_(0.5)
            y.add_(w)
        elif case == "mul_by_input":
            y.mul_(x)
        elif case == "copy_constant":
            y.copy_(module.ones(3, dtype=w.dtype))
        elif case == "fill":
            y.fill_(0.5)
        elif case == "zero_then_add":
            y.zero_()
            y += w * x
        return y * module.exp(x)

    x_values, w_values = np.array([0.3, -0.8, 1.4]), np.array([1.5, -0.5, 2.0])
    grad_output = np.array([1.0, -2.0, 0.5])
    x, w = leaf(x_values), leaf(w_values)
    result = program(nbprop, x, w)
    result.backward(nbprop.tensor(grad_output))
    tx = torch.tensor(x_values, requires_grad=True)
    tw = torch.tensor(w_values, requires_grad=True)
    expected = program(torch, tx, tw)
    expected.backward(torch.from_numpy(grad_output))
    assert_close(result, expected.detach().numpy())
    assert_close(x.grad, tx.grad.numpy())
    if tw.grad is None:
        assert w.grad is None
    else:
        assert_close(w.grad, tw.grad.numpy())


@pytest.mark.torch
def test_in_place_change_of_a_tensor_saved_by_an_earlier_op_raises_like_pytorch():
    import torch

    for module, make in ((nbprop, leaf), (torch, lambda values: torch.tensor(values, requires_grad=True))):
        x = make([0.3, -0.8])
        y = x * 2
        z = y.sin()  # saves y
        y.add_(z)
        with pytest.raises(RuntimeError, match="modified by an in-?place operation"):
            (y * 1.0).backward(module.ones(2, dtype=module.float64))


def test_in_place_write_into_expanded_or_wrong_shape_raises():
    with pytest.raises(RuntimeError, match="expanded view"):
        nbprop.zeros(3).expand(2, 3).add_(1)
    with pytest.raises(RuntimeError, match="in-place ops cannot broadcast the output"):
        nbprop.zeros(3).add_(nbprop.ones(2, 3))
    with pytest.raises(RuntimeError, match="cannot be written into a int64 tensor"):
        nbprop.zeros(3, dtype=nbprop.int64).mul_(1.5)


def test_in_place_on_a_view_of_a_leaf_that_requires_grad_raises():
    weight = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"add_: changing a view \(shape \(2,\)\) in place while gradients"):
        weight[1:].add_(1.0)
    with nbprop.no_grad():
        weight[1:].add_(1.0)  # an update, as optimizers do
    assert weight.detach().numpy().tolist() == [1.0, 3.0, 4.0]


def test_in_place_on_a_view_of_a_non_leaf_raises_instead_of_losing_the_gradient():
    x = leaf([1.0, 2.0])
    y = x * 1.0
    with pytest.raises(RuntimeError, match=r"setitem: changing a view .* is not supported"):
        y[0][...] = leaf(5.0)
    with pytest.raises(RuntimeError, match=r"mul_: changing a view"):
        y.reshape(2, 1).mul_(2.0)


def test_in_place_on_views_without_gradients_changes_the_base():
    base = nbprop.zeros(2, 3)
    base[0].fill_(1.0)
    base.T[2].add_(2.0)
    assert base.tolist() == [[1.0, 1.0, 3.0], [0.0, 0.0, 2.0]]
    assert base._version == 2

