"""Tensor.register_hook and register_post_accumulate_grad_hook: PyTorch's call order, replacement and removal."""

import numpy as np
import pytest

import nbprop

pytestmark = pytest.mark.torch


def _run(module, log):
    """The same graph and hooks in either library; `log` gets (name, gradient) in call order."""
    x = module.tensor([1.0, -2.0, 3.0], dtype=module.float64, requires_grad=True)
    w = module.tensor([0.5, 0.25, 2.0], dtype=module.float64, requires_grad=True)
    handles = [
        x.register_hook(lambda g: log.append(("x first", g.detach().numpy().copy())) or g * 2),
        x.register_hook(lambda g: log.append(("x second", g.detach().numpy().copy()))),
    ]
    hidden = x * w
    hidden.register_hook(lambda g: log.append(("hidden", g.detach().numpy().copy())) or g + 1)
    hidden.retain_grad()
    w.register_post_accumulate_grad_hook(lambda tensor: log.append(("w accumulated", tensor.grad.numpy().copy())))
    # x is used twice: its hooks run once, on the sum
    loss = (hidden.tanh() * 3).sum() + (x ** 2).sum()
    loss.backward()
    return x, w, hidden, handles


def test_hooks_run_replace_and_are_removed_as_in_pytorch():
    import torch

    ours_log, torch_log = [], []
    ours = _run(nbprop, ours_log)
    theirs = _run(torch, torch_log)
    assert [name for name, _ in ours_log] == [name for name, _ in torch_log]
    for (_, a), (_, b) in zip(ours_log, torch_log):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    for a, b in zip(ours[:3], theirs[:3]):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-14)

    for handles, x, log in ((ours[3], ours[0], ours_log), (theirs[3], theirs[0], torch_log)):
        for handle in handles:
            handle.remove()
        handles[0].remove()  # again: harmless
        x.grad = None
        log.clear()
        (x * x).sum().backward()
        assert log == []
    np.testing.assert_array_equal(ours[0].grad.numpy(), theirs[0].grad.numpy())


def test_hooks_apply_to_autograd_grad_inputs_and_to_a_recorded_pass():
    import torch

    results = []
    for module in (nbprop, torch):
        x = module.tensor([0.5, 1.5], dtype=module.float64, requires_grad=True)
        x.register_hook(lambda g: g * 10)
        y = x * x
        y.register_hook(lambda g: g * 3)
        (first,) = module.autograd.grad((y * x).sum(), x, create_graph=True)
        (second,) = module.autograd.grad(first.sum(), x)
        results.append((first.detach().numpy(), second.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_hook_errors_name_the_problem():
    x = nbprop.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        x.register_hook(lambda g: g)
    x.requires_grad_()
    x.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="changed the gradient from shape"):
        (x * 2).sum().backward()
    y = x * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.register_post_accumulate_grad_hook(lambda tensor: None)
    z = nbprop.tensor([1.0], requires_grad=True)
    z.register_hook(lambda g: 3)
    with pytest.raises(TypeError, match="must return a Tensor or None"):
        (z * 2).sum().backward()


def test_a_handle_removes_its_hook_as_a_context_manager():
    x = nbprop.tensor([1.0, 2.0], requires_grad=True)
    with x.register_hook(lambda g: g * 0):
        (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_a_leaf_is_finished_when_its_last_gradient_arrives_not_at_the_end_of_the_pass():
    """As PyTorch's AccumulateGrad: the last layer's post-accumulate hook runs before the first layer's gradient
    exists, so work started there (an all-reduce) overlaps the rest of the backward pass."""
    import torch

    for module in (nbprop, torch):
        x = module.ones(2, 3)
        first = module.ones(3, 4, requires_grad=True)
        last = module.ones(4, 1, requires_grad=True)
        seen = []
        last.register_post_accumulate_grad_hook(lambda tensor: seen.append(first.grad is None))
        ((x @ first) @ last).sum().backward()
        assert seen == [True], module.__name__
