"""Convolution modules: PyTorch's constructors, parameter shapes, state dicts, reprs and initialisation; after
load_state_dict of PyTorch's weights, equal outputs and gradients in every padding mode; a PyTorch CNN's
weights give its outputs; transposed output_size; gradcheck; errors."""

import math

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch

import nbprop
from nbprop import nn

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}

# (class name, positional arguments, keyword arguments, input shape)
CASES = [
    ("Conv1d", (3, 4, 3), {}, (2, 3, 7)),
    ("Conv1d", (4, 6, 2), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": False}, (2, 4, 9)),
    ("Conv1d", (3, 3, 4), {"padding": "same", "groups": 3, "padding_mode": "reflect"}, (3, 8)),
    ("Conv1d", (2, 4, 3), {"padding": 2, "padding_mode": "circular"}, (1, 2, 5)),
    ("Conv2d", (3, 4, 3), {}, (2, 3, 6, 5)),
    ("Conv2d", (3, 6, (3, 2)), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 3},
     (2, 3, 7, 6)),
    ("Conv2d", (4, 4, 3), {"padding": "same", "padding_mode": "replicate"}, (1, 4, 5, 4)),
    ("Conv2d", (2, 3, (2, 4)), {"padding": "same", "padding_mode": "reflect", "dilation": (2, 1)}, (2, 2, 6, 7)),
    ("Conv2d", (2, 3, 3), {"padding": (1, 2), "padding_mode": "circular"}, (2, 2, 4, 5)),
    ("Conv2d", (3, 2, 2), {"padding": "valid", "bias": False}, (3, 4, 4)),
    ("Conv2d", (8, 16, 1), {}, (2, 8, 3, 3)),
    ("ConvTranspose1d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 3, 5)),
    ("ConvTranspose2d", (4, 6, (3, 2)), {"stride": (2, 3), "groups": 2, "dilation": (1, 2), "bias": False},
     (2, 4, 3, 4)),
    ("ConvTranspose2d", (3, 3, 3), {"groups": 3, "padding": 1}, (3, 4, 4)),
]


def _ids(case):
    name, arguments, keywords, shape = case
    return f"{name}{arguments}{keywords}{shape}".replace(" ", "")


def _randomize(torch, module, seed):
    """Random weights, so that loading them into nbprop is a real check."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype) - 0.5)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", CASES, ids=[_ids(case) for case in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_matches_torch(case, dtype):
    import torch

    name, arguments, keywords, shape = case
    theirs = getattr(torch.nn, name)(*arguments, **keywords, dtype=torch.float64 if dtype == np.float64 else None)
    _randomize(torch, theirs, 0)
    ours = getattr(nn, name)(*arguments, **keywords, dtype=dtype)
    assert repr(ours) == repr(theirs)
    assert [(key, tuple(value.shape)) for key, value in ours.state_dict().items()] == \
        [(key, tuple(value.shape)) for key, value in theirs.state_dict().items()]
    ours.load_state_dict(theirs.state_dict())
    our_input = leaf(np.random.default_rng(1).standard_normal(shape), dtype)
    their_input = to_torch(our_input)
    result, expected = ours(our_input), theirs(their_input)
    grad_output = np.random.default_rng(2).standard_normal(result.shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    assert result.dtype == dtype
    assert_close(result, expected, **TOLERANCE[dtype])
    assert_close(our_input.grad, their_input.grad, **TOLERANCE[dtype])
    for (_, parameter), (_, their_parameter) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(parameter.grad, their_parameter.grad, **TOLERANCE[dtype])


@pytest.mark.parametrize("case", CASES[:4] + CASES[11:], ids=[_ids(case) for case in CASES[:4] + CASES[11:]])
def test_gradcheck(case):
    name, arguments, keywords, shape = case
    module = getattr(nn, name)(*arguments, **keywords, dtype=nbprop.float64)
    parameters = list(module.parameters())

    def function(x, *weights):
        return module(x)

    assert nbprop.gradcheck(function, (leaf(np.random.default_rng(3).standard_normal(shape)), *parameters))


@pytest.mark.parametrize("name, arguments, weight_shape, fan_in", [
    ("Conv1d", (4, 6, 3), (6, 4, 3), 12),
    ("Conv2d", (6, 8, (3, 2), 1, 0, 1, 2), (8, 3, 3, 2), 18),
    ("ConvTranspose2d", (6, 8, 3, 1, 0, 0, 2), (6, 4, 3, 3), 36),
])
def test_initialisation(name, arguments, weight_shape, fan_in):
    """PyTorch's reset_parameters: weight and bias uniform within 1/sqrt(fan_in), fan_in = weight.shape[1] * the
    kernel's size, and a fresh draw per layer."""
    nbprop.manual_seed(0)
    layer = getattr(nn, name)(*arguments)
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.shape == weight_shape and layer.bias.shape == (layer.out_channels,)
    for parameter in (layer.weight, layer.bias):
        values = parameter.detach().numpy()
        assert parameter.requires_grad and parameter.dtype == np.float32
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.7 * bound
    assert not np.array_equal(getattr(nn, name)(*arguments).weight.detach().numpy(), layer.weight.detach().numpy())


@pytest.mark.torch
def test_torch_cnn_state_dict_gives_its_outputs():
    import torch

    def build(module):
        return module.Sequential(
            module.Conv2d(1, 8, 3, padding=1), module.ReLU(),
            module.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"), module.ReLU(),
            module.Conv2d(8, 16, 1), module.ReLU(),
            module.Conv2d(16, 8, 3, stride=2), module.ReLU(),
            module.ConvTranspose2d(8, 4, 3, stride=2, output_padding=1), module.ReLU(),
            module.Flatten(), module.Linear(4 * 10 * 10, 10),
        )

    torch.manual_seed(0)
    theirs = build(torch.nn)
    ours = build(nn)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(4).standard_normal((5, 1, 10, 10)).astype(np.float32)
    our_input, their_input = nbprop.tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_(True)
    result, expected = ours(our_input), theirs(their_input)
    assert_close(result, expected, **TOLERANCE[np.float32])
    result.sum().backward()
    expected.sum().backward()
    assert_close(our_input.grad, their_input.grad, **TOLERANCE[np.float32])
    for (name, parameter), (their_name, their_parameter) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == their_name
        assert_close(parameter.grad, their_parameter.grad, **TOLERANCE[np.float32])


@pytest.mark.torch
@pytest.mark.parametrize("output_size", [(10, 13), [2, 4, 9, 15], (10, 14)])
def test_transposed_output_size(output_size):
    import torch

    theirs = torch.nn.ConvTranspose2d(4, 3, 3, stride=(2, 3), padding=1, dtype=torch.float64)
    ours = nn.ConvTranspose2d(4, 3, 3, stride=(2, 3), padding=1, dtype=nbprop.float64)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(5).standard_normal((2, 4, 5, 5))
    result = ours(nbprop.tensor(x), output_size=output_size)
    assert result.shape[2:] == tuple(output_size[-2:])
    assert_close(result, theirs(torch.from_numpy(x), output_size=output_size), **TOLERANCE[np.float64])
    unbatched = ours(nbprop.tensor(x[0]), output_size=output_size[-2:])
    assert_close(unbatched, result.detach().numpy()[0], **TOLERANCE[np.float64])


@pytest.mark.parametrize("call, pattern", [
    (lambda: nn.Conv2d(4, 6, 3, groups=3), "in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(6, 4, 3, groups=3), "out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(6, 6, 3, groups=0), "groups must be a positive integer"),
    (lambda: nn.Conv1d(2, 2, 3, padding="full"), "invalid padding string 'full'"),
    (lambda: nn.Conv2d(2, 2, 3, padding="same", stride=2), "padding='same' is not supported for strided"),
    (lambda: nn.Conv2d(2, 2, 3, padding_mode="mirror"), "padding_mode must be one of"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), 'only "zeros" padding mode is supported'),
    (lambda: nn.ConvTranspose2d(2, 2, 3, stride=2)(nbprop.zeros(1, 2, 4, 4), output_size=(11, 11)),
     r"requested an output size of \[11, 11\], but valid sizes range from \[9, 9\] to \[10, 10\]"),
    (lambda: nn.ConvTranspose1d(2, 2, 3)(nbprop.zeros(1, 2, 4), output_size=(1, 2, 3, 4)),
     "output_size must have 1 or 3 elements"),
])
def test_constructor_and_forward_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("call, pattern", [
    (lambda: nn.Conv2d(3, 4, 3)(nbprop.zeros(1, 4, 5, 5)), r"expected input\[1, 4, 5, 5\] to have 3 channels"),
    (lambda: nn.Conv2d(3, 4, 3)(nbprop.zeros(3, 2, 2)), r"padded input size per channel: \(2 x 2\)"),
    (lambda: nn.Conv1d(3, 4, 3)(nbprop.zeros(1, 1, 3, 5)), r"expected 2D \(unbatched\) or 3D \(batched\) input"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1)(nbprop.zeros(1, 3, 5, 5)), "negative padding"),
])
def test_forward_errors_name_the_shapes(call, pattern):
    with pytest.raises(RuntimeError, match=pattern):
        call()
