"""scaled_dot_product_attention: fused kernels against PyTorch, gradcheck, memory, errors, the opaque device."""

import tracemalloc

import numpy as np
import opaque_device
import pytest

import nbprop
import nbprop.nn.functional as F
from nbprop.backend import DEVICES


@pytest.fixture
def torch():
    """PyTorch, the oracle (tests that take it are marked `torch`)."""
    import torch

    return torch


TOLERANCES = {np.float64: 1e-10, np.float32: 1e-5}

# (query shape, key shape, value shape, keyword arguments, mask: None, "bool", "float" or "padding")
CASES = {
    "plain": ((2, 3, 10, 8), (2, 3, 7, 8), (2, 3, 7, 5), {}, None),
    "causal": ((2, 3, 10, 8), (2, 3, 12, 8), (2, 3, 12, 5), {"is_causal": True}, None),
    "causal-longer-queries": ((1, 2, 9, 4), (1, 2, 5, 4), (1, 2, 5, 4), {"is_causal": True}, None),
    "bool-mask": ((2, 3, 10, 8), (2, 3, 7, 8), (2, 3, 7, 5), {}, "bool"),
    "float-mask-scale": ((2, 3, 10, 8), (2, 3, 7, 8), (2, 3, 7, 5), {"scale": 0.3}, "float"),
    "padding-mask-tiles": ((2, 3, 150, 8), (2, 3, 290, 8), (2, 3, 290, 6), {}, "padding"),
    "gqa-causal": ((2, 4, 70, 8), (2, 2, 140, 8), (2, 2, 140, 5), {"enable_gqa": True, "is_causal": True}, None),
    "three-dims": ((3, 10, 8), (3, 7, 8), (3, 7, 8), {}, None),
}


def _arrays(case, dtype, seed=0):
    query_shape, key_shape, value_shape, options, mask_kind = CASES[case]
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in (query_shape, key_shape, value_shape)]
    length, keys = query_shape[-2], key_shape[-2]
    mask = None
    if mask_kind == "bool":
        mask = rng.random((length, keys)) > 0.3
        mask[3] = False  # a row with every key masked: output and gradients 0, as in PyTorch
    elif mask_kind == "float":
        mask = rng.standard_normal((query_shape[0], 1, length, keys)).astype(dtype)
        mask[0, 0, 2, 1:4] = -np.inf
    elif mask_kind == "padding":
        mask = np.where(rng.random((query_shape[0], 1, 1, keys)) < 0.2, -np.inf, 0.0).astype(dtype)
    grad_output = rng.standard_normal(query_shape[:-1] + value_shape[-1:]).astype(dtype)
    return arrays, mask, options, grad_output


def _nbprop_attention(arrays, mask, options, grad_output):
    leaves = [nbprop.tensor(array, requires_grad=True) for array in arrays]
    out = F.scaled_dot_product_attention(*leaves, attn_mask=None if mask is None else nbprop.tensor(mask), **options)
    out.backward(nbprop.tensor(grad_output))
    return [out.detach().numpy()] + [leaf.grad.numpy() for leaf in leaves]


def _torch_attention(torch, arrays, mask, options, grad_output):
    leaves = [torch.tensor(array, requires_grad=True) for array in arrays]
    out = torch.nn.functional.scaled_dot_product_attention(
        *leaves, attn_mask=None if mask is None else torch.tensor(mask), **options)
    out.backward(torch.tensor(grad_output))
    return [out.detach().numpy()] + [leaf.grad.numpy() for leaf in leaves]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_outputs_and_gradients_equal_torch(torch, case, dtype):
    arrays, mask, options, grad_output = _arrays(case, dtype)
    ours = _nbprop_attention(arrays, mask, options, grad_output)
    theirs = _torch_attention(torch, arrays, mask, options, grad_output)
    for name, actual, expected in zip(("output", "query", "key", "value"), ours, theirs):
        assert actual.dtype == dtype
        np.testing.assert_allclose(actual, expected, rtol=TOLERANCES[dtype], atol=TOLERANCES[dtype], err_msg=name)


def test_fully_masked_row_gives_zero_output_and_gradient():
    arrays, mask, options, grad_output = _arrays("bool-mask", np.float64)
    out, grad_query, _, _ = _nbprop_attention(arrays, mask, options, grad_output)
    assert not np.isnan(out).any() and (out[:, :, 3] == 0).all() and (grad_query[:, :, 3] == 0).all()


def test_serial_and_threaded_kernels_agree_bit_for_bit(monkeypatch):
    arrays, mask, options, grad_output = _arrays("gqa-causal", np.float32)
    serial = _nbprop_attention(arrays, mask, options, grad_output)
    monkeypatch.setattr("nbprop.kernels._jit.PARALLEL_THRESHOLD", 1)
    kernel = DEVICES["cpu"].kernel("attention_forward")
    assert kernel.for_size(10) is kernel.parallel
    threaded = _nbprop_attention(arrays, mask, options, grad_output)
    for first, second in zip(serial, threaded):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("case", ["causal", "bool-mask", "gqa-causal"])
