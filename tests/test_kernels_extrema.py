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
@pytest.mark.parametrize("reduced", [1, 2, 31, 32, 33, 47, 64, 127, 128, 129, 255, 256, 257, 1000, 4099])
def test_amax_amin_of_runs_in_lanes_against_numpy(variant, dtype, reduced):
    """inner == 1 keeps 128 bytes of running extremes, four groups a pass, folds them pairwise, then the tail:
    every lane, group and tail element must count (runs below two passes are compared one by one)."""
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape, chunk", [((1, 2048, 300), 2048), ((3, 500, 7), 500), ((1, 130, 2), 130),
                                          ((1, 63, 5), 63), ((2, 1000, 40), 300), ((20, 90, 3), 90)])
def test_amax_amin_over_rows_in_parts_against_numpy(dtype, shape, chunk):
    """inner > 1 reads whole rows; few outputs cut the rows into parts whose extremes are folded in order:
    the serial and parallel variants agree bit for bit, with NaN and infinities anywhere."""
    rng = np.random.default_rng(shape[1])
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    if dtype != np.int64:
        x[0, rng.integers(shape[1]), 0] = np.inf
        x[0, rng.integers(shape[1]), 1] = -np.inf
        x[-1, shape[1] - 1, -1] = np.nan  # the last row of the last part
        x[0, rng.integers(shape[1]), shape[2] // 2] = np.nan
    chunks = -(-shape[1] // chunk)
    for kernel, reference in [(extrema.amax_chunks, np.max), (extrema.amin_chunks, np.min)]:
        results = []
        for variant in VARIANTS:
            out = np.empty((shape[0], chunks, shape[2]), dtype)
            getattr(kernel, variant)(x, chunk, out)
            results.append(out)
        np.testing.assert_array_equal(results[0], results[1])
        for index in range(chunks):
            expected = reference(x[:, index * chunk:(index + 1) * chunk], axis=1)
            np.testing.assert_array_equal(results[0][:, index], expected)
