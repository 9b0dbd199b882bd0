"""create_graph=True through the losses of ops/cross_entropy.py and the normalisations of ops/norm.py and
ops/batch_norm.py: each mode's recorded backward against central differences (gradgradcheck), PyTorch's second
derivatives, the fast path."""

import numpy as np
import opaque_device
import pytest

import nbprop
import nbprop.nn.functional as F

RNG = np.random.default_rng(11)
TARGETS = np.array([0, 2, 1, 2, 1])  # five rows of three classes
SPATIAL_TARGETS = np.array([[0, 2], [1, 1]])  # (N, d) = (2, 2) for an input (2, 3, 2)
CLASS_WEIGHT = np.array([0.7, 1.3, 2.1])


def leaf(*shape, low=-1.5, high=1.5):
    return nbprop.tensor(RNG.uniform(low, high, shape), requires_grad=True)


def constant(array, device="cpu", dtype=None):
    return nbprop.tensor(np.asarray(array), dtype=dtype, device=device)


def probabilities(*shape, dim=1):
    values = RNG.uniform(0.1, 1.0, shape)
    return nbprop.tensor(values / values.sum(dim, keepdims=True), requires_grad=True)


# Each case: (function of the differentiable inputs, the differentiable inputs as arrays). Every option that
# changes a backward formula has its own case; shapes are small, so a case takes milliseconds. The constants
# (targets; class weights and running statistics in `dtype`) are made on `device`.
def _cases(device="cpu", dtype=nbprop.float64):
    weight = constant(CLASS_WEIGHT, device, dtype)
    targets, spatial = constant(TARGETS, device), constant(SPATIAL_TARGETS, device)
    running_mean, running_var = constant([0.3, -0.2, 0.1], device, dtype), constant([0.8, 1.5, 1.1], device, dtype)

    def running():  # batch_norm in training updates these in place: fresh ones per call
        return constant(np.zeros(3), device, dtype), constant(np.ones(3), device, dtype)

    logits, spatial_logits, image = (5, 3), (2, 3, 2), (4, 3, 2)
    return {
        # cross_entropy with class indices
        "cross_entropy_mean": (lambda x: F.cross_entropy(x, targets), [logits]),
        "cross_entropy_sum": (lambda x: F.cross_entropy(x, targets, reduction="sum"), [logits]),
        "cross_entropy_none": (lambda x: F.cross_entropy(x, targets, reduction="none"), [logits]),
        "cross_entropy_weight": (lambda x: F.cross_entropy(x, targets, weight=weight), [logits]),
        "cross_entropy_ignore_index": (lambda x: F.cross_entropy(x, targets, weight=weight, ignore_index=1),
                                       [logits]),
        "cross_entropy_ignore_index_none": (
            lambda x: F.cross_entropy(x, targets, ignore_index=2, reduction="none"), [logits]),
        "cross_entropy_label_smoothing": (
            lambda x: F.cross_entropy(x, targets, weight=weight, ignore_index=1, label_smoothing=0.3), [logits]),
        "cross_entropy_label_smoothing_sum": (
            lambda x: F.cross_entropy(x, targets, label_smoothing=0.2, reduction="sum"), [logits]),
        "cross_entropy_spatial": (lambda x: F.cross_entropy(x, spatial, weight=weight, label_smoothing=0.1),
                                  [spatial_logits]),
        "cross_entropy_one_row": (lambda x: F.cross_entropy(x, constant(1, device), reduction="none"), [(3,)]),
        # cross_entropy with class probabilities: gradients for the logits and the probabilities
        "probability_cross_entropy_mean": (lambda x, p: F.cross_entropy(x, p), [logits, "probabilities"]),
        "probability_cross_entropy_none": (lambda x, p: F.cross_entropy(x, p, weight=weight, reduction="none"),
                                           [logits, "probabilities"]),
        "probability_cross_entropy_smoothing": (
            lambda x, p: F.cross_entropy(x, p, weight=weight, label_smoothing=0.25, reduction="sum"),
            [logits, "probabilities"]),
        "probability_cross_entropy_spatial": (lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1),
                                              [spatial_logits, "probabilities"]),
        # nll_loss (linear in its input: times a function of x so a second derivative in x remains)
        "nll_loss_mean": (lambda x: F.nll_loss(x * x, targets), [logits]),
        "nll_loss_none": (lambda x: F.nll_loss(x, targets, reduction="none") * x.sum(), [logits]),
        "nll_loss_weight_ignore_index": (
            lambda x: F.nll_loss(x.exp(), targets, weight=weight, ignore_index=0), [logits]),
        "nll_loss_sum_spatial": (lambda x: F.nll_loss(x * x, spatial, weight=weight, reduction="sum"),
                                 [spatial_logits]),
        # batch_norm: batch statistics (with or without running ones to update), running statistics
        "batch_norm_training_affine": (
            lambda x, w, b: F.batch_norm(x, *running(), w, b, training=True), [image, (3,), (3,)]),
        "batch_norm_training": (lambda x: F.batch_norm(x, None, None, training=True), [image]),
        "batch_norm_eval_affine": (
            lambda x, w, b: F.batch_norm(x, running_mean, running_var, w, b) * x, [image, (3,), (3,)]),
        "batch_norm_eval": (lambda x: F.batch_norm(x, running_mean, running_var) * x, [image]),
        "batch_norm_2d_input": (lambda x, w: F.batch_norm(x, None, None, w, training=True), [(4, 3), (3,)]),
        # layer_norm: elementwise affine, weight only, none
        "layer_norm_affine": (lambda x, w, b: F.layer_norm(x, (3, 2), w, b), [image, (3, 2), (3, 2)]),
        "layer_norm_weight_only": (lambda x, w: F.layer_norm(x, (2,), w), [image, (2,)]),
        "layer_norm": (lambda x: F.layer_norm(x, (3, 2)), [image]),
        # rms_norm: with and without weight
        "rms_norm_weight": (lambda x, w: F.rms_norm(x, (3, 2), w), [image, (3, 2)]),
        "rms_norm": (lambda x: F.rms_norm(x, (2,), eps=1e-3), [image]),
        # group_norm: affine or not, one group, a group per channel
        "group_norm_affine": (lambda x, w, b: F.group_norm(x, 2, w, b), [(3, 4, 2), (4,), (4,)]),
        "group_norm": (lambda x: F.group_norm(x, 1), [image]),
        "group_norm_per_channel": (lambda x, w: F.group_norm(x, 3, w), [image, (3,)]),
    }