def test_gradcheck_and_gradgradcheck(case):
    rng = np.random.default_rng(1)
    query_shape, key_shape, value_shape, options, mask_kind = CASES[case]
    shapes = [(1,) + query_shape[1:2] + (4, 3), (1,) + key_shape[1:2] + (5, 3), (1,) + value_shape[1:2] + (5, 2)]
    inputs = [nbprop.tensor(rng.standard_normal(shape), requires_grad=True) for shape in shapes]
    mask = None
    if mask_kind == "bool":
        mask_array = rng.random((4, 5)) > 0.4
        mask_array[1] = False
        mask_array[:, 0] = True
        mask = nbprop.tensor(mask_array)

    def attention(query, key, value):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, **options)

    assert nbprop.gradcheck(attention, inputs)
    assert nbprop.gradgradcheck(attention, inputs)


@pytest.mark.torch
def test_second_derivatives_equal_torch(torch):
    arrays, mask, options, grad_output = _arrays("gqa-causal", np.float64)
    arrays = [array[:1, :, :6] for array in arrays]
    direction = np.random.default_rng(2).standard_normal(arrays[0].shape)

    def second(library, leaves, out_grad):
        out = library.nn.functional.scaled_dot_product_attention(*leaves, **options)
        grads = library.autograd.grad((out * out_grad).sum(), leaves, create_graph=True)
        return library.autograd.grad((grads[0] * library.tensor(direction)).sum() + (grads[1] ** 2).sum(), leaves)

    ours = second(nbprop, [nbprop.tensor(array, requires_grad=True) for array in arrays],
                  nbprop.tensor(grad_output[:1, :, :6]))
    theirs = second(torch, [torch.tensor(array, requires_grad=True) for array in arrays],
                    torch.tensor(grad_output[:1, :, :6]))
    for actual, expected in zip(ours, theirs):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_dropout_path_draws_from_nbprop_generator():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 2, 6, 4)) for _ in range(3)]
    leaves = [nbprop.tensor(array, requires_grad=True) for array in arrays]
    nbprop.manual_seed(5)
    first = F.scaled_dot_product_attention(*leaves, dropout_p=0.5)
    nbprop.manual_seed(5)
    second = F.scaled_dot_product_attention(*leaves, dropout_p=0.5)
    plain = F.scaled_dot_product_attention(*leaves)
    np.testing.assert_array_equal(first.detach().numpy(), second.detach().numpy())
    assert not np.allclose(first.detach().numpy(), plain.detach().numpy())
    first.sum().backward()
    assert all(np.isfinite(leaf.grad.numpy()).all() for leaf in leaves)


def test_long_sequence_does_not_allocate_the_attention_matrix():
    # seq 4096, head dim 16, float64: the (4096, 4096) matrix alone would be 134 MB. The kernels' own scratch is
    # per-thread tiles (Numba's allocator, invisible to tracemalloc), bounded by the tile sizes.
    length, width = 4096, 16
    rng = np.random.default_rng(4)
    leaves = [nbprop.tensor(rng.standard_normal((1, 1, length, width)), requires_grad=True) for _ in range(3)]
    # Once before measuring: the threaded kernels of this length compile here (a compile allocates in Python), and
    # the leaves get their .grad, which the measured backward then adds to in place.
    F.scaled_dot_product_attention(*leaves, is_causal=True).sum().backward()
    tracemalloc.start()
    out = F.scaled_dot_product_attention(*leaves, is_causal=True)
    out.sum().backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < length * length * 8 / 40, peak  # under 3.4 MB: inputs, output, gradients and logsumexp
    assert np.isfinite(leaves[0].grad.numpy()).all()


def _error(match, query_shape=(1, 2, 4, 3), key_shape=(1, 2, 5, 3), value_shape=(1, 2, 5, 3), **options):
    tensors = [nbprop.zeros(*shape, dtype="float64") for shape in (query_shape, key_shape, value_shape)]
    with pytest.raises((RuntimeError, ValueError, TypeError), match=match):
        F.scaled_dot_product_attention(*tensors, **options)


def test_bad_inputs_get_clear_errors():
    _error("same embedding size", key_shape=(1, 2, 5, 4))
    _error("key and value must agree", value_shape=(1, 2, 6, 3))
    _error("same batch and head", key_shape=(1, 1, 5, 3), value_shape=(1, 1, 5, 3))
    _error("multiple of the number of key/value heads", query_shape=(1, 3, 4, 3), enable_gqa=True)
    _error(r"attn_mask of shape \(4, 4\) cannot be broadcast", attn_mask=nbprop.ones(4, 4, dtype="bool"))
    _error("should not be set when is_causal", attn_mask=nbprop.ones(4, 5, dtype="bool"), is_causal=True)
    _error("attn_mask dtype", attn_mask=nbprop.zeros(4, 5, dtype="float32"))
    _error("dropout_p must be between 0 and 1", dropout_p=1.5)
    with pytest.raises(RuntimeError, match="floating-point"):
        F.scaled_dot_product_attention(*(nbprop.zeros(1, 4, 3, dtype="int64") for _ in range(3)))


def test_same_bits_on_the_opaque_device():
    opaque_device.install()
    arrays, mask, options, _ = _arrays("gqa-causal", np.float64)
    opaque_device.assert_same_on_opaque(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **options), *arrays)
    arrays, mask, options, _ = _arrays("padding-mask-tiles", np.float32)
    arrays = [array[:1, :, :70] for array in arrays]
    opaque_device.assert_same_on_opaque(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), *arrays, mask[:1, :, :, :70],
        grads=[True, True, True, False])
