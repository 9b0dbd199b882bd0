"""Double backward (create_graph=True) through activations, softmax/log_softmax/logsumexp, atan2, hypot,
remainder and the losses: gradgradcheck in float64, second derivatives against PyTorch, first-order gradients
of the recorded pass against the fast kernels, in-place and extreme cases, and the opaque device."""

import numpy as np
import pytest
from helpers import assert_close, leaf, to_torch
from opaque_device import assert_same_on_opaque, install

import nbprop

# Inputs away from every kink: no zero for relu / leaky_relu / elu, none on hardtanh's bounds (-0.5, 1.2) or
# softplus's threshold (beta x = 1.5), no a / b near an integer for remainder.
X = [[-1.7, -0.6, -0.15], [0.2, 0.9, 2.3]]
Y = [[0.4, -1.3, 0.8], [1.1, -0.35, -2.2]]
ROW = [0.9, 1.6, -0.7]
SPACE = np.random.default_rng(3).uniform(-2.0, 2.0, (2, 3, 2)).tolist()
PROBABILITY = [[0.15, 0.4, 0.85], [0.6, 0.3, 0.75]]
TARGET = [[0.0, 1.0, 0.3], [0.9, 0.5, 0.1]]
BCE_TARGET = [[0.05, 0.95, 0.3], [0.9, 0.5, 0.1]]  # inside [0, 1] by more than gradcheck's steps
SOFT_TARGET = [[0.2, 0.5, 0.3], [0.1, 0.6, 0.3]]
WEIGHT = [0.5, 1.5, 2.0]
POS_WEIGHT = [3.0, 0.4, 1.0]
SHIFT = [[-0.3, 0.25, 1.9], [0.7, -1.6, 0.05]]  # target of the regression losses: |X - SHIFT| on both sides of 1

