"""Pooling, interpolation and dropout2d ops: values, indices and gradients equal to PyTorch's over hypothesis
sweeps of windows and sizes, ties, nan and -inf, gradcheck, PyTorch's errors, changed indices, the opaque
device, and the serial and threaded kernel variants giving the same bits."""

import warnings

import numpy as np
import pytest
from helpers import leaf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import nbprop
import nbprop.nn.functional as F
from nbprop.kernels import interpolate as interpolate_kernels
from nbprop.kernels import pool as kernels

TOLERANCE = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12), np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5)}
SWEEP = settings(max_examples=30)


def _values(shape, seed, dtype, ties=False):
    generator = np.random.default_rng(seed)
    if ties:  # few distinct values: windows with equal maxima, to check that the first one wins
        return generator.integers(-2, 3, shape).astype(dtype)
    return generator.standard_normal(shape).astype(dtype)


def _compare(function, torch_function, x, seed=0, spatial_dims=None):
    """function(nbprop input) and torch_function(torch input): same values, same indices, same input gradient
    for a random output gradient; or both raise (nbprop the same error class). Returns whether it ran."""
    import torch

    theirs_input = torch.tensor(x, requires_grad=True)
    try:
        theirs = torch_function(theirs_input)
    except (RuntimeError, ValueError) as error:
        with pytest.raises(type(error)):
            function(leaf(x, x.dtype))
        return False
    ours_input = leaf(x, x.dtype)
    ours = function(ours_input)
    indices = None
    if isinstance(theirs, tuple):
        indices = theirs[1].numpy()
        assert ours[1].dtype == np.int64
        np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())
        ours, theirs = ours[0], theirs[0]
    assert ours.shape == tuple(theirs.shape) and ours.dtype == x.dtype
    tolerance = TOLERANCE[x.dtype]
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), equal_nan=True, **tolerance)
    gradient = np.random.default_rng(seed + 1).standard_normal(ours.shape).astype(x.dtype)
    ours.backward(nbprop.tensor(gradient))
    if indices is not None and np.isfinite(x).all() and np.isneginf(ours.detach().numpy()).any():
        # Windows of padding only (dilation): PyTorch's index there lies outside the plane or in another window,
        # and its backward adds there (out of bounds); such an output depends on no input and sends nothing back.
        plane_size = int(np.prod(x.shape[x.ndim - spatial_dims:]))
        expected = np.zeros((x.size // plane_size, plane_size))
        kept = np.where(np.isneginf(ours.detach().numpy()), 0, gradient).reshape(expected.shape[0], -1)
        for plane, (positions, values) in enumerate(zip(indices.reshape(kept.shape), kept)):
            np.add.at(expected[plane], np.minimum(positions, plane_size - 1), values)
        np.testing.assert_allclose(ours_input.grad.numpy(), expected.reshape(x.shape), **tolerance)
        return True
    theirs.backward(torch.tensor(gradient))
    np.testing.assert_allclose(ours_input.grad.numpy(), theirs_input.grad.numpy(), equal_nan=True, **tolerance)
    return True


@st.composite
def window_cases(draw, dilation=True):
    """(spatial dims, input shape, kernel, stride, padding, dilation, ceil_mode, dtype, seed), a pad that may be
    over half the kernel, and sizes that may leave no output (PyTorch's errors are compared then)."""
    dims = draw(st.sampled_from([1, 2]))
    batched = draw(st.booleans())
    lead = ((draw(st.integers(1, 2)),) if batched else ()) + (draw(st.integers(1, 3)),)
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * dims)))
    padding = tuple(draw(st.integers(0, size // 2 + (1 if draw(st.integers(0, 9)) == 0 else 0))) for size in kernel)
    dilations = tuple(draw(st.integers(1, 2 if dilation else 1)) for _ in range(dims))
    return (dims, lead + spatial, kernel, stride, padding, dilations, draw(st.booleans()),
            draw(st.sampled_from([np.float64, np.float32])), draw(st.integers(0, 2**16)))


def _pool(dims, kind, library):
    return getattr(library, f"{kind}_pool{dims}d")


@pytest.mark.torch
@SWEEP
@given(case=window_cases(), ties=st.booleans())
def test_max_pool_matches_torch(case, ties):
    import torch.nn.functional as TF

    dims, shape, kernel, stride, padding, dilation, ceil_mode, dtype, seed = case
    x = _values(shape, seed, dtype, ties)
    arguments = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                     return_indices=True)
    _compare(lambda t: _pool(dims, "max", F)(t, **arguments), lambda t: _pool(dims, "max", TF)(t, **arguments), x,
             seed, dims)


@pytest.mark.torch
@SWEEP
@given(case=window_cases(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 3, -2]))
def test_avg_pool_matches_torch(case, count_include_pad, divisor_override):
    import torch.nn.functional as TF

    dims, shape, kernel, stride, padding, _, ceil_mode, dtype, seed = case
    x = _values(shape, seed, dtype)
    arguments = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                     count_include_pad=count_include_pad)
    if dims == 2:
        arguments["divisor_override"] = divisor_override
    _compare(lambda t: _pool(dims, "avg", F)(t, **arguments), lambda t: _pool(dims, "avg", TF)(t, **arguments), x,
             seed)


