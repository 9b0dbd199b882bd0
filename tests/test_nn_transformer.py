"""MultiheadAttention and the Transformer layers: PyTorch's state dicts load and give its outputs and gradients."""

import math

import numpy as np
import opaque_device
import pytest

import nbprop
from nbprop import nn

TOLERANCES = {np.float64: 1e-10, np.float32: 1e-5}
TORCH_DTYPES = {np.float64: "float64", np.float32: "float32"}


@pytest.fixture
def torch():
    """PyTorch, the oracle (tests that take it are marked `torch`)."""
    import torch

    return torch


def _load_from(layer, torch_layer):
    """torch_layer's state dict loaded into `layer`, after checking the keys and shapes are the same."""
    state = torch_layer.state_dict()
    assert list(layer.state_dict()) == list(state)
    layer.load_state_dict({name: nbprop.tensor(value.detach().numpy()) for name, value in state.items()})
    for name, value in layer.state_dict().items():
        assert tuple(value.shape) == tuple(state[name].shape), name


def _compare(torch, make_pair, inputs, masks, dtype, call=lambda layer, inputs, masks: layer(*inputs, **masks)):
    """Run the two layers on the same inputs and masks, backward through sum(out * g); compare the outputs, the
    input gradients and every parameter gradient."""
    torch.manual_seed(0)
    ours, theirs = make_pair()
    _load_from(ours, theirs)
    our_inputs = [nbprop.tensor(array, requires_grad=True) for array in inputs]
    their_inputs = [torch.tensor(array, requires_grad=True) for array in inputs]
    our_out = call(ours, our_inputs, {name: nbprop.tensor(mask) for name, mask in masks.items()})
    their_out = call(theirs, their_inputs, {name: torch.tensor(mask) for name, mask in masks.items()})
    our_out, their_out = (out[0] if isinstance(out, tuple) else out for out in (our_out, their_out))
    gradient = np.random.default_rng(9).standard_normal(tuple(their_out.shape)).astype(dtype)
    (our_out * nbprop.tensor(gradient)).sum().backward()
    (their_out * torch.tensor(gradient)).sum().backward()
    tolerance = TOLERANCES[dtype]
    np.testing.assert_allclose(our_out.detach().numpy(), their_out.detach().numpy(), rtol=tolerance, atol=tolerance)
    for index, (mine, reference) in enumerate(zip(our_inputs, their_inputs)):
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=tolerance, atol=tolerance,
                                   err_msg=f"input {index}")
    their_parameters = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.numpy(), their_parameters[name].grad.numpy(), rtol=tolerance,
                                   atol=tolerance, err_msg=name)


def _masks(rng, kind, batch, length, keys, dtype, prefix=""):
    """No mask, a bool attention mask with a fully masked row, an additive one, or a key padding mask."""
    if kind == "bool":
        mask = rng.random((length, keys)) < 0.3
        mask[:, 0] = False
        return {f"{prefix}attn_mask" if prefix else "attn_mask": mask}
    if kind == "float":
        return {"attn_mask": rng.standard_normal((length, keys)).astype(dtype)}
    if kind == "padding":
        padding = rng.random((batch, keys)) < 0.3
        padding[:, 0] = False
        return {"key_padding_mask": padding}
    return {}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize(("batch_first", "dims", "mask"), [
    (False, {}, None), (True, {}, "bool"), (False, {"kdim": 6, "vdim": 5}, "float"), (True, {"kdim": 6}, "padding"),
])
def test_multihead_attention_equals_torch(torch, dtype, need_weights, batch_first, dims, mask):
    rng = np.random.default_rng(1)
    length, keys, batch, embed = 5, 7, 3, 8
    kdim, vdim = dims.get("kdim", embed), dims.get("vdim", embed)

    def shape(sequence, width):
        return (batch, sequence, width) if batch_first else (sequence, batch, width)

    inputs = [rng.standard_normal(shape(length, embed)).astype(dtype), rng.standard_normal(shape(keys, kdim)).astype(
        dtype), rng.standard_normal(shape(keys, vdim)).astype(dtype)]
    masks = _masks(rng, mask, batch, length, keys, dtype)

    def make_pair():
        return (nn.MultiheadAttention(embed, 2, batch_first=batch_first, dtype=TORCH_DTYPES[dtype], **dims),
                torch.nn.MultiheadAttention(embed, 2, batch_first=batch_first,
                                            dtype=getattr(torch, TORCH_DTYPES[dtype]), **dims))

    def call(layer, tensors, layer_masks):
        out, weights = layer(*tensors, need_weights=need_weights, **layer_masks)
        return out if weights is None else out + weights.sum() * 0.5  # the weights' gradients are checked too

    _compare(torch, make_pair, inputs, masks, dtype, call)


