"""Normalisation modules: PyTorch's constructors, state dicts and reprs; after load_state_dict of PyTorch's
weights, equal outputs, input and parameter gradients and running statistics over several training steps
and in eval mode; gradcheck; errors."""

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch

import nbprop
from nbprop.nn import norm as nn

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}

# (class name, constructor arguments, input shape)
CASES = [
    ("BatchNorm1d", (3,), {}, (6, 3)),
    ("BatchNorm1d", (3,), {"momentum": None}, (4, 3, 5)),
    ("BatchNorm1d", (3,), {"affine": False}, (4, 3, 5)),
    ("BatchNorm1d", (3,), {"track_running_stats": False}, (5, 3)),
    ("BatchNorm2d", (4,), {}, (3, 4, 5, 2)),
    ("BatchNorm2d", (4,), {"eps": 1e-3, "momentum": 0.3, "bias": False}, (2, 4, 3, 3)),
    ("BatchNorm2d", (4,), {"momentum": None, "track_running_stats": False, "affine": False}, (2, 4, 3, 3)),
    ("LayerNorm", (5,), {}, (3, 5)),
    ("LayerNorm", ((3, 4),), {"eps": 1e-3}, (2, 3, 4)),
    ("LayerNorm", ([4],), {"bias": False}, (2, 3, 4)),
    ("LayerNorm", (4,), {"elementwise_affine": False}, (2, 3, 4)),
    ("RMSNorm", (5,), {}, (3, 5)),
    ("RMSNorm", ((3, 4),), {"eps": 1e-4}, (2, 3, 4)),
    ("RMSNorm", (4,), {"elementwise_affine": False}, (2, 3, 4)),
    ("GroupNorm", (2, 4), {}, (3, 4, 5)),
    ("GroupNorm", (3, 6), {"eps": 1e-3}, (2, 6, 2, 3)),
    ("GroupNorm", (1, 4), {"affine": False}, (2, 4)),
    ("GroupNorm", (4, 4), {"bias": False}, (2, 4, 3)),
]


def _ids(case):
    name, arguments, keywords, shape = case
    return f"{name}{arguments}{keywords}{shape}".replace(" ", "")


def _randomize(torch, module, seed):
    """Random weights (and running statistics), so that loading them into nbprop is a real check."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if tensor.dtype.is_floating_point:
                values = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype)
                tensor.copy_(values + 0.5 if name in ("weight", "running_var") else values - 0.5)


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES, ids=[_ids(case) for case in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_matches_torch(case, dtype):
    import torch

    name, arguments, keywords, shape = case
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = getattr(torch.nn, name)(*arguments, **keywords, dtype=torch_dtype)
    _randomize(torch, theirs, 0)
    ours = getattr(nn, name)(*arguments, **keywords, dtype=dtype)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    rng = np.random.default_rng(1)
    for mode in ("train", "train", "train", "eval", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x = rng.standard_normal(shape) * 2 + rng.standard_normal()
        our_input, grad_output = leaf(x, dtype), rng.standard_normal(shape).astype(dtype)
        their_input = to_torch(our_input)
        ours.zero_grad()
        theirs.zero_grad()
        result, expected = ours(our_input), theirs(their_input)
        result.backward(nbprop.tensor(grad_output))
        expected.backward(torch.from_numpy(grad_output))
        assert result.dtype == dtype
        assert_close(result, expected, **TOLERANCE[dtype])
        assert_close(our_input.grad, their_input.grad, **TOLERANCE[dtype])
        for (_, parameter), (_, their_parameter) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(parameter.grad, their_parameter.grad, **TOLERANCE[dtype])
        for key, value in theirs.state_dict().items():
            assert_close(ours.state_dict()[key], value.numpy(), **TOLERANCE[dtype])


@pytest.mark.parametrize("case", CASES, ids=[_ids(case) for case in CASES])
def test_gradcheck(case):
    name, arguments, keywords, shape = case
    module = getattr(nn, name)(*arguments, **keywords, dtype=nbprop.float64)
    parameters = list(module.parameters())
    with nbprop.no_grad():
        for index, parameter in enumerate(parameters):
            parameter.copy_(nbprop.tensor(np.linspace(0.5, 1.5 + index, parameter.numel()).reshape(parameter.shape)))
    x = leaf(np.random.default_rng(2).standard_normal(shape))
    for mode in ("train", "eval"):
        getattr(module, mode)()

        def function(u, *weights):
            return module(u)

        assert nbprop.gradcheck(function, (x, *parameters))


def test_batch_norm_running_statistics_and_counter():
    module = nn.BatchNorm1d(2, momentum=None)
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]], np.float32)
    for step in range(1, 4):
        module(nbprop.tensor(x * step))
        assert module.num_batches_tracked.item() == step
    # momentum=None: the cumulative average of the three batches' statistics.
    assert_close(module.running_mean, (x * 1 + x * 2 + x * 3).mean(0) / 3)
    assert_close(module.running_var, sum((x * step).var(0, ddof=1) for step in (1, 2, 3)) / 3)
    module.eval()
    before = module.running_mean.numpy().copy()
    module(nbprop.tensor(x))
    assert np.array_equal(module.running_mean.numpy(), before) and module.num_batches_tracked.item() == 3
    module.reset_running_stats()
    assert module.running_mean.tolist() == [0.0, 0.0] and module.running_var.tolist() == [1.0, 1.0]
    assert module.num_batches_tracked.item() == 0


def test_state_dict_layout():
    module = nn.BatchNorm2d(3)
    state = module.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert state["num_batches_tracked"].dtype == np.int64 and state["num_batches_tracked"].shape == ()
    assert state["running_var"].dtype == np.float32 and state["running_var"].tolist() == [1.0, 1.0, 1.0]
    assert [name for name, _ in module.named_parameters()] == ["weight", "bias"]
    assert list(nn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()) == []
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    assert list(nn.RMSNorm(4).state_dict()) == ["weight"]
    assert list(nn.GroupNorm(2, 4).state_dict()) == ["weight", "bias"]
    assert nn.LayerNorm([2, 3]).weight.shape == (2, 3)


def test_batch_norm_without_running_statistics_uses_the_batch_in_eval():
    module = nn.BatchNorm1d(2, track_running_stats=False, affine=False).eval()
    x = np.array([[1.0, 2.0], [3.0, 8.0]], np.float32)
    assert_close(module(nbprop.tensor(x)), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5))


def test_errors():
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(nbprop.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(nbprop.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels \(dimension 1\) but got input of shape "
                                         r"\(2, 4, 1, 1\)"):
        nn.BatchNorm2d(3)(nbprop.zeros(2, 4, 1, 1))
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups \(2\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"BatchNorm1d: num_features must be a non-negative integer, got 2.5"):
        nn.BatchNorm1d(2.5)
    with pytest.raises(RuntimeError, match=r"LayerNorm: device 'cuda' is not available"):
        nn.LayerNorm(3, device="cuda")
    with pytest.raises(TypeError, match=r"normalisation layers need a floating point dtype, got int64"):
        nn.RMSNorm(3, dtype=nbprop.int64)
    with pytest.raises(RuntimeError, match=r"layer_norm: Given normalized_shape=\[3\]"):
        nn.LayerNorm(3)(nbprop.zeros(2, 4))
