"""Double backward through conv1d, conv2d and the transposed convolutions: gradgradcheck over strides, paddings
(incl. 'same' with an even kernel), dilations, groups (incl. depthwise), 1x1 and output_padding; second
derivatives against PyTorch; first gradients of a recorded pass equal to the fast path's; third derivatives; the
opaque device."""

import numpy as np
import pytest
from helpers import assert_close
from opaque_device import assert_same_on_opaque, install

import nbprop

# PyTorch warns that 'same' padding of an even kernel may copy the input.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
RNG = np.random.default_rng(12)


def _arrays(*shapes):
    return tuple(None if shape is None else RNG.standard_normal(shape) for shape in shapes)


# name -> (function of (torch.nn.functional or nbprop.nn.functional, input, weight, bias or None), arrays).
# Each case takes another path through the kernels (GEMM, depthwise, pointwise) or another geometry.
CASES = {
    "conv1d": (lambda F, x, w, b: F.conv1d(x, w, b), _arrays((2, 2, 5), (3, 2, 2), (3,))),
    "conv1d_strided_padded_dilated_grouped": (
        lambda F, x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=2),
        _arrays((2, 4, 7), (4, 2, 3), (4,))),
    "conv1d_same_even_kernel": (lambda F, x, w, b: F.conv1d(x, w, b, padding="same", dilation=3),
                                _arrays((1, 2, 6), (2, 2, 2), None)),
    "conv1d_depthwise_unbatched": (lambda F, x, w, b: F.conv1d(x, w, b, stride=2, padding=1, groups=3),
                                   _arrays((3, 7), (6, 1, 3), (6,))),
    "conv2d": (lambda F, x, w, b: F.conv2d(x, w, b, padding=1), _arrays((2, 2, 4, 3), (2, 2, 3, 2), (2,))),
    "conv2d_strided_dilated_grouped": (
        lambda F, x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
        _arrays((1, 4, 5, 5), (4, 2, 2, 2), (4,))),
    "conv2d_same_even_kernel": (lambda F, x, w, b: F.conv2d(x, w, b, padding="same"),
                                _arrays((1, 2, 3, 4), (2, 2, 2, 3), (2,))),
    "conv2d_depthwise": (lambda F, x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2),
                         _arrays((2, 2, 4, 5), (2, 1, 3, 3), None)),
    "conv2d_pointwise": (lambda F, x, w, b: F.conv2d(x, w, b, groups=2), _arrays((2, 4, 3, 2), (4, 2, 1, 1), (4,))),
    "conv2d_circular_padding": (lambda F, x, w, b: F.conv2d(F.pad(x, (1, 1, 2, 0), mode="circular"), w, b),
                                _arrays((1, 2, 3, 3), (2, 2, 3, 2), (2,))),
    "conv_transpose1d": (lambda F, x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2),
                         _arrays((2, 2, 3), (2, 2, 3), (2,))),
    "conv_transpose1d_grouped_dilated": (
        lambda F, x, w, b: F.conv_transpose1d(x, w, b, stride=2, output_padding=1, groups=2, dilation=2),
        _arrays((1, 4, 3), (4, 1, 2), None)),
    "conv_transpose2d": (
        lambda F, x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                                              dilation=(1, 2)),
        _arrays((1, 2, 3, 2), (2, 2, 3, 2), (2,))),
    "conv_transpose2d_grouped": (lambda F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, groups=2),
                                 _arrays((2, 4, 2, 3), (4, 1, 3, 3), (2,))),
    "conv_transpose2d_depthwise_unbatched": (
        lambda F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, output_padding=1, groups=2),
        _arrays((2, 2, 2), (2, 1, 2, 2), (2,))),
    "conv_transpose2d_pointwise": (lambda F, x, w, b: F.conv_transpose2d(x, w, b),
                                   _arrays((2, 3, 2, 2), (3, 2, 1, 1), (2,))),
}


def _leaves(lib, arrays):
    return [None if array is None else lib.tensor(np.array(array), requires_grad=True) for array in arrays]


def _loss(lib, name, leaves):
    """A nonlinear scalar of the convolution's output, so that second derivatives also pass through its forward."""
    function, _ = CASES[name]
    output = function(lib.nn.functional, *leaves)
    weights = lib.tensor(np.random.default_rng(3).standard_normal(tuple(output.shape)))
    return (output * output * output * weights).sum()


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradgradcheck(name):
    function, arrays = CASES[name]
    leaves = _leaves(nbprop, arrays)
    given = [leaf for leaf in leaves if leaf is not None]

    def convolution(*values):
        values = iter(values)
        return function(nbprop.nn.functional, *(None if leaf is None else next(values) for leaf in leaves))

    assert nbprop.gradgradcheck(convolution, given)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_first_gradients_equal_the_fast_path(name):
    arrays = CASES[name][1]
    recorded_leaves, fast_leaves = _leaves(nbprop, arrays), _leaves(nbprop, arrays)
    given = [leaf for leaf in recorded_leaves if leaf is not None]
    recorded = nbprop.autograd.grad(_loss(nbprop, name, recorded_leaves), given, create_graph=True)
    _loss(nbprop, name, fast_leaves).backward()
    assert all(gradient.requires_grad for gradient in recorded)
    _assert_same(recorded, [leaf.grad for leaf in fast_leaves if leaf is not None])


