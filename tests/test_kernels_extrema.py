"""The extreme-value kernels called directly, serial and parallel variants, on (outer, reduced, inner) arrays."""

import numpy as np
import pytest
from test_kernels_reduce import VARIANTS, _data

from nbprop.kernels import extrema


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(2, 5, 1), (3, 4, 130), (1, 70_000, 1), (4, 1, 3)])
def test_max_min_with_indices_take_the_first_tie_and_nan(variant, shape):
    x = np.round(_data(shape))  # many ties
    x.reshape(-1)[::17] = np.nan if shape[1] > 1 else 0.0
    kernel = getattr(extrema.extreme_with_indices, variant)
    for largest, numpy_values, numpy_indices in [(True, np.max, np.argmax), (False, np.min, np.argmin)]:
        values = np.empty((shape[0], shape[2]))
        indices = np.empty((shape[0], shape[2]), np.int64)
        kernel(x, largest, values, indices)
        np.testing.assert_array_equal(values, numpy_values(x, axis=1))  # NaN equals NaN here
        np.testing.assert_array_equal(indices, numpy_indices(x, axis=1))


@pytest.mark.parametrize("variant", VARIANTS)
def test_index_backward_writes_the_gradient_at_the_index(variant):
    grad_output = _data((3, 4))
    indices = np.array([[0, 2, 1, 2], [1, 1, 0, 0], [2, 0, 2, 1]], np.int64)
    grad_input = np.full((3, 3, 4), np.nan)
    getattr(extrema.index_backward, variant)(grad_output, indices, grad_input)
    expected = np.zeros((3, 3, 4))
    for o in range(3):
        for i in range(4):
            expected[o, indices[o, i], i] = grad_output[o, i]
    np.testing.assert_array_equal(grad_input, expected)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("reduced", [1, 2, 31, 32, 33, 47, 64, 1000])
def test_amax_amin_of_runs_in_lanes_against_numpy(variant, dtype, reduced):
    """inner == 1 keeps 16 running extremes and combines them: every lane and the tail must count."""
    rng = np.random.default_rng(reduced)
    x = (rng.standard_normal((5, reduced, 1)) * 100).astype(dtype)
    if dtype != np.int64:
        x[1, rng.integers(reduced), 0] = np.inf
        x[2, rng.integers(reduced), 0] = -np.inf
        x[3, reduced - 1, 0] = np.nan  # in the tail (or the only element)
        x[4, rng.integers(reduced), 0] = np.nan
    for kernel, reference in [(extrema.amax_chunks, np.max), (extrema.amin_chunks, np.min)]:
        out = np.empty((5, 1, 1), dtype)
        getattr(kernel, variant)(x, reduced, out)
        np.testing.assert_array_equal(out[:, 0, 0], reference(x[:, :, 0], axis=1))