CASES = _cases()


def _inputs(shapes):
    """Fresh float64 leaves: one per shape, "probabilities" standing for a target of the previous one's shape."""
    inputs = []
    for shape in shapes:
        inputs.append(probabilities(*inputs[-1].shape) if shape == "probabilities" else leaf(*shape))
    return inputs


@pytest.mark.parametrize("name", CASES)
def test_gradgradcheck(name):
    function, shapes = CASES[name]
    assert nbprop.gradgradcheck(function, _inputs(shapes))


@pytest.mark.parametrize("name", CASES)
def test_first_gradients_of_a_recorded_pass_equal_the_fast_path(name):
    function, shapes = CASES[name]
    inputs = _inputs(shapes)
    output = function(*inputs)
    grad_output = nbprop.tensor(RNG.standard_normal(output.shape), requires_grad=True)
    fast = nbprop.autograd.grad(function(*inputs), inputs, grad_output)
    recorded = nbprop.autograd.grad(function(*inputs), inputs, grad_output, create_graph=True)
    for a, b in zip(fast, recorded):
        assert b.requires_grad and not a.requires_grad
        np.testing.assert_allclose(b.detach().numpy(), a.numpy(), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------- against PyTorch


def _second_derivatives(module, function, inputs, seed):
    """d/d inputs of sum(v * d sum(u * f) / d inputs), u and v seeded standard normals: a Hessian-vector
    product through the recorded backward, also in the output gradient u."""
    rng = np.random.default_rng(seed)
    output = function(*inputs)
    u = module.tensor(rng.standard_normal(tuple(output.shape)), requires_grad=True)
    firsts = module.autograd.grad(output, inputs, u, create_graph=True)
    products = sum((first * module.tensor(rng.standard_normal(tuple(first.shape)))).sum() for first in firsts)
    # materialize_grads: a bias's gradient sum(u) reaches no second derivative
    return module.autograd.grad(products, list(inputs) + [u], materialize_grads=True)


TORCH_CASES = {
    "cross_entropy": ("cross_entropy", dict(weight="weight", ignore_index=1, label_smoothing=0.3), (5, 3)),
    "cross_entropy_spatial_none": ("cross_entropy", dict(reduction="none", label_smoothing=0.1), (2, 3, 2)),
    "probability_cross_entropy": ("cross_entropy", dict(weight="weight", label_smoothing=0.2), (5, 3)),
    "nll_loss": ("nll_loss", dict(weight="weight", ignore_index=0), (5, 3)),
    "batch_norm_training": ("batch_norm", dict(training=True), (4, 3, 2)),
    "batch_norm_eval": ("batch_norm", dict(training=False), (4, 3, 2)),
    "layer_norm": ("layer_norm", dict(normalized_shape=(3, 2)), (4, 3, 2)),
    "rms_norm": ("rms_norm", dict(normalized_shape=(3, 2), eps=1e-4), (4, 3, 2)),
    "group_norm": ("group_norm", dict(num_groups=2), (3, 4, 2)),
}


def _torch_case(name, module, arrays):
    """The case's function and differentiable inputs in `module` (nbprop or torch), from the same arrays."""
    op, options, _ = TORCH_CASES[name]
    functional = module.nn.functional
    options = {key: module.tensor(CLASS_WEIGHT) if value == "weight" else value for key, value in options.items()}
    x, second, third = (module.tensor(array, requires_grad=True) for array in arrays)
    if name.startswith("probability"):
        return (lambda x, p: functional.cross_entropy(x, p, **options)), [x, second]
    if op in ("cross_entropy", "nll_loss"):
        target = module.tensor(SPATIAL_TARGETS if x.ndim == 3 else TARGETS)
        if op == "nll_loss":  # of exp(x): nll_loss alone has no second derivative in its input
            return (lambda x: functional.nll_loss(x.exp(), target, **options)), [x]
        return (lambda x: functional.cross_entropy(x, target, **options)), [x]
    if op == "batch_norm":
        running = (module.tensor(np.array([0.3, -0.2, 0.1])), module.tensor(np.array([0.8, 1.5, 1.1])))
        return (lambda x, w, b: functional.batch_norm(x, *running, w, b, **options)), [x, second, third]
    if op == "group_norm":
        return (lambda x, w, b: functional.group_norm(x, weight=w, bias=b, **options)), [x, second, third]
    if op == "rms_norm":
        return (lambda x, w: functional.rms_norm(x, weight=w, **options)), [x, second]
    return (lambda x, w, b: functional.layer_norm(x, weight=w, bias=b, **options)), [x, second, third]


@pytest.mark.torch
@pytest.mark.parametrize("name", TORCH_CASES)
def test_second_derivatives_equal_pytorchs(name):
    import torch

    op, _, shape = TORCH_CASES[name]
    channels = shape[1] if op in ("batch_norm", "group_norm") else None
    parameter_shape = (channels,) if channels else shape[1:]
    if name.startswith("probability"):
        target = RNG.uniform(0.1, 1.0, shape)
        arrays = [RNG.standard_normal(shape), target / target.sum(1, keepdims=True), np.zeros(1)]
    else:
        arrays = [RNG.standard_normal(shape), RNG.uniform(0.5, 1.5, parameter_shape),
                  RNG.standard_normal(parameter_shape)]
    ours = _second_derivatives(nbprop, *_torch_case(name, nbprop, arrays), seed=3)
    theirs = _second_derivatives(torch, *_torch_case(name, torch, arrays), seed=3)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------------- edge cases


def test_cross_entropy_logits_changed_in_place_fail_only_a_recorded_backward():
    """The fast backward reads no logits (PyTorch's log_softmax keeps its output, not its input), so changing
    them in place stays allowed there; the recorded backward differentiates through them and says so."""
    x = leaf(5, 3)
    logits = x * 1.0
    loss = F.cross_entropy(logits, constant(TARGETS))
    logits.add_(1.0)
    (gradient,) = nbprop.autograd.grad(loss, x, retain_graph=True)
    assert gradient.shape == (5, 3)
    with pytest.raises(RuntimeError, match="cross_entropy backward with create_graph=True: the input"):
        nbprop.autograd.grad(loss, x, create_graph=True)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_every_row_ignored_gives_zero_recorded_gradients_as_the_fast_path(reduction):
    x = leaf(3, 3)
    targets = constant([1, 1, 1])
    for op in (F.cross_entropy, F.nll_loss):
        fast = nbprop.autograd.grad(op(x, targets, ignore_index=1, reduction=reduction), x)[0]
        (recorded,) = nbprop.autograd.grad(op(x, targets, ignore_index=1, reduction=reduction), x,
                                           create_graph=True)
        np.testing.assert_array_equal(recorded.detach().numpy(), np.zeros((3, 3)))
        np.testing.assert_array_equal(fast.numpy(), np.zeros((3, 3)))


@pytest.mark.parametrize("name", ["cross_entropy_label_smoothing", "probability_cross_entropy_smoothing",
                                  "nll_loss_weight_ignore_index", "batch_norm_eval_affine",
                                  "batch_norm_training_affine", "layer_norm_affine", "rms_norm_weight",
                                  "group_norm_affine"])
def test_float32_recorded_gradients_keep_the_dtype_and_match_the_fast_path(name):
    function, shapes = _cases(dtype=nbprop.float32)[name]
    inputs = [tensor.detach().to(nbprop.float32).requires_grad_() for tensor in _inputs(shapes)]
    fast = nbprop.autograd.grad(function(*inputs).sum(), inputs)
    recorded = nbprop.autograd.grad(function(*inputs).sum(), inputs, create_graph=True)
    for a, b in zip(fast, recorded):
        assert b.dtype == nbprop.float32
        np.testing.assert_allclose(b.detach().numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


# Cases whose second derivatives reach every input (a bias's first gradient depends on no input).
OPAQUE_CASES = ["cross_entropy_label_smoothing", "cross_entropy_ignore_index_none", "probability_cross_entropy_none",
                "nll_loss_weight_ignore_index", "batch_norm_2d_input", "batch_norm_eval_affine",
                "layer_norm_weight_only", "rms_norm_weight", "group_norm_per_channel"]


@pytest.mark.parametrize("name", OPAQUE_CASES)
def test_recorded_backward_runs_on_the_opaque_device(name):
    """The recorded backward reaches array data only through the device: on the opaque device the first
    gradients (create_graph=True) and the second ones behind them are bit-identical to the CPU's."""
    opaque_device.install()
    arrays = [tensor.detach().numpy() for tensor in _inputs(CASES[name][1])]

    def first_gradients(*inputs):
        device = inputs[0].device
        output = _cases(device)[name][0](*inputs)
        grad_output = nbprop.tensor(np.random.default_rng(5).standard_normal(output.shape), device=device)
        return nbprop.autograd.grad(output, inputs, grad_output, create_graph=True)

    opaque_device.assert_same_on_opaque(first_gradients, *arrays)