# name: (function of (library, *tensors), where library is nbprop or torch; input arrays; which require grad)
CASES = {
    "relu": (lambda lib, x: lib.nn.functional.relu(x), [X], [True]),
    "leaky_relu": (lambda lib, x: lib.nn.functional.leaky_relu(x, 0.2), [X], [True]),
    "leaky_relu_default": (lambda lib, x: lib.nn.functional.leaky_relu(x), [X], [True]),
    "elu": (lambda lib, x: lib.nn.functional.elu(x, 0.7), [X], [True]),
    "elu_default": (lambda lib, x: lib.nn.functional.elu(x), [X], [True]),
    "selu": (lambda lib, x: lib.nn.functional.selu(x), [X], [True]),
    "gelu": (lambda lib, x: lib.nn.functional.gelu(x), [X], [True]),
    "gelu_tanh": (lambda lib, x: lib.nn.functional.gelu(x, approximate="tanh"), [X], [True]),
    "silu": (lambda lib, x: lib.nn.functional.silu(x), [X], [True]),
    "softplus": (lambda lib, x: lib.nn.functional.softplus(x), [X], [True]),
    "softplus_beta_threshold": (lambda lib, x: lib.nn.functional.softplus(x, 2.0, 1.5), [X], [True]),
    "hardtanh": (lambda lib, x: lib.nn.functional.hardtanh(x), [X], [True]),
    "hardtanh_bounds": (lambda lib, x: lib.nn.functional.hardtanh(x, -0.5, 1.2), [X], [True]),
    "softmax_dim0": (lambda lib, x: lib.nn.functional.softmax(x, 0), [SPACE], [True]),
    "softmax_dim1": (lambda lib, x: lib.nn.functional.softmax(x, 1), [SPACE], [True]),
    "softmax_last": (lambda lib, x: lib.nn.functional.softmax(x, -1), [SPACE], [True]),
    "softmax_0d": (lambda lib, x: lib.nn.functional.softmax(x, 0), [0.7], [True]),
    "log_softmax_dim0": (lambda lib, x: lib.nn.functional.log_softmax(x, 0), [SPACE], [True]),
    "log_softmax_dim1": (lambda lib, x: lib.nn.functional.log_softmax(x, 1), [SPACE], [True]),
    "log_softmax_last": (lambda lib, x: lib.nn.functional.log_softmax(x, -1), [SPACE], [True]),
    "logsumexp_dim": (lambda lib, x: lib.logsumexp(x, 1), [SPACE], [True]),
    "logsumexp_dims_keepdim": (lambda lib, x: lib.logsumexp(x, (0, 2), keepdim=True), [SPACE], [True]),
    "logsumexp_all": (lambda lib, x: lib.logsumexp(x, (0, 1, 2)), [SPACE], [True]),
    "logsumexp_0d": (lambda lib, x: lib.logsumexp(x, 0), [0.7], [True]),
    "atan2": (lambda lib, a, b: lib.atan2(a, b), [X, Y], [True, True]),
    "atan2_broadcast": (lambda lib, a, b: lib.atan2(a, b), [Y, ROW], [True, True]),
    "hypot": (lambda lib, a, b: lib.hypot(a, b), [X, Y], [True, True]),
    "hypot_broadcast": (lambda lib, a, b: lib.hypot(a, b), [Y, ROW], [True, True]),
    "remainder": (lambda lib, a, b: lib.remainder(a, b), [Y, ROW], [True, True]),
    "remainder_divisor_only": (lambda lib, a, b: lib.remainder(a, b), [Y, ROW], [False, True]),
    "binary_cross_entropy": (lambda lib, x, t: lib.nn.functional.binary_cross_entropy(x, t),
                             [PROBABILITY, BCE_TARGET], [True, True]),
    "binary_cross_entropy_none": (lambda lib, x, t: lib.nn.functional.binary_cross_entropy(x, t, reduction="none"),
                                  [PROBABILITY, BCE_TARGET], [True, True]),
    "binary_cross_entropy_weight_sum": (
        lambda lib, x, t, w: lib.nn.functional.binary_cross_entropy(x, t, w, reduction="sum"),
        [PROBABILITY, BCE_TARGET, WEIGHT], [True, True, False]),
    "binary_cross_entropy_input_only": (lambda lib, x, t: lib.nn.functional.binary_cross_entropy(x, t),
                                        [PROBABILITY, BCE_TARGET], [True, False]),
    "bce_with_logits": (lambda lib, x, t: lib.nn.functional.binary_cross_entropy_with_logits(x, t),
                        [X, TARGET], [True, True]),
    "bce_with_logits_none": (
        lambda lib, x, t: lib.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none"),
        [X, TARGET], [True, True]),
    "bce_with_logits_weight_sum": (
        lambda lib, x, t, w: lib.nn.functional.binary_cross_entropy_with_logits(x, t, w, reduction="sum"),
        [X, TARGET, WEIGHT], [True, True, False]),
    "bce_with_logits_pos_weight": (
        lambda lib, x, t, p: lib.nn.functional.binary_cross_entropy_with_logits(x, t, pos_weight=p),
        [X, TARGET, POS_WEIGHT], [True, True, False]),
    "bce_with_logits_weight_pos_weight_none": (
        lambda lib, x, t, w, p: lib.nn.functional.binary_cross_entropy_with_logits(x, t, w, reduction="none",
                                                                                   pos_weight=p),
        [X, TARGET, WEIGHT, POS_WEIGHT], [True, True, False, False]),
    "mse_loss": (lambda lib, x, t: lib.nn.functional.mse_loss(x, t), [X, SHIFT], [True, True]),
    "mse_loss_weight": (lambda lib, x, t, w: lib.nn.functional.mse_loss(x, t, weight=w),
                        [X, SHIFT, PROBABILITY], [True, True, True]),
    "l1_loss_sum": (lambda lib, x, t: lib.nn.functional.l1_loss(x, t, reduction="sum"), [X, SHIFT], [True, True]),
    "l1_loss_weight": (lambda lib, x, t, w: lib.nn.functional.l1_loss(x, t, weight=w),
                       [X, SHIFT, PROBABILITY], [True, True, True]),
    "smooth_l1_loss": (lambda lib, x, t: lib.nn.functional.smooth_l1_loss(x, t), [X, SHIFT], [True, True]),
    "smooth_l1_loss_beta0": (lambda lib, x, t: lib.nn.functional.smooth_l1_loss(x, t, beta=0.0),
                             [X, SHIFT], [True, True]),
    "huber_loss": (lambda lib, x, t: lib.nn.functional.huber_loss(x, t, reduction="none", delta=0.7),
                   [X, SHIFT], [True, True]),
    "kl_div_batchmean": (lambda lib, x, t: lib.nn.functional.kl_div(x, t, reduction="batchmean"),
                         [X, SOFT_TARGET], [True, True]),
    "kl_div_log_target": (lambda lib, x, t: lib.nn.functional.kl_div(x, t, reduction="sum", log_target=True),
                          [X, Y], [True, True]),
}


def _leaves(arrays, grads, dtype=np.float64):
    return [leaf(array, dtype=dtype, requires_grad=grad) for array, grad in zip(arrays, grads)]


def _call(name, library, tensors):
    return CASES[name][0](library, *tensors)


@pytest.mark.parametrize("name", CASES)
def test_gradgradcheck(name):
    _, arrays, grads = CASES[name]
    assert nbprop.gradgradcheck(lambda *tensors: _call(name, nbprop, tensors), _leaves(arrays, grads))


