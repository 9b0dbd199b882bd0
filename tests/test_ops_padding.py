"""Padding: pad in constant, reflect, replicate and circular modes against PyTorch and NumPy, errors, determinism."""

import math

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf
from hypothesis import given
from hypothesis import strategies as st
from test_ops_movement import FEW, _gradients_like_torch, _random

import nbprop
from nbprop.backend import DEVICES
from nbprop.kernels._jit import PARALLEL_THRESHOLD
from nbprop.nn.functional import pad

PAD_CASES = [((2, 3, 5), (1, 2)), ((2, 3, 5), (-1, 3)), ((2, 3, 5), (2, -2)), ((1, 2, 4, 5), (1, 2, 3, 0)),
             ((3, 4, 5), (2, 1, -1, 2)), ((1, 1, 3, 4, 5), (1, 2, 1, 0, 2, 1)), ((2, 3, 4, 5), (0, 1, 2, 1, 1, 1)),
             ((2, 5), (3, 4)), ((0, 2, 5), (2, 1))]


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, padding", PAD_CASES)
def test_pad_forward_and_backward_match_torch(mode, shape, padding):
    import torch
    from torch.nn import functional

    try:
        functional.pad(torch.zeros(shape), padding, mode=mode)
    except (RuntimeError, NotImplementedError) as error:
        with pytest.raises(type(error)):
            pad(nbprop.zeros(*shape), padding, mode)
        return
    _gradients_like_torch(lambda t: pad(t, padding, mode),
                          lambda t: functional.pad(t, padding, mode=mode), _random(shape))


@FEW
@given(data=st.data())
def test_pad_forward_matches_numpy(data):
    count = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=count + 1, max_size=count + 2)))
    array = data.draw(arrays(shape))
    padded = shape[len(shape) - count:]
    padding = []
    for size in reversed(padded):
        padding += [data.draw(st.integers(0, size - 1)), data.draw(st.integers(0, size - 1))]
    widths = [(0, 0)] * (len(shape) - count) + [(padding[2 * i], padding[2 * i + 1]) for i in reversed(range(count))]
    x = nbprop.tensor(array)
    for mode, numpy_mode in [("constant", "constant"), ("reflect", "reflect"), ("replicate", "edge"),
                             ("circular", "wrap")]:
        assert_close(pad(x, padding, mode), np.pad(array, widths, mode=numpy_mode))
    assert_close(pad(x, padding, value=-2.5), np.pad(array, widths, constant_values=-2.5))


def test_pad_constant_gradcheck():
    assert nbprop.gradcheck(lambda t: pad(t, (1, 2, -1, 1), value=3.0), [leaf(_random((4, 3)))])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_gradcheck(mode):
    x = leaf(_random((2, 3, 4)))
    assert nbprop.gradcheck(lambda t: pad(t, (3, 2, 1, 2), mode), [x])
    assert nbprop.gradcheck(lambda t: pad(t, (-1, 2), mode), [x])


@pytest.mark.parametrize("arguments, error, message", [
    (((2, 3, 5), (1,), "constant"), RuntimeError, "pad: padding length must be divisible by 2"),
    (((2, 3), (1, 1, 1, 1, 1, 1), "constant"), RuntimeError, "padding length should be less than or equal"),
    (((2, 3), (-2, -2), "constant"), RuntimeError, "resulted in a negative output size for dimension 1"),
    (((5,), (1, 1), "reflect"), NotImplementedError, "pad: padding size 2 is not supported for 1D input"),
    (((2, 3, 5), (5, 0), "reflect"), RuntimeError, r"should be less than the corresponding input dimension.*\(5, 0\)"),
    (((2, 3, 5), (6, 0), "circular"), RuntimeError, "wrapping around more than once"),
    (((2, 3, 5), (-3, -2), "replicate"), RuntimeError, "too small"),
    (((1, 0, 5), (1, 1), "reflect"), RuntimeError, r"non-zero dimensions, but got \[1, 0, 5\]"),
    (((2, 3, 5), (1, 1), "wrap"), NotImplementedError, "unrecognised padding mode 'wrap'"),
])
def test_pad_errors(arguments, error, message):
    shape, padding, mode = arguments
    with pytest.raises(error, match=message):
        pad(nbprop.zeros(*shape), padding, mode)
    with pytest.raises(RuntimeError, match='padding mode "replicate" doesn\'t take in value argument'):
        pad(nbprop.zeros(2, 3), (1, 1), "replicate", value=1.0)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_pad_backward_is_deterministic_above_the_parallel_threshold(mode):
    shape = (8, 3, 64, 64)
    assert math.prod(shape) > PARALLEL_THRESHOLD
    array = _random(shape, dtype=np.float32)
    grad_output = _random((8, 3, 69, 76), seed=3, dtype=np.float32)

    def gradient():
        x = nbprop.tensor(array, requires_grad=True)
        result = pad(x, (5, 7, 3, 2), mode)
        result.backward(nbprop.tensor(grad_output))
        return result.detach().numpy(), x.grad.numpy()

    first, second = gradient(), gradient()
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    # Against the adjoint written as a scatter-add in float64 over NumPy's padding of the positions.
    positions = np.arange(64 * 64).reshape(64, 64)
    padded = np.pad(positions, ((3, 2), (5, 7)), mode="reflect" if mode == "reflect" else "wrap")
    expected = np.zeros((24, 64 * 64))
    np.add.at(expected, (slice(None), padded.reshape(-1)), grad_output.reshape(24, -1).astype(np.float64))
    assert_close(first[1], expected.reshape(shape).astype(np.float32))
    # The serial and the parallel variants of the backward kernel give the same bits.
    device = DEVICES["cpu"]
    inverses = []
    for index_map, size in [(np.zeros(1, np.int64), 1), (padded[:, 0] // 64, 64), (padded[0] % 64, 64)]:
        offsets, order = np.empty(size + 1, np.int64), np.empty(len(index_map), np.int64)
        device.call("pad_inverse_map", np.ascontiguousarray(index_map), offsets, order)
        inverses += [offsets, order]
    kernel = device.kernel("pad_gather_backward")
    serial, parallel = np.empty((24, 1, 64, 64), np.float32), np.empty((24, 1, 64, 64), np.float32)
    kernel.serial(grad_output.reshape(24, 1, 69, 76), *inverses, serial)
    kernel.parallel(grad_output.reshape(24, 1, 69, 76), *inverses, parallel)
    assert np.array_equal(serial, parallel) and np.array_equal(serial.reshape(shape), first[1])