@pytest.mark.torch
@SWEEP
@given(dims=st.sampled_from([1, 2]), batched=st.booleans(), data=st.data(),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16), ties=st.booleans())
def test_adaptive_pools_match_torch(dims, batched, data, dtype, seed, ties):
    import torch.nn.functional as TF

    shape = ((2,) if batched else ()) + (2,) + tuple(data.draw(st.integers(1, 7)) for _ in range(dims))
    output_size = tuple(data.draw(st.one_of(st.integers(1, 9), st.none() if dims == 2 else st.integers(1, 3)))
                        for _ in range(dims))
    x = _values(shape, seed, dtype, ties)
    _compare(lambda t: _pool(dims, "adaptive_avg", F)(t, output_size),
             lambda t: _pool(dims, "adaptive_avg", TF)(t, output_size), x, seed)
    _compare(lambda t: _pool(dims, "adaptive_max", F)(t, output_size, True),
             lambda t: _pool(dims, "adaptive_max", TF)(t, output_size, True), x, seed)


@pytest.mark.torch
@SWEEP
@given(dims=st.sampled_from([1, 2]), data=st.data(), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**16))
def test_interpolate_matches_torch(dims, data, dtype, seed):
    import torch.nn.functional as TF

    shape = (data.draw(st.integers(1, 2)), 2) + tuple(data.draw(st.integers(1, 6)) for _ in range(dims))
    mode = data.draw(st.sampled_from(["nearest", "area", "linear" if dims == 1 else "bilinear"]))
    arguments = {"mode": mode}
    if mode not in ("nearest", "area"):
        arguments["align_corners"] = data.draw(st.sampled_from([None, False, True]))
    if data.draw(st.booleans()):
        arguments["size"] = tuple(data.draw(st.integers(1, 11)) for _ in range(dims))
    else:
        factors = st.sampled_from([0.5, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0, 1 / 3])
        arguments["scale_factor"] = tuple(data.draw(factors) for _ in range(dims))
        arguments["recompute_scale_factor"] = data.draw(st.sampled_from([None, True]))
        # PyTorch's area mode makes an empty output of a size rounded down to 0, then fails in backward.
        assume(mode != "area" or min(int(size * factor) for size, factor in zip(shape[2:], arguments["scale_factor"])))
    x = _values(shape, seed, dtype)
    _compare(lambda t: F.interpolate(t, **arguments), lambda t: TF.interpolate(t, **arguments), x, seed)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_inf_and_ties_pick_what_torch_picks(dtype):
    import torch.nn.functional as TF

    nan, inf = np.nan, np.inf
    x = np.array([[[1, 3, 3, nan, 2, nan, 1, -inf, -inf, -inf, inf, inf, 0]]], dtype)
    for stride in (1, 2):
        _compare(lambda t: F.max_pool1d(t, 3, stride, 1, return_indices=True),
                 lambda t: TF.max_pool1d(t, 3, stride, 1, return_indices=True), x)
        _compare(lambda t: F.max_pool1d(t, 2, stride, dilation=2, ceil_mode=True, return_indices=True),
                 lambda t: TF.max_pool1d(t, 2, stride, dilation=2, ceil_mode=True, return_indices=True), x)
    for size in (1, 2, 5):
        _compare(lambda t: F.adaptive_max_pool1d(t, size, True), lambda t: TF.adaptive_max_pool1d(t, size, True), x)
    planes = np.array([[[-inf, -inf], [-inf, -inf]], [[2, 2], [nan, 2]]], dtype)
    _compare(lambda t: F.max_pool2d(t, 2, 1, 1, return_indices=True),
             lambda t: TF.max_pool2d(t, 2, 1, 1, return_indices=True), planes)
    _compare(lambda t: F.avg_pool2d(t, 2, 1, 1), lambda t: TF.avg_pool2d(t, 2, 1, 1), planes)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_two_by_two_windows_pick_what_torch_picks(dtype):
    """2x2 windows wholly inside the plane take an unrolled path beside the clipped ones' loops: both pick
    PyTorch's values and indices among ties, nan and infinities."""
    import torch.nn.functional as TF

    x = np.random.default_rng(4).choice(np.array([1, 2, 2, np.nan, -np.inf, np.inf, 0], dtype), (3, 2, 6, 7))
    for stride, padding, ceil_mode in ((2, 0, False), (2, 0, True), (1, 0, False), (2, 1, False), (1, 1, True)):
        arguments = dict(kernel_size=2, stride=stride, padding=padding, ceil_mode=ceil_mode, return_indices=True)
        assert _compare(lambda t: F.max_pool2d(t, **arguments), lambda t: TF.max_pool2d(t, **arguments), x)


