"""The reduction kernels called directly, serial and parallel variants, on (outer, reduced, inner) arrays."""

import warnings

import numpy as np
import pytest

from nbprop.kernels import extrema, reduce

# Inner widths around the column block, reduced lengths around the chunk: every boundary of the loops.
SHAPES = [(1, 7, 1), (3, 5, 1), (2, 4, 127), (1, 3, reduce.BLOCK), (2, 6, reduce.BLOCK + 1), (3, 1, 300),
          (1, 70_000, 1), (2, 0, 3), (0, 4, 2)]
VARIANTS = ["serial", "parallel"]


def _data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _chunked(kernel, x, chunk, dtype):
    out = np.empty((x.shape[0], max(-(-x.shape[1] // chunk), 1), x.shape[2]), dtype)
    kernel(x, chunk, out)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name, numpy_function", [("sum", np.sum), ("prod", np.prod), ("amax", np.max),
                                                  ("amin", np.min)])
def test_chunk_kernels_match_numpy(variant, shape, name, numpy_function):
    kernel = getattr(getattr(extrema if name in ("amax", "amin") else reduce, f"{name}_chunks"), variant)
    x = _data(shape)
    if name in ("amax", "amin") and shape[1] == 0:
        return  # needs a non-empty reduced axis (the frontend raises first)
    if name == "prod":
        x = 1.0 + 0.001 * x  # a product of 70,000 factors that stays finite
    accumulator = np.float64
    for chunk in (max(shape[1], 1), 3, 1000):
        out = _chunked(kernel, x, chunk, accumulator)
        if name == "sum":
            partial = out.sum(1)
        elif name == "prod":
            partial = out.prod(1)
        else:
            partial = numpy_function(out, axis=1)
        np.testing.assert_allclose(partial, numpy_function(x, axis=1), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_and_int64_accumulate_wide(variant):
    kernel = reduce.sum_chunks.parallel if variant == "parallel" else reduce.sum_chunks.serial
    x = np.full((1, 1 << 17, 1), 0.1, np.float32)
    out = _chunked(kernel, x, x.shape[1], np.float64)
    assert out[0, 0, 0] == x.astype(np.float64).sum()  # float64 accumulator: every addition exact here
    integers = np.array([2**53, 1, 1], np.int64).reshape(1, 3, 1)
    assert _chunked(kernel, integers, 3, np.int64)[0, 0, 0] == 2**53 + 2


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(2, 5, 1), (3, 4, 130), (1, 70_000, 1), (2, 1, 3), (2, 0, 2)])
def test_variance_kernel(variant, shape):
    x = _data(shape) + 1e6  # a large offset: E[x^2] - E[x]^2 would lose every digit
    mean = np.empty((shape[0], shape[2]))
    out = np.empty((shape[0], shape[2]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's mean of an empty slice
        for correction in (0.0, 1.0, 2.5):
            getattr(reduce.variance, variant)(x, correction, mean, out)
            ssd = ((x - x.mean(1, keepdims=True)) ** 2).sum(1)
            np.testing.assert_allclose(out, ssd / max(0.0, shape[1] - correction), rtol=1e-9)
            np.testing.assert_allclose(mean, x.mean(1), rtol=1e-15)
    constant = np.full((2, 9, 3), 0.1)
    constant_mean, constant_out = np.empty((2, 3)), np.empty((2, 3))
    getattr(reduce.variance, variant)(constant, 1.0, constant_mean, constant_out)
    assert (constant_out == 0).all() and (constant_mean == 0.1).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_prod_backward_zeros(variant):
    x = np.array([[2.0, 3.0, 4.0], [2.0, 0.0, 4.0], [0.0, 3.0, 0.0]]).reshape(3, 3, 1)
    result = x.prod(1)
    grad_output = np.array([[1.0], [2.0], [3.0]])
    grad_input = np.empty_like(x)
    getattr(reduce.prod_backward, variant)(grad_output, x, result, grad_input)
    expected = np.array([[12.0, 8.0, 6.0], [0.0, 16.0, 0.0], [0.0, 0.0, 0.0]]).reshape(3, 3, 1)
    np.testing.assert_array_equal(grad_input, expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_divide_into_casts(variant):
    accumulator = np.array([3.0, 1.0, 2.0**30 + 1])
    out = np.empty(3, np.float32)
    getattr(reduce.divide_into, variant)(accumulator, 2.0, out)
    np.testing.assert_array_equal(out, (accumulator / 2.0).astype(np.float32))


def test_parallel_reduction_is_deterministic():
    x = _data((3, 40_000, 1), seed=3, dtype=np.float32)
    wide = _data((1, 600, 300), seed=4)
    for kernel in (reduce.sum_chunks, reduce.prod_chunks, extrema.amax_chunks):
        first = _chunked(kernel.parallel, x, 1000, np.float64 if kernel is not extrema.amax_chunks else np.float32)
        second = _chunked(kernel.parallel, x, 1000, first.dtype)
        np.testing.assert_array_equal(first, second)
        first = _chunked(kernel.parallel, wide, 600, np.float64)
        np.testing.assert_array_equal(first, _chunked(kernel.parallel, wide, 600, np.float64))
