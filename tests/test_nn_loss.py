"""Loss modules: PyTorch's constructors, buffers, state_dict keys and repr; outputs and gradients as PyTorch's."""

import warnings

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch

import nbprop
from nbprop.nn import loss as nn_loss
from nbprop.nn.module import Module

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


def _case(name, rng, dtype):
    """(constructor keyword arrays and values, input array, target array, whether the target is differentiable)."""
    logits = rng.standard_normal((4, 3, 2))
    classes = rng.integers(0, 3, (4, 2))
    classes[0, 0] = 1
    probabilities = rng.uniform(0.05, 0.95, (4, 3, 2))
    weight = rng.uniform(0.5, 2.0, 3).astype(dtype)
    return {
        "L1Loss": ({"reduction": "sum"}, logits, probabilities, True),
        "MSELoss": ({}, logits, probabilities, True),
        "SmoothL1Loss": ({"beta": 0.5, "reduction": "none"}, logits, probabilities, True),
        "HuberLoss": ({"delta": 0.7}, logits, probabilities, True),
        "CrossEntropyLoss": ({"weight": weight, "ignore_index": 1, "label_smoothing": 0.1}, logits, classes, False),
        "NLLLoss": ({"weight": weight, "reduction": "sum"}, logits, classes, False),
        "BCELoss": ({"weight": rng.uniform(0.5, 2.0, (3, 1)).astype(dtype)}, probabilities, probabilities[::-1],
                    True),
        "BCEWithLogitsLoss": ({"weight": rng.uniform(0.5, 2.0, 2).astype(dtype),
                               "pos_weight": rng.uniform(0.5, 2.0, (3, 1)).astype(dtype)}, logits, probabilities,
                              True),
        "KLDivLoss": ({"reduction": "batchmean"}, np.log(probabilities), probabilities[::-1], True),
    }[name]


NAMES = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
         "BCEWithLogitsLoss", "KLDivLoss"]


def _build(library, name, options, tensor):
    return getattr(library, name)(**{key: tensor(value) if isinstance(value, np.ndarray) else value
                                     for key, value in options.items()})


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_modules_match_torch(name, dtype):
    import torch

    options, prediction, target, target_grad = _case(name, np.random.default_rng(1), dtype)
    ours = _build(nn_loss, name, options, nbprop.tensor)
    theirs = _build(torch.nn, name, options, torch.tensor)
    assert isinstance(ours, Module) and repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    inputs = [leaf(prediction, dtype), leaf(target, dtype, target_grad) if target.dtype.kind == "f"
              else nbprop.tensor(target)]
    torch_inputs = [to_torch(tensor) for tensor in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, expected = ours(*inputs), theirs(*torch_inputs)
    assert_close(result, expected.detach().numpy(), **TOLERANCE[dtype])
    grad_output = np.cos(np.arange(expected.numel())).reshape(expected.shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    for our_input, their_input in zip(inputs, torch_inputs):
        if their_input.requires_grad:
            assert_close(our_input.grad, their_input.grad.numpy(), **TOLERANCE[dtype])


@pytest.mark.parametrize("name", NAMES)
def test_modules_pass_gradcheck(name):
    options, prediction, target, target_grad = _case(name, np.random.default_rng(2), np.float64)
    module = _build(nn_loss, name, options, nbprop.tensor)
    inputs = [leaf(prediction), leaf(target, requires_grad=target_grad) if target.dtype.kind == "f"
              else nbprop.tensor(target)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert nbprop.gradcheck(module, inputs)


@pytest.mark.torch
def test_buffers_load_from_a_torch_state_dict_and_follow_the_module_dtype():
    import torch

    theirs = torch.nn.BCEWithLogitsLoss(weight=torch.tensor([1.0, 2.0]), pos_weight=torch.tensor([3.0, 0.5]))
    ours = nn_loss.BCEWithLogitsLoss(weight=nbprop.ones(2), pos_weight=nbprop.ones(2))
    ours.load_state_dict(theirs.state_dict())
    assert_close(ours.pos_weight, np.array([3.0, 0.5], np.float32))
    logits, target = np.array([[0.3, -2.0], [1.5, 0.1]]), np.array([[1.0, 0.0], [0.5, 1.0]])
    assert_close(ours(nbprop.tensor(logits, dtype=nbprop.float32), nbprop.tensor(target, dtype=nbprop.float32)),
                 theirs(torch.tensor(logits, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)).numpy())
    ours.double()
    assert ours.weight.dtype == np.float64 and ours.pos_weight.dtype == np.float64
    assert_close(ours(nbprop.tensor(logits), nbprop.tensor(target)),
                 theirs.double()(torch.tensor(logits), torch.tensor(target)).numpy())
    assert list(nn_loss.CrossEntropyLoss().state_dict()) == []
    assert nn_loss.CrossEntropyLoss().weight is None


def test_constructor_arguments_and_legacy_flags():
    module = nn_loss.CrossEntropyLoss(ignore_index=3, label_smoothing=0.2, reduction="sum")
    assert (module.ignore_index, module.label_smoothing, module.reduction) == (3, 0.2, "sum")
    assert nn_loss.SmoothL1Loss(beta=0.3).beta == 0.3 and nn_loss.HuberLoss(delta=2.0).delta == 2.0
    assert nn_loss.KLDivLoss(log_target=True).log_target
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert nn_loss.MSELoss(reduce=False).reduction == "none"
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nn_loss.NLLLoss(size_average=False).reduction == "sum"
    with pytest.raises(ValueError, match="L1Loss|l1_loss"):
        nn_loss.L1Loss(reduction="average")(nbprop.zeros(2), nbprop.zeros(2))


def test_module_losses_train_a_classifier():
    # A two-class linear classifier trained by hand on separable points reaches a small cross-entropy.
    rng = np.random.default_rng(3)
    points = rng.standard_normal((64, 2))
    labels = nbprop.tensor((points[:, 0] + points[:, 1] > 0).astype(np.int64))
    weight = leaf(np.zeros((2, 2)))
    criterion = nn_loss.CrossEntropyLoss()
    for _ in range(100):
        value = criterion(nbprop.tensor(points) @ weight, labels)
        weight.grad = None
        value.backward()
        with nbprop.no_grad():
            weight -= weight.grad * 2.0
    assert value.item() < 0.15