@pytest.mark.torch
def test_empty_batch_and_size_one_planes():
    import torch.nn.functional as TF

    for shape in [(0, 3, 4, 4), (1, 1, 1, 1)]:
        x = _values(shape, 0, np.float64)
        _compare(lambda t: F.max_pool2d(t, 1, return_indices=True),
                 lambda t: TF.max_pool2d(t, 1, return_indices=True), x)
        _compare(lambda t: F.avg_pool2d(t, 2, padding=1), lambda t: TF.avg_pool2d(t, 2, padding=1), x)
        _compare(lambda t: F.adaptive_avg_pool2d(t, 3), lambda t: TF.adaptive_avg_pool2d(t, 3), x)
        _compare(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"),
                 lambda t: TF.interpolate(t, scale_factor=2, mode="bilinear"), x)


# --------------------------------------------------------------------------------------------- gradcheck


def _distinct(shape, seed=0):
    """Values at least 0.1 apart, so that central differences never move a maximum to another element."""
    count = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(count).reshape(shape) * 0.1 + 0.05


@pytest.mark.parametrize("function", [
    lambda x: F.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), ceil_mode=True),
    lambda x: F.max_pool1d(x.flatten(1), 3, 2, 1),
    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda x: F.avg_pool1d(x.flatten(1), 2, 1, 1),
    lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
    lambda x: F.adaptive_max_pool2d(x, (2, 3)),
    lambda x: F.adaptive_avg_pool1d(x.flatten(1), 4),
    lambda x: F.adaptive_max_pool1d(x.flatten(1), 4),
    lambda x: F.interpolate(x, size=(4, 7), mode="bilinear", align_corners=True),
    lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
    lambda x: F.interpolate(x, scale_factor=(2, 0.5)),
    lambda x: F.interpolate(x.flatten(2), size=9, mode="linear"),
], ids=["max_pool2d", "max_pool1d", "avg_pool2d", "avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
        "adaptive_avg_pool1d", "adaptive_max_pool1d", "bilinear_aligned", "bilinear", "nearest", "linear"])
def test_gradcheck(function):
    assert nbprop.gradcheck(function, (leaf(_distinct((2, 2, 5, 4))),))


# ------------------------------------------------------------------------------------------------ errors

