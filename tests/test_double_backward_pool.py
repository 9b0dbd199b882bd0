"""Double backward through pooling, interpolation and dropout2d: gradgradcheck for every mode, second derivatives
against PyTorch, first gradients of a recorded pass equal to the fast path's, saved indices checked, the opaque
device."""

import numpy as np
import pytest
from helpers import assert_close
from opaque_device import assert_same_on_opaque, install

import nbprop
from nbprop.kernels import pool as kernels

# dropout2d of a 3-D input warns that it reads (N, C, L), as PyTorch's.
pytestmark = pytest.mark.filterwarnings("ignore:dropout2d. Received a 3D input")
RNG = np.random.default_rng(11)
# Standard normal values: no two elements of a window within central differences' step of each other.
X1 = RNG.standard_normal((2, 3, 7))
X2 = RNG.standard_normal((2, 2, 5, 6))


def _dropout2d(F, x):
    # Seeded in the function: gradgradcheck calls it once per perturbation and needs the same mask each time.
    nbprop.manual_seed(4)
    return F.dropout2d(x, 0.4)


# name -> (function of (torch.nn.functional or nbprop.nn.functional, float64 input) giving one tensor, input).
# Each mode or option that changes the backward formula has its own case.
CASES = {
    "max_pool1d": (lambda F, x: F.max_pool1d(x, 2, stride=1), X1),
    "max_pool1d_padding_ceil": (lambda F, x: F.max_pool1d(x, 3, stride=2, padding=1, ceil_mode=True), X1),
    "max_pool1d_dilation": (lambda F, x: F.max_pool1d(x, 2, stride=2, dilation=3), X1),
    "max_pool2d": (lambda F, x: F.max_pool2d(x, 2), X2),
    "max_pool2d_overlapping": (lambda F, x: F.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                                                          ceil_mode=True), X2),
    "max_pool2d_unbatched": (lambda F, x: F.max_pool2d(x[0], 3, stride=1), X2),
    "adaptive_max_pool1d": (lambda F, x: F.adaptive_max_pool1d(x, 4), X1),
    "adaptive_max_pool2d": (lambda F, x: F.adaptive_max_pool2d(x, (3, 4)), X2),
    "avg_pool1d": (lambda F, x: F.avg_pool1d(x, 3, stride=2, padding=1), X1),
    "avg_pool1d_exclude_padding_ceil": (lambda F, x: F.avg_pool1d(x, 3, stride=2, padding=1, ceil_mode=True,
                                                                  count_include_pad=False), X1),
    "avg_pool2d": (lambda F, x: F.avg_pool2d(x, 2), X2),
    "avg_pool2d_exclude_padding_ceil": (lambda F, x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                                                                  count_include_pad=False), X2),
    "avg_pool2d_divisor_override": (lambda F, x: F.avg_pool2d(x, (2, 3), stride=1, divisor_override=5), X2),
    "adaptive_avg_pool1d": (lambda F, x: F.adaptive_avg_pool1d(x, 4), X1),
    "adaptive_avg_pool2d": (lambda F, x: F.adaptive_avg_pool2d(x, (3, 4)), X2),
    "nearest_1d_size": (lambda F, x: F.interpolate(x, size=11), X1),
    "nearest_2d_scale": (lambda F, x: F.interpolate(x, scale_factor=(1.5, 0.5)), X2),
    "linear": (lambda F, x: F.interpolate(x, size=10, mode="linear"), X1),
    "linear_align_corners": (lambda F, x: F.interpolate(x, scale_factor=0.7, mode="linear", align_corners=True), X1),
    "bilinear": (lambda F, x: F.interpolate(x, scale_factor=2, mode="bilinear"), X2),
    "bilinear_align_corners": (lambda F, x: F.interpolate(x, size=(3, 8), mode="bilinear", align_corners=True), X2),
    "area": (lambda F, x: F.interpolate(x, size=(3, 4), mode="area"), X2),
    "dropout2d": (_dropout2d, X2),
    "dropout2d_3d": (_dropout2d, X1),
}
# PyTorch draws its own dropout mask: those cases are checked against the mask written out instead.
TORCH_CASES = sorted(name for name in CASES if not name.startswith("dropout2d"))


