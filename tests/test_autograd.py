"""The tape: accumulation, shared inputs, long chains, freed graphs, in-place checks, grad modes, Functions."""


import numpy as np
import pytest
from helpers import assert_close, leaf

import nbprop
from nbprop import autograd

F64 = nbprop.float64


def _ones(*shape):
    return nbprop.ones(*shape, dtype=F64)


# ---------------------------------------------------------------------------------------- accumulation


def test_gradients_accumulate_into_leaves_over_two_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(_ones(3))
    first = x.grad
    assert_close(first, [2.0, 4.0, 6.0])
    (x * 3.0).backward(_ones(3))
    assert_close(x.grad, [5.0, 7.0, 9.0])
    # Accumulated in place, as PyTorch's AccumulateGrad does: the same .grad object, now holding the sum.
    assert x.grad is first


@pytest.mark.torch
def test_gradient_accumulation_keeps_the_grad_object_like_pytorch():
    import torch

    ours, theirs = leaf([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (ours * ours).backward(_ones(3))
    (theirs * theirs).backward(torch.ones(3, dtype=torch.float64))
    kept_ours, kept_theirs = ours.grad, theirs.grad
    (ours * 3.0).backward(_ones(3))
    (theirs * 3.0).backward(torch.ones(3, dtype=torch.float64))
    assert (ours.grad is kept_ours) == (theirs.grad is kept_theirs)
    assert_close(kept_ours, kept_theirs.numpy())


def test_leaf_grad_does_not_alias_the_incoming_gradient():
    x = leaf([1.0, 2.0])
    gradient = nbprop.tensor([1.0, 1.0], dtype=F64)
    (x + 1.0).backward(gradient)
    x.grad.numpy()[0] = 100.0
    assert gradient.numpy()[0] == 1.0


def test_shared_subexpressions_sum_their_gradients():
    x = leaf([0.5, -1.0, 2.0])
    y = x * x                      # x used twice
    z = y * x + y.sin() + x        # y used twice, x three times
    z.backward(_ones(3))
    a = np.array([0.5, -1.0, 2.0])
    assert_close(x.grad, 3 * a ** 2 + np.cos(a ** 2) * 2 * a + 1)


def test_same_tensor_as_both_operands():
    x = leaf([3.0, -2.0])
    (x * x + x / x - x - x).backward(_ones(2))
    assert_close(x.grad, [2 * 3.0 - 2, 2 * -2.0 - 2])


def test_diamond_graph_with_many_reuses():
    x = leaf([1.5])
    total = x
    for _ in range(50):
        total = total + x * 0.5
    total.backward(_ones(1))
    assert_close(x.grad, [26.0])


def test_long_chain_backward_is_iterative():
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.backward(_ones(1))  # no recursion: a recursive walk would pass Python's limit long before
    assert_close(x.grad, [1.0])
    assert_close(y, [100_001.0])


def test_unused_branch_gets_no_gradient_and_non_requiring_inputs_stay_none():
    x = leaf([1.0, 2.0])
    constant = nbprop.tensor([3.0, 4.0], dtype=F64)
    (x * constant).backward(_ones(2))
    assert constant.grad is None
    assert_close(x.grad, [3.0, 4.0])


# ------------------------------------------------------------------------------------- graph lifetime


def test_second_backward_through_freed_graph_raises_clearly():
    x = leaf([1.0, 2.0])
    y = x.exp()
    y.backward(_ones(2))
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        y.backward(_ones(2))


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = leaf([1.0, 2.0])
    y = x.exp() * x
    y.backward(_ones(2), retain_graph=True)
    y.backward(_ones(2))
    a = np.array([1.0, 2.0])
    assert_close(x.grad, 2 * (np.exp(a) * a + np.exp(a)))
    with pytest.raises(RuntimeError, match="second time"):
        y.backward(_ones(2))


def test_graph_without_saved_tensors_can_backward_twice_like_pytorch():
    x = leaf([1.0, 2.0])
    y = x + x
    y.backward(_ones(2))
    y.backward(_ones(2))
    assert_close(x.grad, [4.0, 4.0])


@pytest.mark.torch
@pytest.mark.parametrize("expression", [
    lambda t: t * 2.5, lambda t: 3 * t, lambda t: t / 4, lambda t: 4 / t, lambda t: t ** 2, lambda t: -t,
    lambda t: t - 1, lambda t: 1 - t, lambda t: t + 1,
], ids=["t*2.5", "3*t", "t/4", "4/t", "t**2", "-t", "t-1", "1-t", "t+1"])
def test_second_backward_without_retain_graph_like_pytorch(expression):
    """PyTorch saves a Python number of mul/div as a tensor, so those refuse a second backward; -, + don't."""
    import torch

    outcomes = []
    for tensor in (leaf([1.0, -2.0]), torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)):
        y = expression(tensor).sum()
        y.backward()
        try:
            y.backward()
            outcomes.append(tensor.grad.numpy().tolist())
        except RuntimeError as error:
            assert "second time" in str(error)
            outcomes.append("raises")
    assert outcomes[0] == outcomes[1]


def test_saved_tensors_are_released_after_backward():
    import gc
    import weakref

    x = leaf([1.0, 2.0])
    intermediate = x * 3.0
    reference = weakref.ref(intermediate)
    y = intermediate.exp()  # Exp saves its result; the intermediate is saved by nobody
    z = y * intermediate    # Mul saves the intermediate
    del intermediate
    z.backward(_ones(2))
    gc.collect()
    assert reference() is None


def test_backward_argument_errors():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3,\) for an output of shape \(2,\)"):
        (x * 2).backward(_ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        nbprop.tensor([1.0, 2.0]).backward(nbprop.ones(2))
    with pytest.raises(TypeError, match="gradient must be a Tensor"):
        (x * 2).backward([[1.0, 1.0]])
    scalar = leaf(2.0)
    (scalar * scalar).backward()  # a 0-d output needs no gradient argument
    assert_close(scalar.grad, 4.0)
    single = leaf([3.0])
    (single * single).backward()  # nor does a one-element output
    assert_close(single.grad, [6.0])


def test_only_floating_tensors_can_require_grad():
    for dtype in (nbprop.int64, nbprop.bool):
        with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients"):
            nbprop.zeros(2, dtype=dtype, requires_grad=True)
        with pytest.raises(RuntimeError, match="only floating-point tensors"):
            nbprop.zeros(2, dtype=dtype).requires_grad_()
    with pytest.raises(RuntimeError, match="only floating-point tensors"):
        nbprop.tensor([1, 2], requires_grad=True)
    assert nbprop.zeros(2, requires_grad=True).requires_grad


# ------------------------------------------------------------------------------------ retain, detach


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    z = y * y
    z.backward(_ones(2))
    assert_close(y.grad, [6.0, 12.0])
    assert_close(x.grad, [18.0, 36.0])
    unretained = x * 2
    (unretained * 1.0).backward(_ones(2))
    assert unretained.grad is None


def test_detach_cuts_the_tape_and_shares_storage():
    x = leaf([1.0, 2.0])
    y = x * 2
    detached = y.detach()
    assert not detached.requires_grad and detached.grad_fn is None and detached.is_leaf
    assert np.shares_memory(detached.numpy(), y._data)
    (y * detached).backward(_ones(2))
    assert_close(x.grad, [4.0, 8.0])  # d(2x * c)/dx with c held constant
    detached_leaf = x.detach()
    with nbprop.no_grad():
        detached_leaf.add_(1)  # shares storage and version with x
    assert_close(x.detach(), [2.0, 3.0])
    assert x._version == 1
    z = nbprop.exp(x)
    z.detach_()
    assert z.grad_fn is None and not z.requires_grad


# ---------------------------------------------------------------------------------------- grad modes


def test_no_grad_enable_grad_and_set_grad_enabled_as_context_managers():
    x = leaf([1.0])
    assert nbprop.is_grad_enabled()
    with nbprop.no_grad():
        assert not nbprop.is_grad_enabled()
        y = x * 2
        assert not y.requires_grad and y.grad_fn is None
        with nbprop.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert nbprop.is_grad_enabled()
    with nbprop.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with nbprop.set_grad_enabled(True):
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_grad_modes_are_restored_after_an_exception():
    with pytest.raises(ValueError, match="boom"), nbprop.no_grad():
        raise ValueError("boom")
    assert nbprop.is_grad_enabled()


def test_grad_modes_as_decorators():
    x = leaf([1.0])

    @nbprop.no_grad()
    def without(tensor):
        return tensor * 2

    @nbprop.enable_grad()
    def with_grad(tensor):
        return tensor * 2

    @nbprop.set_grad_enabled(False)
    def disabled(tensor):
        return tensor * 2

    assert nbprop.is_grad_enabled()  # decorating changes nothing outside the call
    assert not without(x).requires_grad
    assert not disabled(x).requires_grad
    assert nbprop.is_grad_enabled()
    with nbprop.no_grad():
        assert with_grad(x).requires_grad
        assert not nbprop.is_grad_enabled()
    assert without.__name__ == "without"


def test_creating_a_no_grad_object_does_not_change_the_mode():
    guard = nbprop.no_grad()
    try:
        assert nbprop.is_grad_enabled()
        with guard:
            assert not nbprop.is_grad_enabled()
        assert nbprop.is_grad_enabled()
    finally:
        nbprop.set_grad_enabled(True)


def test_no_grad_as_a_bare_decorator():
    @nbprop.no_grad
    def double(tensor):
        return tensor * 2

    assert not double(leaf([1.0])).requires_grad


# --------------------------------------------------------------------------------------- autograd.grad


def test_autograd_grad_returns_gradients_without_touching_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = x * w
    grad_x, grad_w = autograd.grad(y, [x, w], _ones(2))
    assert_close(grad_x, [3.0, 4.0])
    assert_close(grad_w, [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_autograd_grad_of_intermediate_and_allow_unused():
    x, unused = leaf([1.0, 2.0]), leaf([5.0])
    y = x * 2
    z = y * y
    (grad_y,) = autograd.grad(z, y, _ones(2), retain_graph=True)
    assert_close(grad_y, [4.0, 8.0])
    with pytest.raises(RuntimeError, match=r"input 1 \(shape \(1,\)\) was not used.*allow_unused=True"):
        autograd.grad(z, [x, unused], _ones(2), retain_graph=True)
    grad_x, grad_unused = autograd.grad(z, [x, unused], _ones(2), allow_unused=True)
    assert_close(grad_x, [8.0, 16.0])
    assert grad_unused is None
    with pytest.raises(RuntimeError, match="every input must be a Tensor that requires grad"):
        autograd.grad(x * 2, nbprop.tensor([1.0]), _ones(2))


def test_autograd_backward_with_several_outputs():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = y * x
    autograd.backward([y, z], [_ones(2), _ones(2)])
    assert_close(x.grad, [2.0 + 4.0, 2.0 + 8.0])
    with pytest.raises(ValueError, match="got 1 gradients for 2 outputs"):
        autograd.backward([x * 1, x * 2], [_ones(2)])


# ---------------------------------------------------------------------------------------- determinism


def test_same_computation_twice_is_bit_identical():
    rng = np.random.default_rng(7)
    values, weights = rng.normal(size=(300, 300)), rng.normal(size=(300,))  # 90,000 elements: parallel kernels

    def run():
        x, w = leaf(values), leaf(weights)
        y = ((x * w).tanh() + (x - w).sigmoid() * x.exp() / (1 + w * w)) ** 2
        y.backward(nbprop.tensor(np.cos(values)))
        return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()

    for first, second in zip(run(), run()):
        np.testing.assert_array_equal(first, second)