def _assert_same(recorded, fast):
    """Input and weight: the same kernels on the same values, the same bits. The bias: the recorded pass sums with
    nbprop.sum, whose order differs from the bias kernel's (last-bit differences)."""
    np.testing.assert_array_equal(recorded[0].detach().numpy(), fast[0].numpy())
    np.testing.assert_array_equal(recorded[1].detach().numpy(), fast[1].numpy())
    if len(recorded) == 3:
        assert_close(recorded[2], fast[2], rtol=1e-13, atol=0)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_second_derivatives_match_torch(name):
    import torch

    arrays = CASES[name][1]
    directions = [None if array is None else np.random.default_rng(5).standard_normal(array.shape)
                  for array in arrays]
    results = []
    for lib in (nbprop, torch):
        leaves = _leaves(lib, arrays)
        given = [leaf for leaf in leaves if leaf is not None]
        gradients = lib.autograd.grad(_loss(lib, name, leaves), given, create_graph=True)
        product = sum((gradient * lib.tensor(direction)).sum()
                      for gradient, direction in zip(gradients, [d for d in directions if d is not None]))
        results.append([second.detach().numpy() for second in lib.autograd.grad(product, given)])
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["conv1d_strided_padded_dilated_grouped", "conv2d_same_even_kernel",
                                  "conv2d_depthwise", "conv2d_pointwise", "conv_transpose2d"])
def test_third_derivatives(name):
    """gradgradcheck of the first gradients (input and weight, as functions of the input, the weight and the
    output gradient): the recorded backward of the weight gradient's own op, whose values the second-order
    tests do not reach, against central differences."""
    function, arrays = CASES[name]
    bias = None if arrays[2] is None else nbprop.tensor(arrays[2])
    with nbprop.no_grad():
        shape = tuple(function(nbprop.nn.functional, *(nbprop.tensor(a) for a in arrays[:2]), bias).shape)

    def first_gradients(x, w, direction):
        # Recorded even where gradcheck evaluates it under no_grad for central differences.
        with nbprop.enable_grad():
            output = function(nbprop.nn.functional, x, w, bias)
            return nbprop.autograd.grad(output, [x, w], direction, create_graph=True)

    direction = np.random.default_rng(6).standard_normal(shape)
    assert nbprop.gradgradcheck(first_gradients, _leaves(nbprop, (*arrays[:2], direction)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_second_derivatives_equal_the_fast_path(name):
    """Second derivatives from a recorded pass (the weight gradient's own recorded backward) equal those of the
    fast backward: gradgradcheck above checks only their consistency with their own derivatives."""
    arrays = CASES[name][1]
    directions = [nbprop.tensor(np.random.default_rng(5).standard_normal(array.shape)) for array in arrays
                  if array is not None]
    results = []
    for create_graph in (True, False):
        leaves = _leaves(nbprop, arrays)
        given = [leaf for leaf in leaves if leaf is not None]
        gradients = nbprop.autograd.grad(_loss(nbprop, name, leaves), given, create_graph=True)
        product = sum((gradient * direction).sum() for gradient, direction in zip(gradients, directions))
        results.append(nbprop.autograd.grad(product, given, create_graph=create_graph))
    assert all(second.requires_grad for second in results[0])
    _assert_same(*results)


def test_gradients_of_a_frozen_weight_or_input_only():
    """Only what is asked for is recorded: second derivatives through the input alone (weight constant) and
    through the weight alone (input constant) equal the same entries of the full computation."""
    function, arrays = CASES["conv2d_strided_dilated_grouped"]
    x, w, b = arrays
    direction = nbprop.tensor(np.random.default_rng(7).standard_normal(w.shape))
    full = _leaves(nbprop, arrays)
    (gradient,) = nbprop.autograd.grad(_loss(nbprop, "conv2d_strided_dilated_grouped", full), [full[1]],
                                       create_graph=True)
    expected = nbprop.autograd.grad((gradient * direction).sum(), [full[1]])[0].numpy()
    partial = [nbprop.tensor(x), nbprop.tensor(w, requires_grad=True), nbprop.tensor(b)]
    (gradient,) = nbprop.autograd.grad(_loss(nbprop, "conv2d_strided_dilated_grouped", partial), [partial[1]],
                                       create_graph=True)
    (second,) = nbprop.autograd.grad((gradient * direction).sum(), [partial[1]])
    np.testing.assert_array_equal(second.numpy(), expected)


@pytest.mark.parametrize("name", ["conv1d_strided_padded_dilated_grouped", "conv2d_depthwise", "conv2d_pointwise",
                                  "conv_transpose2d", "conv_transpose2d_grouped"])
def test_second_derivatives_on_the_opaque_device(name):
    """The recorded backward reaches array data only through the device: the first gradients and, behind them,
    the second derivatives in the input, the weight and the output gradient are bit-identical to the CPU's."""
    install()
    function, (x, w, b) = CASES[name]
    with nbprop.no_grad():
        shape = tuple(function(nbprop.nn.functional, nbprop.tensor(x), nbprop.tensor(w),
                               None if b is None else nbprop.tensor(b)).shape)

    def first_gradients(x, w, direction):
        bias = None if b is None else nbprop.tensor(b, device=x.device)
        output = function(nbprop.nn.functional, x, w, bias)
        return nbprop.autograd.grad(output * output, [x, w], direction, create_graph=True)

    assert_same_on_opaque(first_gradients, x, w, np.random.default_rng(5).standard_normal(shape))