def _second_derivatives(library, name, tensors, first_gradients):
    """grad(sum(w * grad(f, inputs, v)), inputs + v): the second derivatives in the inputs and in v."""
    output = _call(name, library, tensors)
    wanted = [tensor for tensor in tensors if tensor.requires_grad]
    rng = np.random.default_rng(1)
    as_tensor = nbprop.tensor if library is nbprop else library.from_numpy
    direction = as_tensor(rng.standard_normal(tuple(output.shape))).requires_grad_()
    gradients = library.autograd.grad(output, wanted, direction, create_graph=True)
    first_gradients.extend(gradients)
    total = sum((gradient * as_tensor(rng.standard_normal(tuple(gradient.shape)))).sum() for gradient in gradients)
    second = library.autograd.grad(total, wanted + [direction], materialize_grads=True)
    if library is nbprop:
        return second
    # PyTorch materializes unused gradients as ZeroTensors, which refuse .numpy().
    return [library.zeros(value.shape, dtype=value.dtype) if value._is_zerotensor() else value for value in second]


@pytest.mark.torch
@pytest.mark.parametrize("name", CASES)
def test_second_derivatives_match_torch(name):
    import torch

    _, arrays, grads = CASES[name]
    ours = _leaves(arrays, grads)
    theirs = [to_torch(tensor) for tensor in ours]
    our_first, their_first = [], []
    our_second = _second_derivatives(nbprop, name, ours, our_first)
    their_second = _second_derivatives(torch, name, theirs, their_first)
    # PyTorch's binary_cross_entropy double backward divides by (x + 1e-12)^2 (1 - x + 1e-12)^2 instead of the
    # first backward's max(x (1 - x), 1e-12): off by ~1e-11 relative in each term, which shows where the terms
    # cancel (ours is exact there: test_binary_cross_entropy_second_derivatives_in_closed_form).
    atol = 1e-10 if name.startswith("binary_cross_entropy") and grads[0] else 1e-12
    for actual, expected in zip(our_first + list(our_second), their_first + list(their_second), strict=True):
        assert_close(actual, expected, rtol=1e-10, atol=atol)


def test_binary_cross_entropy_second_derivatives_in_closed_form():
    """With g the output gradient, w and u the directions for the input and target gradients:
    d/dx = g w (x^2 - 2 x t + t) / (x (1 - x))^2 - g u / (x (1 - x)), d/dt = -g w / (x (1 - x)),
    d/dg = w (x - t) / (x (1 - x)) - u log(x / (1 - x))."""
    x, t = leaf(PROBABILITY), leaf(BCE_TARGET)
    rng = np.random.default_rng(4)
    g, w, u = (rng.standard_normal((2, 3)) for _ in range(3))
    direction = leaf(g)
    first = nbprop.autograd.grad(nbprop.nn.functional.binary_cross_entropy(x, t, reduction="none"), [x, t],
                                 direction, create_graph=True)
    total = (first[0] * nbprop.tensor(w)).sum() + (first[1] * nbprop.tensor(u)).sum()
    second_x, second_t, second_g = nbprop.autograd.grad(total, [x, t, direction])
    p, q = np.array(PROBABILITY), np.array(BCE_TARGET)
    variance = p * (1 - p)
    assert_close(second_x, g * w * (p * p - 2 * p * q + q) / variance**2 - g * u / variance)
    assert_close(second_t, -g * w / variance)
    assert_close(second_g, w * (p - q) / variance - u * np.log(p / (1 - p)))


@pytest.mark.parametrize("name", CASES)
def test_recorded_first_gradients_equal_the_fast_path(name):
    _, arrays, grads = CASES[name]
    for dtype, tolerance in ((np.float64, dict(rtol=1e-13, atol=1e-15)), (np.float32, dict(rtol=1e-6, atol=1e-7))):
        tensors = _leaves(arrays, grads, dtype)
        wanted = [tensor for tensor in tensors if tensor.requires_grad]
        output = _call(name, nbprop, tensors)
        direction = nbprop.tensor(np.random.default_rng(2).standard_normal(tuple(output.shape)).astype(dtype))
        fast = nbprop.autograd.grad(output, wanted, direction, retain_graph=True)
        recorded = nbprop.autograd.grad(output, wanted, direction, create_graph=True)
        for actual, expected in zip(recorded, fast, strict=True):
            assert actual.dtype == expected.dtype == dtype
            assert_close(actual, expected, **tolerance)


