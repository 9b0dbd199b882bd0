"""Functional conv1d, conv2d, conv_transpose1d, conv_transpose2d: PyTorch's outputs and gradients over a sweep
of kernels, strides, paddings, dilations and groups; gradcheck; errors; serial and threaded kernels agree bit
for bit; the opaque device."""

import numpy as np
import opaque_device
import pytest
from helpers import assert_close, leaf
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop
from nbprop.kernels import conv as kernels
from nbprop.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
FUNCTIONS = {1: (conv1d, conv_transpose1d), 2: (conv2d, conv_transpose2d)}


def _compare_with_torch(function, torch_function, shapes, dtype, seed, **keywords):
    """function(x, w, b, **keywords) against torch's: the output and the gradients of x, w and b."""
    import torch

    rng = np.random.default_rng(seed)
    arrays = [None if shape is None else rng.standard_normal(shape).astype(dtype) for shape in shapes]
    ours = [None if array is None else nbprop.tensor(array, requires_grad=True) for array in arrays]
    theirs = [None if array is None else torch.tensor(array, requires_grad=True) for array in arrays]
    result, expected = function(*ours, **keywords), torch_function(*theirs, **keywords)
    assert result.shape == tuple(expected.shape) and result.dtype == dtype
    assert_close(result, expected, **TOLERANCE[dtype])
    grad_output = rng.standard_normal(result.shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.from_numpy(grad_output))
    for our, their in zip(ours, theirs):
        if our is not None:
            assert_close(our.grad, their.grad, **TOLERANCE[dtype])


