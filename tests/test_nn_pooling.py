"""Pooling, upsampling and Dropout2d layers: PyTorch's constructors, attributes, reprs and (empty) state dicts;
outputs, indices and input gradients equal to PyTorch's layers' on batched and unbatched inputs; train/eval."""

import numpy as np
import pytest
from helpers import leaf

import nbprop
from nbprop import nn

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}

# (class name, constructor arguments, keyword arguments, input shape)
CASES = [
    ("MaxPool1d", (3,), {}, (2, 3, 10)),
    ("MaxPool1d", (3, 2, 1), {"dilation": 2, "ceil_mode": True}, (3, 7)),
    ("MaxPool1d", (2,), {"return_indices": True}, (2, 2, 5)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", ((3, 2),), {"stride": (2, 1), "padding": 1, "ceil_mode": True, "return_indices": True},
     (3, 5, 4)),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, (2, 3, 9)),
    ("AvgPool1d", (2,), {"ceil_mode": True}, (3, 5)),
    ("AvgPool2d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, (2, 2, 7, 5)),
    ("AvgPool2d", (2,), {"divisor_override": 3}, (2, 4, 4)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (2, 2, 7, 5)),
    ("AdaptiveAvgPool2d", (1,), {}, (3, 4, 4)),
    ("AdaptiveMaxPool1d", (3,), {"return_indices": True}, (2, 7)),
    ("AdaptiveMaxPool2d", ((2, 3),), {}, (2, 2, 5, 7)),
    ("AdaptiveMaxPool2d", (4,), {"return_indices": True}, (1, 2, 5, 6)),
    ("Upsample", (), {"scale_factor": 2}, (2, 3, 4, 5)),
    ("Upsample", (), {"size": (5, 3), "mode": "bilinear", "align_corners": True}, (1, 2, 3, 4)),
    ("Upsample", (), {"scale_factor": 1.5, "mode": "linear"}, (2, 2, 5)),
    ("Upsample", (), {"scale_factor": (2, 0.5), "mode": "bilinear", "recompute_scale_factor": True}, (1, 1, 3, 6)),
]


def _ids(case):
    name, arguments, keywords, shape = case
    return f"{name}{arguments}{keywords}{shape}".replace(" ", "")


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES, ids=[_ids(case) for case in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_matches_torch(case, dtype):
    import torch

    name, arguments, keywords, shape = case
    theirs, ours = getattr(torch.nn, name)(*arguments, **keywords), getattr(nn, name)(*arguments, **keywords)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict() == {} and len(theirs.state_dict()) == 0 and list(ours.parameters()) == []
    values = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x, theirs_x = leaf(values, dtype), torch.tensor(values, requires_grad=True)
    result, theirs_result = ours(x), theirs(theirs_x)
    if keywords.get("return_indices"):
        np.testing.assert_array_equal(result[1].numpy(), theirs_result[1].numpy())
        result, theirs_result = result[0], theirs_result[0]
    np.testing.assert_allclose(result.detach().numpy(), theirs_result.detach().numpy(), **TOLERANCE[dtype])
    gradient = np.random.default_rng(1).standard_normal(result.shape).astype(dtype)
    result.backward(nbprop.tensor(gradient))
    theirs_result.backward(torch.tensor(gradient))
    np.testing.assert_allclose(x.grad.numpy(), theirs_x.grad.numpy(), **TOLERANCE[dtype])


@pytest.mark.torch
def test_attributes_are_pytorchs():
    import torch

    for name, arguments, keywords in [("MaxPool2d", (3,), {}), ("MaxPool1d", (2, 1), {}), ("AvgPool1d", (3,), {}),
                                      ("AvgPool2d", ((2, 3),), {"divisor_override": 2}),
                                      ("AdaptiveMaxPool2d", ((2, None),), {"return_indices": True}),
                                      ("Upsample", (), {"scale_factor": (2, 3)}), ("Upsample", (), {"size": 4}),
                                      ("Dropout2d", (0.2,), {"inplace": True})]:
        ours, theirs = getattr(nn, name)(*arguments, **keywords), getattr(torch.nn, name)(*arguments, **keywords)
        for attribute in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices",
                          "count_include_pad", "divisor_override", "output_size", "size", "scale_factor", "mode",
                          "align_corners", "recompute_scale_factor", "p", "inplace"):
            if hasattr(theirs, attribute):
                assert getattr(ours, attribute) == getattr(theirs, attribute), (name, attribute)


@pytest.mark.torch
def test_a_pooling_stack_matches_torch_in_a_sequential():
    import torch

    def stack(library):
        return library.nn.Sequential(
            library.nn.MaxPool2d(2, ceil_mode=True), library.nn.Upsample(scale_factor=3, mode="bilinear"),
            library.nn.Dropout2d(0.3), library.nn.AvgPool2d(3, 2, 1), library.nn.AdaptiveAvgPool2d(2),
        )

    ours, theirs = stack(nbprop).eval(), stack(torch).eval()
    assert repr(ours) == repr(theirs)
    values = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    x, theirs_x = leaf(values), torch.tensor(values, requires_grad=True)
    result, theirs_result = ours(x), theirs(theirs_x)
    np.testing.assert_allclose(result.detach().numpy(), theirs_result.detach().numpy(), **TOLERANCE[np.float64])
    result.sum().backward()
    theirs_result.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), theirs_x.grad.numpy(), **TOLERANCE[np.float64])


def test_dropout2d_layer_drops_channels_in_training_only():
    layer = nn.Dropout2d(0.5)
    x = nbprop.tensor(np.ones((16, 8, 2, 3)))
    nbprop.manual_seed(0)
    out = layer(x).numpy()
    per_channel = out.reshape(16, 8, -1)
    assert set(np.unique(per_channel)) == {0.0, 2.0}
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # a whole channel is kept or dropped
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout2d(1.5)