@pytest.mark.torch
@pytest.mark.parametrize("function", [
    lambda F, x: F.elu(x), lambda F, x: F.selu(x), lambda F, x: F.softplus(x, 0.5, 3.0), lambda F, x: F.gelu(x),
    lambda F, x: F.gelu(x, approximate="tanh"), lambda F, x: F.silu(x),
], ids=["elu", "selu", "softplus", "gelu", "gelu_tanh", "silu"])
def test_second_derivative_of_extreme_inputs_is_finite_and_torchs(function):
    """The branch where() drops (elu's exp of a large x) must not turn into 0 * inf = NaN."""
    import torch

    x = leaf([-800.0, -30.0, 30.0, 800.0])
    (gradient,) = nbprop.autograd.grad(function(nbprop.nn.functional, x).sum(), [x], create_graph=True)
    (second,) = nbprop.autograd.grad(gradient.sum(), [x])
    theirs = to_torch(x)
    (their_gradient,) = torch.autograd.grad(function(torch.nn.functional, theirs).sum(), [theirs], create_graph=True)
    (their_second,) = torch.autograd.grad(their_gradient.sum(), [theirs])
    assert np.isfinite(gradient.detach().numpy()).all() and np.isfinite(second.numpy()).all()
    assert_close(gradient, their_gradient)
    assert_close(second, their_second, rtol=1e-10, atol=1e-300)


@pytest.mark.torch
def test_bce_at_the_clamped_ends():
    """x = 0 or 1 hits PyTorch's 1e-12 floor of x (1 - x): the recorded first gradient is PyTorch's finite
    value, and its derivative in the output gradient is that same value (the gradient is linear in it; PyTorch's
    own double backward gives 1 + 1e-12 times less there, see test_second_derivatives_match_torch)."""
    import torch

    x, t = leaf([0.0, 1.0, 0.5]), leaf([0.3, 0.6, 0.2], requires_grad=False)
    direction = leaf([1.0, 1.0, 1.0])
    (ours,) = nbprop.autograd.grad(nbprop.nn.functional.binary_cross_entropy(x, t, reduction="none"), [x],
                                   direction, create_graph=True)
    (our_second,) = nbprop.autograd.grad(ours.sum(), [direction])
    theirs_x = to_torch(x)
    (theirs,) = torch.autograd.grad(torch.nn.functional.binary_cross_entropy(theirs_x, to_torch(t), reduction="none"),
                                    [theirs_x], to_torch(direction))
    assert np.isfinite(ours.detach().numpy()).all()
    assert_close(ours, theirs)
    assert_close(our_second, ours.detach())


@pytest.mark.parametrize("name", ["elu", "selu", "silu", "leaky_relu", "hardtanh"])
@pytest.mark.torch
def test_in_place_activation_differentiates_twice(name):
    """The copy of the input that an in-place write keeps for backward still stands for the input on the tape."""
    import torch

    x, theirs = leaf(X), to_torch(leaf(X))
    direction, their_direction = leaf(Y), to_torch(leaf(Y))
    (ours,) = nbprop.autograd.grad(getattr(nbprop.nn.functional, name)(x * 1.0, inplace=True), [x], direction,
                                   create_graph=True)
    (expected,) = torch.autograd.grad(getattr(torch.nn.functional, name)(theirs * 1.0, inplace=True), [theirs],
                                      their_direction, create_graph=True)
    our_second = nbprop.autograd.grad((ours * ours).sum(), [direction, x], materialize_grads=True)
    their_second = torch.autograd.grad((expected * expected).sum(), [their_direction, theirs],
                                       materialize_grads=True)
    assert_close(ours, expected)
    for a, b in zip(our_second, their_second):
        assert_close(a, b)


def test_floor_divide_has_no_derivative_in_a_recorded_pass_either():
    a, b = leaf(Y), leaf(ROW)
    with pytest.raises(RuntimeError, match="derivative for floor_divide is not implemented"):
        nbprop.autograd.grad(nbprop.floor_divide(a, b).sum(), [a, b], create_graph=True)


@pytest.mark.parametrize("name", ["elu", "gelu_tanh", "softplus_beta_threshold", "leaky_relu", "softmax_dim1",
                                  "log_softmax_dim0", "logsumexp_dims_keepdim", "atan2_broadcast", "hypot",
                                  "remainder", "binary_cross_entropy_weight_sum", "bce_with_logits_pos_weight"])
def test_second_derivatives_on_the_opaque_device(name):
    """The recorded backward pass reaches array data only through the device: same bits as on the CPU. The
    output gradient is a leaf too, so that the recorded kernels of piecewise-linear gradients run backward."""
    install()
    _, arrays, grads = CASES[name]
    arrays = [np.array(array, dtype=np.float64) for array in arrays]
    with nbprop.no_grad():
        shape = tuple(_call(name, nbprop, [nbprop.tensor(array) for array in arrays]).shape)

    def first_gradients(*tensors):
        *inputs, direction = tensors
        wanted = [tensor for tensor in inputs if tensor.requires_grad]
        gradients = nbprop.autograd.grad(_call(name, nbprop, inputs), wanted, direction, create_graph=True)
        return tuple(gradient * tensor for gradient, tensor in zip(gradients, wanted))

    direction = np.random.default_rng(5).standard_normal(shape)
    assert_same_on_opaque(first_gradients, *arrays, direction, grads=grads + [True])