def _leaf(array):
    return nbprop.tensor(np.array(array), requires_grad=True)


def _loss(lib, name, x):
    """A nonlinear scalar of the op's output, so that second derivatives also pass through the op's forward."""
    function, _ = CASES[name]
    output = function(lib.nn.functional, x)
    weights = lib.tensor(np.random.default_rng(3).standard_normal(tuple(output.shape)))
    return (output * output * output * weights).sum()


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradgradcheck(name):
    function, array = CASES[name]
    assert nbprop.gradgradcheck(lambda x: function(nbprop.nn.functional, x) ** 2, [_leaf(array)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_first_gradients_equal_the_fast_path(name):
    recorded_input, fast_input = _leaf(CASES[name][1]), _leaf(CASES[name][1])
    (recorded,) = nbprop.autograd.grad(_loss(nbprop, name, recorded_input), [recorded_input], create_graph=True)
    _loss(nbprop, name, fast_input).backward()
    assert recorded.requires_grad
    # The same kernels in the same order: the same bits.
    np.testing.assert_array_equal(recorded.detach().numpy(), fast_input.grad.numpy())


@pytest.mark.torch
@pytest.mark.parametrize("name", TORCH_CASES)
def test_second_derivatives_match_torch(name):
    import torch

    array = CASES[name][1]
    direction = np.random.default_rng(5).standard_normal(array.shape)
    results = []
    for lib in (nbprop, torch):
        x = lib.tensor(np.array(array), requires_grad=True)
        (gradient,) = lib.autograd.grad(_loss(lib, name, x), [x], create_graph=True)
        (second,) = lib.autograd.grad((gradient * lib.tensor(direction)).sum(), [x])
        results.append(second.detach().numpy())
    assert_close(*results, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["dropout2d", "dropout2d_3d"])
def test_dropout2d_second_derivatives_are_those_of_its_mask(name):
    """dropout2d is x times a constant per-channel factor (0 or 1 / (1 - p)): its recorded backward has the
    second derivatives of that product."""
    function, array = CASES[name]
    with nbprop.no_grad():
        factor = function(nbprop.nn.functional, nbprop.tensor(np.ones(array.shape))).numpy()
    assert set(np.unique(factor)) == {0.0, 1 / 0.6}
    direction = nbprop.tensor(np.random.default_rng(5).standard_normal(array.shape))
    results = []
    for masked in (lambda x: function(nbprop.nn.functional, x), lambda x: x * nbprop.tensor(factor)):
        x = _leaf(array)
        output = masked(x)
        (gradient,) = nbprop.autograd.grad((output * output * output).sum(), [x], create_graph=True)
        (second,) = nbprop.autograd.grad((gradient * direction).sum(), [x])
        results.append(second.numpy())
    assert_close(*results, rtol=1e-14, atol=0)


def test_third_derivatives_of_linear_pools_round_trip():
    """The recorded backward of a recorded backward is the forward again: third derivatives of max pooling and
    of bilinear upsampling against central differences."""
    for name in ("max_pool2d_overlapping", "bilinear"):
        function, array = CASES[name]

        def second_gradients(x, direction, function=function):
            # Recorded even where gradcheck evaluates it under no_grad for central differences.
            with nbprop.enable_grad():
                return _second_gradients(function, x, direction)

        direction = nbprop.tensor(np.random.default_rng(6).standard_normal(array.shape), requires_grad=True)
        assert nbprop.gradcheck(second_gradients, [_leaf(array), direction])


def _second_gradients(function, x, direction):
    (gradient,) = nbprop.autograd.grad((function(nbprop.nn.functional, x) ** 3).sum(), [x], create_graph=True)
    return nbprop.autograd.grad((gradient * direction).sum(), [x], create_graph=True)


def test_windows_of_padding_only_get_no_recorded_gradient():
    """Dilation can leave every window on padding only (output -inf, indices outside the plane): the recorded
    backward and its own backward send nothing, as the fast path, and never read those indices."""
    x = _leaf(RNG.standard_normal((2, 3, 1)))
    direction = nbprop.tensor(np.ones((2, 3, 1)), requires_grad=True)
    output = nbprop.nn.functional.max_pool2d(x * x, kernel_size=(1, 2), padding=(0, 1), dilation=(1, 2))
    assert np.isneginf(output.detach().numpy()).all()
    weight = nbprop.tensor(np.ones(output.shape), requires_grad=True)
    (gradient,) = nbprop.autograd.grad(output, [x], weight, create_graph=True)
    np.testing.assert_array_equal(gradient.detach().numpy(), np.zeros((2, 3, 1)))
    second = nbprop.autograd.grad((gradient * direction).sum(), [x, weight, direction])
    for value, shape in zip(second, ((2, 3, 1), output.shape, (2, 3, 1))):
        np.testing.assert_array_equal(value.numpy(), np.zeros(shape))


def test_indices_changed_in_place_make_the_recorded_backward_raise():
    x = _leaf(X2)
    output, indices = nbprop.nn.functional.max_pool2d(x, 2, return_indices=True)
    (gradient,) = nbprop.autograd.grad((output ** 2).sum(), [x], create_graph=True)
    indices.add_(1)
    with pytest.raises(RuntimeError, match="modified by an in"):
        nbprop.autograd.grad(gradient.sum(), [x])
    output, indices = nbprop.nn.functional.max_pool2d(x, 2, return_indices=True)
    indices.add_(1)
    with pytest.raises(RuntimeError, match="modified by an in"):
        nbprop.autograd.grad(output.sum(), [x], create_graph=True)


@pytest.mark.parametrize("bad", [30, -1])
def test_indices_written_through_numpy_raise_index_error_in_the_double_backward(bad):
    x = _leaf(X2)
    output, indices = nbprop.nn.functional.max_pool2d(x, 2, return_indices=True)
    direction = nbprop.tensor(np.ones(output.shape), requires_grad=True)
    (gradient,) = nbprop.autograd.grad(output, [x], direction, create_graph=True)
    indices.numpy()[1, 0, 1, 1] = bad
    with pytest.raises(IndexError, match=f"max_pool2d double backward: index {bad} out of bounds for an input "
                                         "plane of 30 elements"):
        nbprop.autograd.grad((gradient * x).sum(), [direction])


def test_gather_kernel_serial_and_threaded_variants_give_the_same_bits():
    generator = np.random.default_rng(0)
    source = generator.standard_normal((6, 20))
    indices = generator.integers(0, 20, (6, 9))
    indices[4, 3] = 20
    results = []
    for variant in (kernels.max_pool_gather.serial, kernels.max_pool_gather.parallel):
        found, out = np.empty(2, np.int64), np.full((6, 9), 7.0)
        variant(source, indices, found, out)
        results.append((found, out))
    for serial, threaded in zip(*results):
        np.testing.assert_array_equal(serial, threaded)
    expected = np.take_along_axis(source, np.where(indices < 20, indices, 0), 1)
    expected[4, 3] = 0.0
    np.testing.assert_array_equal(results[0][1], expected)
    assert results[0][0].tolist() == [4 * 9 + 3, 20]


@pytest.mark.parametrize("name", ["max_pool1d_padding_ceil", "max_pool2d_overlapping", "adaptive_max_pool2d",
                                  "avg_pool2d_exclude_padding_ceil", "adaptive_avg_pool1d", "nearest_2d_scale",
                                  "bilinear_align_corners", "dropout2d"])
def test_second_derivatives_on_the_opaque_device(name):
    """The recorded backward reaches array data only through the device: the first gradients and, behind them,
    the second derivatives in the input and in the output gradient are bit-identical to the CPU's."""
    install()
    function, array = CASES[name]
    with nbprop.no_grad():
        shape = tuple(function(nbprop.nn.functional, nbprop.tensor(array)).shape)

    def first_gradients(x, direction):
        output = function(nbprop.nn.functional, x)
        return nbprop.autograd.grad(output * output, [x], direction, create_graph=True)

    assert_same_on_opaque(first_gradients, array, np.random.default_rng(5).standard_normal(shape))
