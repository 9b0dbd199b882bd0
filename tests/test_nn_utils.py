"""nn.utils gradient clipping: norms and clipped gradients equal torch.nn.utils', NumPy's, deterministic."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.kernels._jit import PARALLEL_THRESHOLD
from nbprop.nn.utils import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm

SHAPES = [(3, 4), (5,), (), (2, 0), (7, 3)]
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-6}


def _parameters(arrays, with_grad=None):
    """nbprop parameters holding `arrays` as gradients (None in with_grad: no gradient)."""
    parameters = []
    for index, array in enumerate(arrays):
        parameter = nbprop.tensor(np.zeros(array.shape, array.dtype), requires_grad=True)
        if with_grad is None or with_grad[index]:
            parameter.grad = nbprop.tensor(array.copy())
        parameters.append(parameter)
    return parameters


def _torch_parameters(arrays, with_grad=None):
    import torch

    parameters = []
    for index, array in enumerate(arrays):
        parameter = torch.zeros(array.shape, dtype=torch.from_numpy(array).dtype, requires_grad=True)
        if with_grad is None or with_grad[index]:
            parameter.grad = torch.from_numpy(array.copy())
        parameters.append(parameter)
    return parameters


def _gradients(arrays, rng, dtype):
    return [rng.standard_normal(shape).astype(dtype) for shape in arrays]


def _assert_same(parameters, torch_parameters, dtype):
    for parameter, torch_parameter in zip(parameters, torch_parameters, strict=True):
        if torch_parameter.grad is None:
            assert parameter.grad is None
            continue
        np.testing.assert_allclose(parameter.grad.numpy(), torch_parameter.grad.numpy(), rtol=TOLERANCE[dtype],
                                   atol=0, equal_nan=True)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [1, 2.0, 3.5, math.inf, 0.0, -1.5, -math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_equals_torch(dtype, norm_type, max_norm):
    import torch

    rng = np.random.default_rng(0)
    shapes = SHAPES if norm_type >= 0 and norm_type != math.inf else [s for s in SHAPES if math.prod(s)]
    arrays = _gradients(shapes, rng, dtype)
    with_grad = [True] * len(arrays)
    with_grad[1] = False  # parameters without a gradient are skipped
    parameters, torch_parameters = _parameters(arrays, with_grad), _torch_parameters(arrays, with_grad)
    norm = clip_grad_norm_(parameters, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(torch_parameters, max_norm, norm_type)
    assert norm.dtype == dtype and norm.shape == ()
    np.testing.assert_allclose(norm.item(), expected.item(), rtol=TOLERANCE[dtype], atol=0)
    _assert_same(parameters, torch_parameters, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
def test_non_finite_gradients_like_torch(dtype, bad, norm_type):
    import torch

    rng = np.random.default_rng(1)
    arrays = _gradients([(4, 3), (6,)], rng, dtype)
    arrays[1][2] = bad
    parameters, torch_parameters = _parameters(arrays), _torch_parameters(arrays)
    with pytest.raises(RuntimeError, match=r"The total norm of order .* is non-finite, so it cannot be clipped"):
        clip_grad_norm_(parameters, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(torch_parameters, 1.0, norm_type, error_if_nonfinite=True)
    _assert_same(parameters, torch_parameters, dtype)  # nothing was clipped by the failed calls
    norm = clip_grad_norm_(parameters, 1.0, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(torch_parameters, 1.0, norm_type)
    np.testing.assert_equal(norm.item(), expected.item())
    _assert_same(parameters, torch_parameters, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_gradients_and_edge_cases_like_torch(dtype):
    import torch

    arrays = [np.zeros((3, 2), dtype), np.zeros(4, dtype)]
    parameters, torch_parameters = _parameters(arrays), _torch_parameters(arrays)
    for norm_type in (2.0, 1.0, math.inf, 0.0):
        norm = clip_grad_norm_(parameters, 1.0, norm_type, error_if_nonfinite=True)
        expected = torch.nn.utils.clip_grad_norm_(torch_parameters, 1.0, norm_type)
        assert norm.item() == expected.item() == 0.0
    _assert_same(parameters, torch_parameters, dtype)
    assert clip_grad_norm_([], 1.0).item() == torch.nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((parameter for parameter in []), 1.0)
    ramp = [np.arange(5, dtype=dtype)]
    single, torch_single = _parameters(ramp)[0], _torch_parameters(ramp)[0]
    np.testing.assert_allclose(clip_grad_norm_(single, 2.0).item(),
                               torch.nn.utils.clip_grad_norm_(torch_single, 2.0).item(), rtol=TOLERANCE[dtype])
    _assert_same([single], [torch_single], dtype)


@pytest.mark.torch
def test_mixed_dtypes_and_non_contiguous_gradients_like_torch():
    import torch

    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((5, 4)), rng.standard_normal(7).astype(np.float32)]
    parameters, torch_parameters = _parameters(arrays), _torch_parameters(arrays)
    transposed = np.asfortranarray(rng.standard_normal((3, 6)))
    parameters.append(nbprop.tensor(np.zeros((3, 6)), requires_grad=True))
    parameters[-1].grad = nbprop.Tensor._make(transposed.copy(order="F"), None, "cpu")
    torch_parameters.append(torch.zeros((3, 6), dtype=torch.float64, requires_grad=True))
    torch_parameters[-1].grad = torch.from_numpy(transposed.copy())
    version = parameters[0].grad._version
    norm = clip_grad_norm_(parameters, 0.3)
    expected = torch.nn.utils.clip_grad_norm_(torch_parameters, 0.3)
    assert norm.dtype == np.float64
    np.testing.assert_allclose(norm.item(), expected.item(), rtol=1e-6)
    for parameter, torch_parameter in zip(parameters, torch_parameters, strict=True):
        np.testing.assert_allclose(parameter.grad.numpy(), torch_parameter.grad.numpy(), rtol=1e-6)
    assert parameters[0].grad._version == version + 1


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_get_total_norm_and_clip_grads_with_norm_equal_torch(norm_type):
    import torch

    rng = np.random.default_rng(3)
    arrays = _gradients(SHAPES[:3], rng, np.float64)
    tensors = [nbprop.tensor(array) for array in arrays]
    expected = torch.nn.utils.get_total_norm([torch.from_numpy(array) for array in arrays], norm_type)
    norm = get_total_norm(tensors, norm_type)
    np.testing.assert_allclose(norm.item(), expected.item(), rtol=1e-12)
    parameters, torch_parameters = _parameters(arrays), _torch_parameters(arrays)
    clip_grads_with_norm_(parameters, 0.7, norm)
    torch.nn.utils.clip_grads_with_norm_(torch_parameters, 0.7, expected)
    _assert_same(parameters, torch_parameters, np.float64)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clip_value", [0.5, 0.1, 3, -0.2])
def test_clip_grad_value_equals_torch(dtype, clip_value):
    import torch

    rng = np.random.default_rng(4)
    arrays = _gradients(SHAPES, rng, dtype)
    arrays[0][1, 2] = math.nan
    arrays[4][0, 0] = -math.inf
    with_grad = [True, True, False, True, True]
    parameters, torch_parameters = _parameters(arrays, with_grad), _torch_parameters(arrays, with_grad)
    assert clip_grad_value_(parameters, clip_value) is None
    torch.nn.utils.clip_grad_value_(torch_parameters, clip_value)
    for parameter, torch_parameter in zip(parameters, torch_parameters, strict=True):
        if torch_parameter.grad is not None:
            np.testing.assert_array_equal(parameter.grad.numpy(), torch_parameter.grad.numpy())


def test_large_gradients_parallel_deterministic_and_equal_numpy():
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(PARALLEL_THRESHOLD + 12345), rng.standard_normal((300, 70)), rng.standard_normal(3)]
    everything = np.concatenate([array.reshape(-1) for array in arrays])
    for norm_type, expected in [(2.0, np.linalg.norm(everything)), (1.0, np.abs(everything).sum()),
                                (3.5, (np.abs(everything) ** 3.5).sum() ** (1 / 3.5))]:
        first, second = _parameters(arrays), _parameters(arrays)
        norm = clip_grad_norm_(first, 1.0, norm_type)
        assert norm.item() == clip_grad_norm_(second, 1.0, norm_type).item()
        np.testing.assert_allclose(norm.item(), expected, rtol=1e-12)
        for one, other, array in zip(first, second, arrays, strict=True):
            np.testing.assert_array_equal(one.grad.numpy(), other.grad.numpy())
            np.testing.assert_allclose(one.grad.numpy(), array * (1.0 / (expected + 1e-6)), rtol=1e-12)
    clipped = _parameters(arrays)
    clip_grad_value_(clipped, 0.5)
    for parameter, array in zip(clipped, arrays, strict=True):
        np.testing.assert_array_equal(parameter.grad.numpy(), np.clip(array, -0.5, 0.5))


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e-310])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5])
def test_norm_stable_at_extreme_magnitudes(scale, norm_type):
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal((4, 5)), rng.standard_normal(9)]
    everything = np.concatenate([array.reshape(-1) for array in arrays])
    expected = (np.abs(everything) ** norm_type).sum() ** (1 / norm_type) * scale
    norm = get_total_norm([nbprop.tensor(array * scale) for array in arrays], norm_type)
    rtol = 1e-12 if scale > 1e-300 else 1e-9  # subnormal inputs carry fewer significant bits
    np.testing.assert_allclose(norm.item(), expected, rtol=rtol)


@given(st.lists(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), min_size=1, max_size=4),
       st.sampled_from([1.0, 2.0, 3.0, math.inf]), st.sampled_from([np.float64, np.float32]),
       st.floats(0.01, 10.0))
def test_norm_and_clipping_equal_numpy(shapes, norm_type, dtype, max_norm):
    rng = np.random.default_rng(len(shapes))
    arrays = _gradients(shapes, rng, dtype)
    everything = np.concatenate([array.reshape(-1).astype(np.float64) for array in arrays])
    if norm_type == math.inf and any(array.size == 0 for array in arrays):
        with pytest.raises(RuntimeError, match="empty gradient"):
            clip_grad_norm_(_parameters(arrays), max_norm, norm_type)
        return
    expected = np.linalg.norm(everything, norm_type) if everything.size else 0.0
    parameters = _parameters(arrays)
    norm = clip_grad_norm_(parameters, max_norm, norm_type)
    np.testing.assert_allclose(norm.item(), expected, rtol=TOLERANCE[dtype])
    coefficient = min(1.0, max_norm / (expected + 1e-6))
    for parameter, array in zip(parameters, arrays, strict=True):
        np.testing.assert_allclose(parameter.grad.numpy(), array * coefficient, rtol=TOLERANCE[dtype], atol=0)


def test_bad_inputs_raise_clear_errors():
    module = nbprop.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="model.parameters"):
        clip_grad_norm_(module, 1.0)
    with pytest.raises(TypeError, match="element 1 is a ndarray"):
        clip_grad_norm_([nbprop.tensor([1.0]), np.ones(2)], 1.0)
    with pytest.raises(TypeError, match="Tensor or an iterable"):
        clip_grad_value_(3.0, 1.0)
    with pytest.raises(TypeError, match="foreach"):
        clip_grad_norm_([], 1.0, foreach="yes")
    with pytest.raises(TypeError, match="floating point"):
        get_total_norm([nbprop.tensor([1, 2])])
    parameters = _parameters([np.ones(3), np.zeros(0)])
    with pytest.raises(RuntimeError, match="cannot compute the inf norm of an empty gradient"):
        clip_grad_norm_(parameters, 1.0, math.inf)