@pytest.mark.torch
def test_multihead_attention_self_attention_weights_per_head_and_unbatched(torch):
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    ours, theirs = nn.MultiheadAttention(8, 4, dtype="float64"), torch.nn.MultiheadAttention(8, 4, dtype=torch.float64)
    _load_from(ours, theirs)
    x = rng.standard_normal((6, 8))  # unbatched (L, E)
    causal = np.triu(np.ones((6, 6), bool), 1)
    our_out, our_weights = ours(*(nbprop.tensor(x),) * 3, attn_mask=nbprop.tensor(causal), average_attn_weights=False)
    their_out, their_weights = theirs(*(torch.tensor(x),) * 3, attn_mask=torch.tensor(causal),
                                      average_attn_weights=False)
    np.testing.assert_allclose(our_out.detach().numpy(), their_out.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(our_weights.detach().numpy(), their_weights.detach().numpy(), rtol=1e-10, atol=1e-12)
    hinted, _ = ours(*(nbprop.tensor(x[:, None]),) * 3, attn_mask=nbprop.tensor(causal), need_weights=False,
                     is_causal=True)
    np.testing.assert_allclose(hinted.detach().numpy()[:, 0], their_out.detach().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("norm_first", "activation", "bias", "mask"), [
    (False, "relu", True, None), (True, "gelu", True, "causal"), (False, "gelu", False, "padding"),
    (True, "callable", True, "bool"),
])
def test_encoder_equals_torch(torch, dtype, norm_first, activation, bias, mask):
    rng = np.random.default_rng(3)
    length, batch, d_model = 6, 2, 8
    inputs = [rng.standard_normal((batch, length, d_model)).astype(dtype)]
    masks = {}
    if mask == "causal":
        masks = {"mask": np.triu(np.full((length, length), -np.inf), 1).astype(dtype)}
    elif mask == "padding":
        masks = {"src_key_padding_mask": _masks(rng, "padding", batch, length, length, dtype)["key_padding_mask"]}
    elif mask == "bool":
        masks = {"mask": _masks(rng, "bool", batch, length, length, dtype)["attn_mask"]}

    def make_pair():
        layers = []
        for library in (nbprop, torch):
            act = activation if activation != "callable" else library.nn.functional.silu
            layer = library.nn.TransformerEncoderLayer(d_model, 2, dim_feedforward=16, dropout=0.0, activation=act,
                                                       batch_first=True, norm_first=norm_first, bias=bias,
                                                       dtype=getattr(library, TORCH_DTYPES[dtype]))
            norm = library.nn.LayerNorm(d_model, dtype=getattr(library, TORCH_DTYPES[dtype]))
            layers.append(library.nn.TransformerEncoder(layer, 2, norm=norm, enable_nested_tensor=False))
        return layers

    _compare(torch, make_pair, inputs, masks, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("norm_first", "activation", "masks"), [
    (False, "relu", ()), (True, "gelu", ("tgt_mask", "memory_key_padding_mask")),
    (False, "gelu", ("tgt_key_padding_mask", "memory_mask")),
])
def test_decoder_equals_torch(torch, dtype, norm_first, activation, masks):
    rng = np.random.default_rng(4)
    length, memory_length, batch, d_model = 5, 7, 2, 8
    inputs = [rng.standard_normal((length, batch, d_model)).astype(dtype),
              rng.standard_normal((memory_length, batch, d_model)).astype(dtype)]
    available = {
        "tgt_mask": np.triu(np.ones((length, length), bool), 1),
        "memory_mask": rng.standard_normal((length, memory_length)).astype(dtype),
        "tgt_key_padding_mask": _masks(rng, "padding", batch, length, length, dtype)["key_padding_mask"],
        "memory_key_padding_mask": _masks(rng, "padding", batch, length, memory_length, dtype)["key_padding_mask"],
    }

    def make_pair():
        layers = []
        for library in (nbprop, torch):
            layer = library.nn.TransformerDecoderLayer(d_model, 2, dim_feedforward=16, dropout=0.0,
                                                       activation=activation, norm_first=norm_first,
                                                       dtype=getattr(library, TORCH_DTYPES[dtype]))
            layers.append(library.nn.TransformerDecoder(layer, 2))
        return layers

    _compare(torch, make_pair, inputs, {name: available[name] for name in masks}, dtype)


def test_bad_arguments_get_clear_errors():
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    attention = nn.MultiheadAttention(8, 2)
    x = nbprop.zeros(5, 3, 8)
    with pytest.raises(AssertionError, match="expecting embedding dimension of 8"):
        attention(nbprop.zeros(5, 3, 6), x, x)
    with pytest.raises(AssertionError, match="expected key"):
        attention(x, nbprop.zeros(5, 3, 4), nbprop.zeros(5, 3, 4))
    with pytest.raises(RuntimeError, match=r"2D attn_mask is \(5, 4\), but should be \(5, 5\)"):
        attention(x, x, x, attn_mask=nbprop.zeros(5, 4, dtype="bool"))
    with pytest.raises(RuntimeError, match=r"3D attn_mask is \(3, 5, 5\), but should be \(6, 5, 5\)"):
        attention(x, x, x, attn_mask=nbprop.zeros(3, 5, 5))
    with pytest.raises(RuntimeError, match=r"key_padding_mask must have shape \(3, 5\)"):
        attention(x, x, x, key_padding_mask=nbprop.zeros(5, 3, dtype="bool"))
    with pytest.raises(RuntimeError, match="need attn_mask if specifying the is_causal hint"):
        attention(x, x, x, is_causal=True)


def test_positional_encodings():
    sinusoidal = nn.SinusoidalPositionalEncoding(6, max_len=10, dtype="float64")
    assert list(sinusoidal.state_dict()) == []  # the table is computed, not trained or saved
    x = nbprop.zeros(4, 2, 6, dtype="float64")
    out = sinusoidal(x).numpy()
    position, index = 3, 2  # PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i + 1] = cos(...)
    assert math.isclose(out[position, 1, 2 * index], math.sin(position / 10000 ** (2 * index / 6)), rel_tol=1e-12)
    assert math.isclose(out[position, 0, 2 * index + 1], math.cos(position / 10000 ** (2 * index / 6)), rel_tol=1e-12)
    learned = nn.LearnedPositionalEncoding(10, 6, batch_first=True, dtype="float64")
    y = learned(nbprop.ones(2, 4, 6, dtype="float64"))
    y.sum().backward()
    grad = learned.weight.grad.numpy()
    assert (grad[:4] == 2).all() and (grad[4:] == 0).all()
    with pytest.raises(ValueError, match="longer than max_len=10"):
        learned(nbprop.zeros(1, 11, 6, dtype="float64"))


def test_encoder_layer_same_bits_on_the_opaque_device():
    opaque_device.install()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 8)).astype(np.float32)
    results = []
    for device in ("cpu", "opaque"):
        nbprop.manual_seed(0)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True).to(device)
        inputs = nbprop.tensor(x, device=device, requires_grad=True)
        padding = nbprop.tensor(np.array([[False] * 6, [False] * 4 + [True] * 2]), device=device)
        out = layer(inputs, src_key_padding_mask=padding)
        out.sum().backward()
        results.append([out.detach().cpu().numpy(), inputs.grad.cpu().numpy()]
                       + [parameter.grad.cpu().numpy() for parameter in layer.parameters()])
    for cpu_result, opaque_result in zip(*results):
        np.testing.assert_array_equal(cpu_result, opaque_result)