ERROR_CASES = [
    ("max_pool2d pad over half the kernel", lambda F, x: F.max_pool2d(x, 2, padding=2)),
    ("max_pool2d pad over half the undilated kernel", lambda F, x: F.max_pool2d(x, 3, padding=2, dilation=2)),
    ("max_pool2d zero stride", lambda F, x: F.max_pool2d(x, 2, stride=0)),
    ("max_pool2d zero dilation", lambda F, x: F.max_pool2d(x, 2, dilation=0)),
    ("max_pool2d negative padding", lambda F, x: F.max_pool2d(x, 2, padding=-1)),
    ("max_pool2d three kernel sizes", lambda F, x: F.max_pool2d(x, (2, 2, 2))),
    ("max_pool2d output too small", lambda F, x: F.max_pool2d(x[:, :, :1, :1], 2)),
    ("max_pool2d 2-D input", lambda F, x: F.max_pool2d(x[0, 0], 2)),
    ("max_pool2d empty plane", lambda F, x: F.max_pool2d(x[:, :, :0], 2)),
    ("max_pool1d 1-D input", lambda F, x: F.max_pool1d(x[0, 0, 0], 2)),
    ("max_pool1d two kernel sizes", lambda F, x: F.max_pool1d(x[0], (2, 2))),
    ("avg_pool1d two kernel sizes", lambda F, x: F.avg_pool1d(x[0], (2, 2))),
    ("avg_pool2d pad over half the kernel", lambda F, x: F.avg_pool2d(x, 2, padding=2)),
    ("avg_pool2d zero divisor", lambda F, x: F.avg_pool2d(x, 2, divisor_override=0)),
    ("avg_pool2d output too small", lambda F, x: F.avg_pool2d(x[:, :, :1, :1], 2)),
    ("adaptive_avg_pool2d 2-D input", lambda F, x: F.adaptive_avg_pool2d(x[0, 0], 2)),
    ("adaptive_avg_pool2d empty plane", lambda F, x: F.adaptive_avg_pool2d(x[:, :, :0], 2)),
    ("adaptive_max_pool1d 1-D input", lambda F, x: F.adaptive_max_pool1d(x[0, 0, 0], 2)),
    ("adaptive_avg_pool1d two sizes", lambda F, x: F.adaptive_avg_pool1d(x[0], (2, 2))),
    ("interpolate size and scale", lambda F, x: F.interpolate(x, size=2, scale_factor=2)),
    ("interpolate neither size nor scale", lambda F, x: F.interpolate(x)),
    ("interpolate three sizes", lambda F, x: F.interpolate(x, size=(3, 3, 3))),
    ("interpolate one scale of two", lambda F, x: F.interpolate(x, scale_factor=(2.0,))),
    ("interpolate output size 0", lambda F, x: F.interpolate(x, scale_factor=0.1)),
    ("interpolate negative scale", lambda F, x: F.interpolate(x, scale_factor=-1.0)),
    ("interpolate empty input", lambda F, x: F.interpolate(x[:, :, :0], size=3)),
    ("interpolate align_corners with nearest", lambda F, x: F.interpolate(x, size=3, align_corners=True)),
    ("interpolate recompute with size", lambda F, x: F.interpolate(x, size=3, recompute_scale_factor=True)),
    ("interpolate linear on 4-D", lambda F, x: F.interpolate(x, size=3, mode="linear")),
    ("interpolate bilinear on 3-D", lambda F, x: F.interpolate(x[0], size=3, mode="bilinear")),
    ("interpolate 2-D input", lambda F, x: F.interpolate(x[0, 0], size=3)),
    ("interpolate unknown mode", lambda F, x: F.interpolate(x, size=3, mode="cubic")),
    ("dropout2d p over 1", lambda F, x: F.dropout2d(x, 1.5)),
    ("dropout2d 1-D input", lambda F, x: F.dropout2d(x[0, 0, 0], 0.5)),
]


@pytest.mark.torch
@pytest.mark.parametrize("case", ERROR_CASES, ids=[name for name, _ in ERROR_CASES])
def test_errors_match_torch(case):
    import torch
    import torch.nn.functional as TF

    name, call = case
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as theirs:
            call(TF, torch.tensor(x))
        with pytest.raises(theirs.type) as ours:
            call(F, nbprop.tensor(x))
    op = name.split()[0]
    assert op in str(ours.value) or "dropout probability" in str(ours.value), str(ours.value)


def test_errors_name_the_op_and_shapes():
    x = nbprop.tensor(np.zeros((2, 3, 1, 1)))
    with pytest.raises(RuntimeError, match=r"max_pool2d: Given input size: \(3x1x1\)\. Calculated output size: "
                                           r"\(3x0x0\)\. Output size is too small"):
        F.max_pool2d(x, 2)
    with pytest.raises(RuntimeError, match=r"avg_pool1d: Expected 2D or 3D .* but got: \[2, 3, 1, 1\]"):
        F.avg_pool1d(x, 2)
    for mode in ("bicubic", "nearest-exact", "trilinear"):  # PyTorch has them; nbprop says it has not
        with pytest.raises(NotImplementedError, match=f"interpolate: mode '{mode}' .* not supported"):
            F.interpolate(x, size=3, mode=mode)
    with pytest.raises(NotImplementedError, match="interpolate: antialias=True"):
        F.interpolate(x, size=3, mode="bilinear", antialias=True)
    with pytest.raises(RuntimeError, match="floating point input .* got int64"):
        F.max_pool2d(nbprop.tensor(np.zeros((1, 2, 2), np.int64)), 2)
    with pytest.raises(TypeError, match="max_pool2d: expects a Tensor"):
        F.max_pool2d(np.zeros((1, 2, 2)), 2)


