"""Gradients written straight into an optimizer's flat buffer (FlatBucket.lend_grad): engaged in a training
loop, invisible otherwise: same values as without it, a kept `.grad` keeps its values, steps never write it."""

import gc
import inspect
import weakref

import numpy as np
import pytest

import nbprop
from nbprop import optim
from nbprop.autograd import grad as autograd_grad
from nbprop.nn.linear import Linear
from nbprop.ops.linear import linear
from nbprop.optim import SGD


def _model_and_data(seed=0, dtype=np.float64):
    nbprop.manual_seed(seed)
    model = Linear(4, 3).to(dtype)
    inputs = nbprop.tensor(np.random.default_rng(seed).standard_normal((5, 4)), dtype=dtype)
    return model, inputs


def _flat_grad(optimizer):
    return optimizer._buckets[0][0].flat_grad


def _loss(model, inputs):
    # tanh, so that Linear's backward receives a gradient that is not all ones.
    return model(inputs).tanh().sum()


def test_backward_writes_into_the_flat_buffer():
    model, inputs = _model_and_data()
    optimizer = SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        _loss(model, inputs).backward()
        for parameter in model.parameters():
            assert np.shares_memory(parameter.grad.numpy(), _flat_grad(optimizer))
        optimizer.step()


def test_elementwise_gradient_is_copied_into_the_flat_buffer():
    weight = nbprop.nn.Parameter(nbprop.tensor(np.arange(3.0)))
    optimizer = SGD([weight], lr=0.1)
    (weight * weight).sum().backward()
    assert np.shares_memory(weight.grad.numpy(), _flat_grad(optimizer))
    np.testing.assert_array_equal(weight.grad.numpy(), 2 * np.arange(3.0))


def test_same_values_as_without_an_optimizer():
    model, inputs = _model_and_data()
    expected = autograd_grad(_loss(model, inputs), list(model.parameters()))
    optimizer = SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    _loss(model, inputs).backward()
    for parameter, gradient in zip(model.parameters(), expected):
        np.testing.assert_array_equal(parameter.grad.numpy(), gradient.numpy())
        assert not np.shares_memory(gradient.numpy(), _flat_grad(optimizer))


@pytest.mark.parametrize("keep", ["tensor", "numpy view", "detached", "row"])
def test_a_kept_grad_keeps_its_values(keep):
    """PyTorch: after zero_grad() (set to None) the next backward makes a new .grad; one kept stays as it was."""
    model, inputs = _model_and_data()
    optimizer = SGD(model.parameters(), lr=0.1)
    _loss(model, inputs).backward()
    kept = {
        "tensor": lambda g: g,
        "numpy view": lambda g: g.numpy()[1:],
        "detached": lambda g: g.detach(),
        "row": lambda g: g[0],
    }[keep](model.weight.grad)
    values = np.array(kept.numpy() if isinstance(kept, nbprop.Tensor) else kept)
    optimizer.step()
    optimizer.zero_grad()
    (2 * _loss(model, inputs)).backward()
    np.testing.assert_array_equal(kept.numpy() if isinstance(kept, nbprop.Tensor) else kept, values)
    del kept
    optimizer.zero_grad()
    _loss(model, inputs).backward()
    assert np.shares_memory(model.weight.grad.numpy(), _flat_grad(optimizer))


def test_trajectory_equal_with_and_without_lending():
    def train(lend):
        model, inputs = _model_and_data(seed=3)
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(5):
            optimizer.zero_grad()
            if lend:
                _loss(model, inputs).backward()
            else:
                gradients = autograd_grad(_loss(model, inputs), list(model.parameters()))
                for parameter, gradient in zip(model.parameters(), gradients):
                    parameter.grad = gradient
            optimizer.step()
        return [p.detach().numpy().copy() for p in model.parameters()]

    for lent, assigned in zip(train(True), train(False)):
        np.testing.assert_array_equal(lent, assigned)


def test_weight_used_twice_accumulates():
    square = Linear(3, 3).double()
    data = nbprop.tensor(np.random.default_rng(1).standard_normal((4, 3)))
    expected = autograd_grad(square(square(data).tanh()).sum(), [square.weight])[0]
    optimizer = SGD(square.parameters(), lr=0.1)
    optimizer.zero_grad()
    square(square(data).tanh()).sum().backward()
    np.testing.assert_allclose(square.weight.grad.numpy(), expected.numpy(), rtol=1e-15, atol=0)


def test_leaf_that_is_two_inputs_of_one_op():
    weight = nbprop.nn.Parameter(nbprop.tensor(np.random.default_rng(2).standard_normal((3, 3))))
    expected = autograd_grad(linear(weight, weight).sum(), [weight])[0]
    optimizer = SGD([weight], lr=0.1)
    optimizer.zero_grad()
    linear(weight, weight).sum().backward()
    np.testing.assert_allclose(weight.grad.numpy(), expected.numpy(), rtol=1e-15, atol=0)


def _all_optimizers():
    names = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam", "Rprop", "ASGD",
             "Lion", "LAMB", "OptaxAdafactor", "Adafactor"]
    return [getattr(optim, name) for name in names]


@pytest.mark.parametrize("optimizer_class", _all_optimizers(), ids=lambda c: c.__name__)
def test_step_leaves_grad_unchanged(optimizer_class):
    """The update only reads the gradients it finds in the flat buffer: .grad is the user's to read after step."""
    model, inputs = _model_and_data(dtype=np.float32)
    options = {}
    accepted = inspect.signature(optimizer_class).parameters
    for name, value in (("maximize", True), ("weight_decay", 0.1), ("momentum", 0.9), ("lr", 0.01)):
        if name in accepted:
            options[name] = value
    optimizer = optimizer_class(model.parameters(), **options)
    for _ in range(2):
        optimizer.zero_grad()
        _loss(model, inputs).backward()
        before = [p.grad.numpy().copy() for p in model.parameters()]
        assert all(np.shares_memory(p.grad.numpy(), _flat_grad(optimizer)) for p in model.parameters())
        optimizer.step()
        for parameter, gradient in zip(model.parameters(), before):
            np.testing.assert_array_equal(parameter.grad.numpy(), gradient)


def test_transform_optimizer_does_not_lend():
    """Transforms write their updates over the gathered gradients, so .grad must stay out of that buffer."""
    model, inputs = _model_and_data()
    optimizer = optim.from_transform(model.parameters(), optim.chain(optim.scale_by_adam(), optim.scale(-1.0)),
                                     lr=0.1)
    _loss(model, inputs).backward()
    before = [p.grad.numpy().copy() for p in model.parameters()]
    optimizer.step()
    for parameter, gradient in zip(model.parameters(), before):
        assert not np.shares_memory(parameter.grad.numpy(), _flat_grad(optimizer))
        np.testing.assert_array_equal(parameter.grad.numpy(), gradient)


def test_a_deleted_optimizer_is_freed_and_gradients_are_fresh_again():
    model, inputs = _model_and_data()
    optimizer = SGD(model.parameters(), lr=0.1)
    bucket = weakref.ref(optimizer._buckets[0][0])
    _loss(model, inputs).backward()
    optimizer.step()
    model.zero_grad()
    del optimizer
    gc.collect()
    assert bucket() is None  # the parameters' lenders hold it weakly
    _loss(model, inputs).backward()
    expected = autograd_grad(_loss(model, inputs), [model.weight])[0]
    np.testing.assert_array_equal(model.weight.grad.numpy(), expected.numpy())