@st.composite
def convolutions(draw, transposed):
    """(dims, input shape, weight shape, bias shape or None, keyword arguments) of a valid convolution."""
    dims = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_per_group = draw(st.integers(1, 2))
    out_per_group = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    batch = draw(st.integers(1, 2))
    keywords = dict(stride=stride, dilation=dilation, groups=groups)
    if transposed:
        padding = tuple(draw(st.integers(0, (d * (k - 1)) // 2 + 1)) for d, k in zip(dilation, kernel))
        keywords["padding"] = padding
        keywords["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        spatial = tuple(draw(st.integers(1, 5)) for _ in range(dims))
        out_spatial = [(size - 1) * s - 2 * p + d * (k - 1) + o + 1 for size, s, p, d, k, o in
                       zip(spatial, stride, padding, dilation, kernel, keywords["output_padding"])]
        if min(out_spatial) < 1:
            keywords["padding"] = (0,) * dims
        weight = (in_per_group * groups, out_per_group) + kernel
        bias = (out_per_group * groups,) if draw(st.booleans()) else None
    else:
        padding = draw(st.sampled_from(["int", "same", "valid"]))
        if padding == "same":
            keywords["stride"] = (1,) * dims
            keywords["padding"] = "same"
            extent = [1] * dims
        else:
            pads = (0,) * dims if padding == "valid" else tuple(draw(st.integers(0, 2)) for _ in range(dims))
            keywords["padding"] = "valid" if padding == "valid" else pads
            extent = [max(1, d * (k - 1) + 1 - 2 * p) for d, k, p in zip(dilation, kernel, pads)]
        spatial = tuple(draw(st.integers(low, low + 4)) for low in extent)
        weight = (out_per_group * groups, in_per_group) + kernel
        bias = (out_per_group * groups,) if draw(st.booleans()) else None
    shape = (batch, in_per_group * groups) + spatial
    return dims, shape, weight, bias, keywords


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note that it copies the padded input
@settings(max_examples=30)
@given(case=convolutions(transposed=False), dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 99))
def test_convolution_matches_torch(case, dtype, seed):
    import torch

    dims, shape, weight, bias, keywords = case
    torch_function = getattr(torch.nn.functional, f"conv{dims}d")
    _compare_with_torch(FUNCTIONS[dims][0], torch_function, (shape, weight, bias), dtype, seed, **keywords)


@pytest.mark.torch
@settings(max_examples=30)
@given(case=convolutions(transposed=True), dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 99))
def test_transposed_convolution_matches_torch(case, dtype, seed):
    import torch

    dims, shape, weight, bias, keywords = case
    torch_function = getattr(torch.nn.functional, f"conv_transpose{dims}d")
    _compare_with_torch(FUNCTIONS[dims][1], torch_function, (shape, weight, bias), dtype, seed, **keywords)


# Each path of the op: im2col products, pointwise products, depthwise loops (with a channel multiplier), and
# asymmetric 'same' padding; unbatched inputs; one input channel in one group (products, not the depthwise loops);
# stride 1 with rows as long as the input's (im2col as one shifted copy), with taps that see only padding.
PATHS = [
    (conv2d, (2, 4, 6, 5), (6, 2, 3, 2), (6,), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    (conv2d, (2, 4, 5, 5), (6, 4, 1, 1), (6,), {}),
    (conv2d, (2, 3, 7, 6), (6, 1, 3, 3), (6,), dict(stride=2, padding=1, groups=3)),
    (conv2d, (3, 6, 5), (2, 3, 2, 4), None, dict(padding="same", dilation=(2, 1))),
    (conv2d, (2, 1, 6, 7), (4, 1, 3, 3), (4,), dict(padding=1)),
    (conv2d, (2, 2, 2, 6), (3, 2, 3, 3), (3,), dict(padding=(2, 1), dilation=(2, 1))),
    (conv1d, (2, 4, 9), (6, 2, 3), (6,), dict(stride=3, padding=2, dilation=2, groups=2)),
    (conv1d, (4, 9), (4, 1, 4), None, dict(padding="same", groups=4)),
    (conv_transpose2d, (2, 4, 4, 3), (4, 3, 3, 2), (6,),
     dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, dilation=(1, 2))),
    (conv_transpose2d, (2, 3, 4, 3), (3, 2, 3, 3), (6,), dict(stride=2, groups=3)),
    (conv_transpose2d, (2, 4, 3, 3), (4, 3, 1, 1), (3,), dict(dilation=2, output_padding=1)),
    (conv_transpose1d, (4, 5), (4, 3, 3), (3,), dict(stride=2, padding=1, output_padding=1)),
]


def _path_id(path):
    function, shape, weight, _, keywords = path
    return f"{function.__name__}{shape}{weight}{keywords}".replace(" ", "")


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("path", PATHS, ids=[_path_id(path) for path in PATHS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_paths_match_torch(path, dtype):
    import torch

    function, shape, weight, bias, keywords = path
    _compare_with_torch(function, getattr(torch.nn.functional, function.__name__), (shape, weight, bias), dtype, 0,
                        **keywords)


@pytest.mark.parametrize("path", PATHS, ids=[_path_id(path) for path in PATHS])
def test_gradcheck(path):
    function, shape, weight, bias, keywords = path
    rng = np.random.default_rng(1)
    inputs = [leaf(rng.standard_normal(shape)), leaf(rng.standard_normal(weight))]
    if bias is not None:
        inputs.append(leaf(rng.standard_normal(bias)))
    assert nbprop.gradcheck(lambda *tensors: function(*tensors, **keywords), inputs)


@pytest.mark.parametrize("path", PATHS, ids=[_path_id(path) for path in PATHS])
def test_same_on_opaque_device(path):
    opaque_device.install()
    function, shape, weight, bias, keywords = path
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(shape), rng.standard_normal(weight)]
    if bias is not None:
        arrays.append(rng.standard_normal(bias))
    opaque_device.assert_same_on_opaque(lambda *tensors: function(*tensors, **keywords), *arrays)


def test_partial_gradients_and_determinism():
    """Only the inputs that require grad get one, and a rerun gives the same bits."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 4, 3, 3))
    runs = []
    for _ in range(2):
        weight = leaf(w)
        conv2d(leaf(x, requires_grad=False), weight, stride=2, padding=1).sum().backward()
        image = leaf(x)
        conv2d(image, leaf(w, requires_grad=False), stride=2, padding=1).sum().backward()
        runs.append((weight.grad.numpy(), image.grad.numpy()))
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)


# ------------------------------------------------------------------------------ kernels: serial = threaded


def test_kernels_serial_and_threaded_agree():
    """The threaded kernels (depthwise loops, bias gradient) give the serial variants' bits."""
    rng = np.random.default_rng(4)
    image = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    steps = (2, 1, 1, 2, 1, 2)  # strides, padding before, dilations
    out_shape = (5, 6)  # out_height, out_width of a 3x2 kernel with these steps

    def both(kernel, *arguments, shape):
        results = []
        for variant in (kernel.serial, kernel.parallel):
            out = np.full(shape, np.nan, np.float32)
            variant(*arguments, out)
            results.append(out)
        np.testing.assert_array_equal(*results)
        assert np.isfinite(results[0]).all()
        return results[0]

    # Depthwise with a channel multiplier of 2.
    weight = rng.standard_normal((8, 3, 2)).astype(np.float32)
    out = both(kernels.conv_depthwise_forward, image, weight, *steps, shape=(2, 8) + out_shape)
    both(kernels.conv_depthwise_input_grad, out, weight, *steps, shape=image.shape)
    both(kernels.conv_depthwise_weight_grad, image, out, *steps, shape=weight.shape)
    both(kernels.conv_bias_grad, out.reshape(2, 8, -1), shape=(8,))


# ---------------------------------------------------------------------------------------------- errors


def _tensors(*shapes, dtype=np.float64):
    return [nbprop.tensor(np.zeros(shape, dtype)) for shape in shapes]


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: conv2d(*_tensors((1, 4, 5, 5), (6, 3, 3, 3))), RuntimeError,
     r"conv2d: given groups=1, weight of size \[6, 3, 3, 3\], expected input\[1, 4, 5, 5\] to have 3 channels, "
     r"but got 4"),
    (lambda: conv2d(*_tensors((1, 3, 2, 5), (6, 3, 3, 3))), RuntimeError,
     r"conv2d: calculated padded input size per channel: \(2 x 5\). Kernel size: \(3 x 3\)"),
    (lambda: conv2d(*_tensors((1, 3, 1, 1), (6, 3, 2, 2)), dilation=3, padding=1), RuntimeError,
     r"padded input size per channel: \(3 x 3\). Kernel size: \(4 x 4\)"),
    (lambda: conv1d(*_tensors((5,), (6, 1, 3))), RuntimeError,
     r"conv1d: expected 2D \(unbatched\) or 3D \(batched\) input, but got input of shape \[5\]"),
    (lambda: conv2d(*_tensors((1, 1, 3, 5, 5), (6, 1, 3, 3))), RuntimeError, r"conv2d: expected 3D .* 4D"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3))), RuntimeError, r"conv2d: expected a 4-D weight"),
    (lambda: conv2d(*_tensors((1, 4, 5, 5), (5, 2, 3, 3)), groups=2), RuntimeError,
     r"given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of size \[5, 2, 3, 3\]"),
    (lambda: conv2d(*_tensors((1, 5, 5, 5), (4, 2, 3, 3)), groups=2), RuntimeError,
     r"expected input\[1, 5, 5, 5\] to have 4 channels"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), padding=-1), RuntimeError, "negative padding"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), padding="same", stride=2), RuntimeError,
     r"padding='same' is not supported for strided convolutions"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), padding="full"), RuntimeError, "invalid padding string"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), stride=0), RuntimeError, "non-positive stride"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), dilation=(1, 0)), RuntimeError, "dilation should be"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), groups=0), RuntimeError, "non-positive groups"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3)), stride=(1, 2, 3)), RuntimeError,
     "expected stride to be a single integer value or a list of 2 values"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5), (6, 3, 3, 3), (5,))), RuntimeError,
     r"expected bias to be 1-dimensional with 6 elements, but got bias of size \[5\]"),
    (lambda: conv2d(*_tensors((1, 3, 5, 5)), *_tensors((6, 3, 3, 3), dtype=np.float32)), RuntimeError,
     r"input type \(float64\) and weight type \(float32\) should be the same"),
    (lambda: conv2d(nbprop.tensor(np.zeros((1, 3, 5, 5), np.int64)), *_tensors((6, 3, 3, 3))), RuntimeError,
     "expected a floating-point input"),
    (lambda: conv_transpose2d(*_tensors((1, 3, 5, 5), (4, 2, 3, 3))), RuntimeError,
     r"conv_transpose2d: given transposed=1, weight of size \[4, 2, 3, 3\], expected input\[1, 3, 5, 5\] to have "
     r"4 channels, but got 3"),
    (lambda: conv_transpose2d(*_tensors((1, 4, 5, 5), (4, 2, 3, 3)), output_padding=1), RuntimeError,
     "output padding must be smaller than either stride or dilation"),
    (lambda: conv_transpose1d(*_tensors((1, 4, 5), (4, 2, 3)), stride=2, output_padding=-1), RuntimeError,
     "negative output_padding"),
    (lambda: conv_transpose1d(*_tensors((1, 4, 1), (4, 2, 1)), padding=1), RuntimeError,
     r"Calculated output size per channel: \(-1\). Output size is too small"),
    (lambda: conv_transpose2d(*_tensors((1, 4, 5, 5), (4, 2, 3, 3)), groups=3), RuntimeError,
     "expected weight to be divisible by 3"),
    (lambda: conv_transpose2d(*_tensors((1, 4, 5, 5), (4, 2, 3, 3), (3,))), RuntimeError,
     "expected bias to be 1-dimensional with 2 elements"),
    (lambda: conv_transpose2d(*_tensors((1, 4, 5, 5), (4, 2, 3, 3)), padding="same"), TypeError, "no 'same'"),
])
def test_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.torch
@pytest.mark.parametrize("call", [
    lambda F, t: F.conv2d(t((1, 4, 5, 5)), t((6, 3, 3, 3))),
    lambda F, t: F.conv2d(t((1, 3, 2, 5)), t((6, 3, 3, 3))),
    lambda F, t: F.conv1d(t((5,)), t((6, 1, 3))),
    lambda F, t: F.conv2d(t((1, 4, 5, 5)), t((5, 2, 3, 3)), groups=2),
    lambda F, t: F.conv2d(t((1, 3, 5, 5)), t((6, 3, 3, 3)), padding=-1),
    lambda F, t: F.conv2d(t((1, 3, 5, 5)), t((6, 3, 3, 3)), padding="same", stride=2),
    lambda F, t: F.conv_transpose2d(t((1, 4, 5, 5)), t((4, 2, 3, 3)), output_padding=1),
    lambda F, t: F.conv_transpose2d(t((1, 3, 5, 5)), t((4, 2, 3, 3))),
])
def test_errors_are_torch_errors(call):
    """The same calls fail in PyTorch, with the same error class."""
    import torch

    def torch_tensor(shape):
        return torch.zeros(shape, dtype=torch.float64)

    def our_tensor(shape):
        return nbprop.tensor(np.zeros(shape))

    with pytest.raises(Exception) as theirs:
        call(torch.nn.functional, torch_tensor)
    with pytest.raises(Exception) as ours:
        call(nbprop.nn.functional, our_tensor)
    assert isinstance(ours.value, type(theirs.value))