# ---------------------------------------------------------------------------------------- changed indices


@pytest.mark.torch
def test_indices_changed_in_place_make_backward_raise_as_torch():
    import torch
    import torch.nn.functional as TF

    for library, functional in ((torch, TF), (nbprop, F)):
        x = library.tensor(np.arange(16.0).reshape(1, 4, 4), requires_grad=True)
        out, indices = functional.max_pool2d(x, 2, return_indices=True)
        indices.add_(1)
        with pytest.raises(RuntimeError, match="modified by an in"):
            out.sum().backward()


@pytest.mark.parametrize("bad", [16, -1, 2**62])
def test_indices_written_through_numpy_raise_index_error(bad):
    x = leaf(np.arange(32.0).reshape(2, 4, 4))
    out, indices = F.max_pool2d(x, 2, return_indices=True)
    indices.numpy()[1, 1, 0] = bad
    with pytest.raises(IndexError, match=f"max_pool2d backward: index {bad} out of bounds for an input plane of 16"):
        out.sum().backward()
    found = np.empty(2, np.int64)
    kernels.max_pool_backward.serial(np.ones((2, 4)), indices.numpy().reshape(2, 4), found, np.empty((2, 16)))
    assert found.tolist() == [6, bad]


# ------------------------------------------------------------------------------------------------ dropout2d


def test_dropout2d_zeroes_whole_channels_and_scales_the_rest():
    nbprop.manual_seed(3)
    x = leaf(np.random.default_rng(0).standard_normal((8, 6, 3, 2)))
    out = F.dropout2d(x, 0.25)
    values, original = out.detach().numpy(), x.detach().numpy()
    kept = np.abs(values).reshape(8, 6, -1).max(-1) > 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_array_equal(values[~kept], 0)
    np.testing.assert_allclose(values[kept], original[kept] / 0.75, rtol=1e-15)
    gradient = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(nbprop.tensor(gradient))
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept[:, :, None, None], gradient / 0.75, 0), rtol=1e-15)
    nbprop.manual_seed(3)
    np.testing.assert_array_equal(F.dropout2d(x, 0.25).detach().numpy(), values)  # the seed gives the mask


def test_dropout2d_edges():
    x = leaf(np.array([[[[np.nan, 1.0]], [[2.0, np.inf]]]]))
    assert F.dropout2d(x, 0.5, training=False) is x and F.dropout2d(x, 0.0) is x
    dropped = F.dropout2d(x, 1.0).detach().numpy()
    np.testing.assert_array_equal(dropped, [[[[np.nan, 0.0]], [[0.0, np.nan]]]])  # x * 0, as PyTorch
    with pytest.warns(UserWarning, match="interpreted as shape \\(N, C, L\\)"):
        assert F.dropout2d(leaf(np.ones((2, 3, 4))), 0.5).shape == (2, 3, 4)
    y = nbprop.tensor(np.ones((2, 3, 4, 4), np.float32))
    version = y._version
    assert F.dropout2d(y, 0.5, inplace=True) is y and y._version == version + 1
    assert set(np.unique(y.numpy())) <= {0.0, 2.0}


# -------------------------------------------------------------------------------- device and kernel variants

OPAQUE_CASES = [
    lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True),
    lambda x: F.max_pool1d(x.flatten(2), 2, return_indices=True),
    lambda x: F.avg_pool2d(x, 2, 1, 1, ceil_mode=True),
    lambda x: F.avg_pool1d(x[0], 3, 2, 1),
    lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
    lambda x: F.adaptive_avg_pool1d(x.flatten(2), 5),
    lambda x: F.adaptive_max_pool2d(x, 3, return_indices=True),
    lambda x: F.adaptive_max_pool1d(x.flatten(2), 3, True),
    lambda x: F.interpolate(x, scale_factor=1.5),
    lambda x: F.interpolate(x, size=(7, 3), mode="bilinear", align_corners=True),
    lambda x: F.interpolate(x.flatten(2), size=11, mode="linear"),
    lambda x: F.interpolate(x, size=(2, 2), mode="area"),
]


@pytest.mark.parametrize("index", range(len(OPAQUE_CASES)))
def test_ops_run_on_the_opaque_device_bit_for_bit(index):
    import opaque_device

    opaque_device.install()
    x = np.random.default_rng(index).standard_normal((2, 3, 5, 4))
    opaque_device.assert_same_on_opaque(OPAQUE_CASES[index], x)
    opaque_device.assert_same_on_opaque(OPAQUE_CASES[index], x.astype(np.float32), sum_backward=True)


def test_dropout2d_runs_on_the_opaque_device_bit_for_bit():
    import opaque_device

    opaque_device.install()

    def seeded(x):
        nbprop.manual_seed(5)
        return F.dropout2d(x, 0.4)

    opaque_device.assert_same_on_opaque(seeded, np.random.default_rng(0).standard_normal((4, 5, 3, 3)))


def test_serial_and_threaded_variants_give_the_same_bits():
    generator = np.random.default_rng(0)
    x = generator.standard_normal((6, 9, 8)).astype(np.float32)
    window = (3, 2, 2, 1, 1, 1)
    rows, weights = np.array([[0, 1, 3, 5, 8], [1, 2, 4, 6, 8]]), generator.random((2, 5)).astype(np.float32)
    columns, column_weights = np.array([[0, 2, 4, 7], [1, 3, 5, 7]]), generator.random((2, 4)).astype(np.float32)
    calls = [
        (kernels.max_pool2d_forward, (x,) + window + (2, 1), [(6, 5, 5), (6, 5, 5)], [np.float32, np.int64]),
        (kernels.avg_pool2d_forward, (x,) + window + (False, 0), [(6, 5, 5)], [np.float32]),
        (kernels.avg_pool2d_backward, (x[:, :5, :5],) + window + (True, 0), [(6, 9, 8)], [np.float32]),
        (kernels.adaptive_avg_pool2d_forward, (x,), [(6, 4, 5)], [np.float32]),
        (kernels.adaptive_avg_pool2d_backward, (x[:, :4, :5],), [(6, 9, 8)], [np.float32]),
        (kernels.adaptive_max_pool2d_forward, (x,), [(6, 4, 5), (6, 4, 5)], [np.float32, np.int64]),
        (interpolate_kernels.upsample_nearest_forward, (x, rows[0], columns[0]), [(6, 5, 4)], [np.float32]),
        (interpolate_kernels.upsample_nearest_backward, (x[:, :5, :4], rows[0], columns[0]), [(6, 9, 8)],
         [np.float32]),
        (interpolate_kernels.upsample_linear_forward, (x, True, rows, weights, columns, column_weights), [(6, 5, 4)],
         [np.float32]),
        (interpolate_kernels.upsample_linear_backward, (x[:, :5, :4], True, rows, weights, columns, column_weights),
         [(6, 9, 8)], [np.float32]),
    ]
    for kernel, arguments, shapes, dtypes in calls:
        results = []
        for variant in (kernel.serial, kernel.parallel):
            outputs = [np.full(shape, 7, dtype) for shape, dtype in zip(shapes, dtypes)]
            variant(*arguments, *outputs)
            results.append(outputs)
        for serial, threaded in zip(*results):
            np.testing.assert_array_equal(serial, threaded, err_msg=kernel.__name__)


@pytest.mark.torch
def test_windows_of_padding_only_give_torchs_values_and_send_no_gradient():
    """Dilation can leave a window on padding only: -inf at PyTorch's index (outside the plane, or inside another
    window), and no gradient, where PyTorch's backward would add at that index."""
    import torch.nn.functional as TF

    for shape, arguments in [((1, 1, 1), dict(kernel_size=(2, 1), padding=(1, 0), dilation=(2, 1))),
                             ((2, 3, 1), dict(kernel_size=(1, 2), padding=(0, 1), dilation=(1, 2)))]:
        x = _values(shape, 0, np.float64)
        ours_input = leaf(x)
        out, indices = F.max_pool2d(ours_input, **arguments, return_indices=True)
        theirs, their_indices = TF.max_pool2d(torch_tensor(x), **arguments, return_indices=True)
        np.testing.assert_array_equal(out.detach().numpy(), theirs.numpy())
        np.testing.assert_array_equal(indices.numpy(), their_indices.numpy())
        assert np.isneginf(out.detach().numpy()).all() and (indices.numpy() >= x.shape[-2] * x.shape[-1]).any()
        out.sum().backward()
        np.testing.assert_array_equal(ours_input.grad.numpy(), np.zeros(x.shape))


def torch_tensor(array):
    import torch

    return torch.tensor(array)
