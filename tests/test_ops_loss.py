"""Loss functions: values and gradients against PyTorch, gradcheck, extremes, ignored rows, determinism, errors."""

import math
import warnings

import numpy as np
import pytest
from helpers import arrays, assert_close, leaf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop
from nbprop.kernels import loss as kernels
from nbprop.ops import loss

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
FLOATS = [np.float64, np.float32]


def _compare(ours, theirs, arguments, differentiable, dtype=np.float64, **keywords):
    """ours(*tensors, **keywords) and theirs(*torch tensors, **keywords): equal values and input gradients.

    PyTorch computes on the same values in float64 also for float32 inputs: where a loss cancels, PyTorch's
    own float32 result is further from the exact value than float32's tolerance (BCE with logits at x = -6.5,
    t = 1.2e-7, pos_weight 0.75: torch float32 off by 3.8e-4 relative, nbprop by 3e-8), so the reference is
    its float64 result and nbprop's float32 result must be within 1e-5 of that.
    """
    import torch

    def convert(value, wanted=dtype):
        return value.astype(dtype).astype(wanted) if isinstance(value, np.ndarray) and value.dtype.kind == "f" \
            else value

    our_inputs, their_inputs = [], []
    for index, value in enumerate(arguments):
        wanted = index in differentiable
        array = isinstance(value, np.ndarray)
        our_inputs.append(nbprop.tensor(convert(value), requires_grad=wanted) if array else value)
        their_inputs.append(torch.tensor(convert(value, np.float64), requires_grad=wanted) if array else value)
    our_keywords = {key: nbprop.tensor(convert(v)) if isinstance(v, np.ndarray) else v
                    for key, v in keywords.items()}
    their_keywords = {key: torch.tensor(convert(v, np.float64)) if isinstance(v, np.ndarray) else v
                      for key, v in keywords.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ours(*our_inputs, **our_keywords)
        expected = theirs(*their_inputs, **their_keywords)
    assert result.dtype == np.dtype(dtype)
    assert_close(result, expected.detach().numpy(), **TOLERANCE[dtype])
    if not differentiable:
        return
    grad_output = np.cos(np.arange(expected.numel()) + 0.5).reshape(expected.shape).astype(dtype)
    result.backward(nbprop.tensor(grad_output))
    expected.backward(torch.tensor(grad_output.astype(np.float64)))
    for index in differentiable:
        assert_close(our_inputs[index].grad, their_inputs[index].grad.numpy(), **TOLERANCE[dtype])


# ------------------------------------------------------------------------------------- cross-entropy


@st.composite
def class_cases(draw, dtype=np.float64):
    """Logits (C,), (N, C) or (N, C, d1[, d2]) with N and d possibly 0, int64 targets, and the options."""
    classes = draw(st.integers(1, 5))
    layout = draw(st.sampled_from(["unbatched", "batched", "spatial"]))
    batch = draw(st.integers(0, 4))
    extra = tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=2))) if layout == "spatial" else ()
    shape = (classes,) if layout == "unbatched" else (batch, classes) + extra
    target_shape = () if layout == "unbatched" else (batch,) + extra
    logits = draw(arrays(shape, dtype, -5.0, 5.0))
    target = draw(hnp.arrays(np.int64, target_shape, elements=st.integers(0, classes - 1)))
    options = dict(reduction=draw(REDUCTIONS), ignore_index=draw(st.sampled_from([-100, 0, 2])))
    if draw(st.booleans()):
        options["weight"] = draw(arrays((classes,), dtype, 0.1, 2.0))
    return logits, target, options


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@given(case=class_cases(), label_smoothing=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_cross_entropy_class_targets_match_torch(dtype, case, label_smoothing):
    import torch.nn.functional as F

    logits, target, options = case
    _compare(loss.cross_entropy, F.cross_entropy, [logits, target], {0}, dtype, label_smoothing=label_smoothing,
             **options)
    if logits.ndim == 1 and logits.shape[0] > 1 and not label_smoothing:
        # PyTorch also takes a one-element 1-D target for a 1-D input, and gives a 0-d loss (its backward then
        # fails with a size mismatch, so only the values are compared).
        _compare(loss.cross_entropy, F.cross_entropy, [logits, target.reshape(1)], set(), dtype, **options)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@given(case=class_cases(), label_smoothing=st.sampled_from([0.0, 0.2, 1.0]), data=st.data())
def test_cross_entropy_probability_targets_match_torch(dtype, case, label_smoothing, data):
    import torch.nn.functional as F

    logits, _, options = case
    options.pop("ignore_index")
    probabilities = data.draw(arrays(logits.shape, np.float64, 0.0, 1.0))
    _compare(loss.cross_entropy, F.cross_entropy, [logits, probabilities], {0, 1}, dtype,
             label_smoothing=label_smoothing, **options)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@given(case=class_cases())
def test_nll_loss_matches_torch(dtype, case):
    import torch.nn.functional as F

    log_probabilities, target, options = case
    _compare(loss.nll_loss, F.nll_loss, [log_probabilities, target], {0}, dtype, **options)


# ------------------------------------------------------------------------------ binary cross-entropy


@st.composite
def binary_cases(draw, low, high):
    """Inputs in [low, high], targets in [0, 1], and a weight / pos_weight broadcasting against them."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    options = {"reduction": draw(REDUCTIONS)}
    for name in ("weight", "pos_weight"):
        if shape and draw(st.booleans()):
            trailing = shape[-draw(st.integers(1, len(shape))):]
            options[name] = draw(arrays(tuple(size if draw(st.booleans()) else 1 for size in trailing),
                                        np.float64, 0.1, 3.0))
    return draw(arrays(shape, np.float64, low, high)), draw(arrays(shape, np.float64, 0.0, 1.0)), options


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@given(case=binary_cases(0.0, 1.0))
def test_binary_cross_entropy_matches_torch(dtype, case):
    import torch.nn.functional as F

    probabilities, target, options = case
    options.pop("pos_weight", None)
    _compare(loss.binary_cross_entropy, F.binary_cross_entropy, [probabilities, target], {0, 1}, dtype, **options)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@given(case=binary_cases(-8.0, 8.0))
def test_binary_cross_entropy_with_logits_matches_torch(dtype, case):
    import torch.nn.functional as F

    logits, target, options = case
    _compare(loss.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, [logits, target], {0, 1},
             dtype, **options)


# -------------------------------------------------------------------- regression and KL divergence

# Values that put differences exactly on the kinks (0 and +-1, +-0.5, +-2 for the thresholds drawn below).
KINKY = st.one_of(st.floats(-3.0, 3.0), st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0]))


@st.composite
def regression_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    target_shape = shape if draw(st.integers(0, 3)) else shape[draw(st.integers(0, len(shape))):]
    return (draw(hnp.arrays(np.float64, shape, elements=KINKY)),
            draw(hnp.arrays(np.float64, target_shape, elements=KINKY)), draw(REDUCTIONS))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name, options", [
    ("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 2.0}), ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {}),
    ("huber_loss", {"delta": 0.5}), ("huber_loss", {"delta": 2.0}),
])
@settings(max_examples=25)
@given(case=regression_cases())
def test_regression_losses_match_torch(dtype, name, options, case):
    import torch.nn.functional as F

    prediction, target, reduction = case
    _compare(getattr(loss, name), getattr(F, name), [prediction, target], {0, 1}, dtype, reduction=reduction,
             **options)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
@given(case=regression_cases(), data=st.data())
@settings(max_examples=20)
def test_weighted_regression_losses_match_torch(name, case, data):
    import torch.nn.functional as F

    prediction, target, reduction = case
    weight = data.draw(arrays(prediction.shape, np.float64, 0.1, 2.0))
    _compare(getattr(loss, name), getattr(F, name), [prediction, target], {0, 1}, reduction=reduction,
             weight=weight)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("log_target", [False, True])
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), data=st.data(),
       reduction=st.sampled_from(["mean", "sum", "none", "batchmean"]))
def test_kl_div_matches_torch(dtype, log_target, shape, data, reduction):
    import torch.nn.functional as F

    log_probabilities = data.draw(arrays(shape, np.float64, -5.0, 0.0))
    if log_target:
        target = data.draw(arrays(shape, np.float64, -5.0, 0.0))
    else:  # exact zeros: 0 * log 0 counts as 0. No subnormal targets: the gradient of target * log(target) goes
        # through 1 / target, which a subnormal float32 target overflows (1 / 4.2e-45 > 3.4e38).
        normal = float(np.finfo(dtype).tiny)
        target = data.draw(hnp.arrays(np.float64, shape, elements=st.one_of(st.just(0.0), st.floats(normal, 1.0))))
    _compare(loss.kl_div, F.kl_div, [log_probabilities, target], {0, 1}, dtype, reduction=reduction,
             log_target=log_target)


@pytest.mark.torch
@pytest.mark.parametrize("name, threshold", [("smooth_l1_loss", 0.5), ("huber_loss", 0.5), ("l1_loss", None),
                                             ("smooth_l1_loss", 0.0)])
def test_gradients_at_the_kinks_and_at_infinity_match_torch(name, threshold):
    import torch.nn.functional as F

    options = {} if threshold is None else {"beta" if name == "smooth_l1_loss" else "delta": threshold}
    prediction = np.array([0.0, 0.5, -0.5, 0.25, 1.0, -math.inf, math.inf, -0.0])
    _compare(getattr(loss, name), getattr(F, name), [prediction, np.zeros(8)], {0, 1}, reduction="none",
             **options)


# ------------------------------------------------------------------------------------------ gradcheck


def _gradcheck_cases():
    rng = np.random.default_rng(3)
    logits, target = rng.standard_normal((3, 4)), nbprop.tensor([1, 3, 0])
    spatial, spatial_target = rng.standard_normal((2, 3, 2)), nbprop.tensor([[0, 2], [1, 1]])
    weight = nbprop.tensor(rng.uniform(0.5, 2.0, 4))
    probabilities = rng.uniform(0.05, 0.95, (3, 4))
    difference = rng.uniform(0.1, 0.4, (3, 4)) * np.where(rng.random((3, 4)) < 0.5, -1, 1)
    far = difference * 10  # away from the thresholds 0.5 and 1
    return {
        "cross_entropy": (lambda x: loss.cross_entropy(x, target, weight=weight, label_smoothing=0.2), [logits]),
        "cross_entropy spatial ignore": (lambda x: loss.cross_entropy(x, spatial_target, ignore_index=1,
                                                                      reduction="none"), [spatial]),
        "cross_entropy probabilities": (lambda x, p: loss.cross_entropy(x, p, weight=weight, label_smoothing=0.1),
                                        [logits, probabilities]),
        "nll_loss": (lambda x: loss.nll_loss(x, target, weight=weight, reduction="sum"), [logits]),
        "binary_cross_entropy": (lambda x, t: loss.binary_cross_entropy(x, t), [probabilities, probabilities[::-1]]),
        "binary_cross_entropy_with_logits": (
            lambda x, t: loss.binary_cross_entropy_with_logits(x, t, weight=weight, pos_weight=weight * 2),
            [logits, probabilities]),
        "mse_loss": (lambda x, t: loss.mse_loss(x, t), [logits, probabilities]),
        "l1_loss": (lambda x: loss.l1_loss(x, nbprop.zeros(3, 4, dtype=nbprop.float64)), [difference]),
        "smooth_l1_loss": (lambda x: loss.smooth_l1_loss(x, nbprop.zeros(6, 4, dtype=nbprop.float64), beta=0.5),
                           [np.concatenate([difference, far])]),
        "huber_loss": (lambda x: loss.huber_loss(x, nbprop.zeros(6, 4, dtype=nbprop.float64), delta=1.0,
                                                 reduction="sum"), [np.concatenate([difference, far])]),
        "kl_div": (lambda x, t: loss.kl_div(x, t, reduction="batchmean"), [np.log(probabilities), probabilities]),
        "kl_div log_target": (lambda x, t: loss.kl_div(x, t, reduction="sum", log_target=True),
                              [np.log(probabilities), np.log(probabilities[::-1])]),
    }


@pytest.mark.parametrize("name", sorted(_gradcheck_cases()))
def test_gradcheck(name):
    function, arrays_ = _gradcheck_cases()[name]
    assert nbprop.gradcheck(function, [leaf(array) for array in arrays_])


# --------------------------------------------------------------------------------------------- extremes


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_cross_entropy_is_stable_at_extreme_logits(dtype, scale):
    logits = leaf(np.array([[1.0, -1.0, 0.5], [-1.0, -1.0, -2.0], [1.0, 1.0, -1.0]]) * scale, dtype)
    result = loss.cross_entropy(logits, nbprop.tensor([1, 0, 2]), reduction="sum")
    # Row losses: 2s (one-hot softmax on class 0), log 2 (a tie), 2s + log 2.
    assert_close(result, np.array(4 * scale + 2 * math.log(2.0), dtype), rtol=1e-6)
    result.backward()
    expected = np.array([[1.0, -1.0, 0.0], [-0.5, 0.5, 0.0], [0.5, 0.5, -1.0]], dtype)
    assert_close(logits.grad, expected)
    smoothed = leaf(logits.detach().numpy(), dtype)
    value = loss.cross_entropy(smoothed, nbprop.tensor([1, 0, 2]), label_smoothing=0.3)
    value.backward()
    assert np.isfinite(value.item()) and np.isfinite(smoothed.grad.numpy()).all()


@pytest.mark.torch
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_extreme_logits_match_torch(dtype, scale):
    import torch.nn.functional as F

    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 5)) * scale
    target = rng.integers(0, 5, 6)
    for options in [{}, {"label_smoothing": 0.2, "weight": rng.uniform(0.5, 2.0, 5)}]:
        _compare(loss.cross_entropy, F.cross_entropy, [logits, target], {0}, dtype, **options)
    _compare(loss.cross_entropy, F.cross_entropy, [logits, rng.dirichlet(np.ones(5), 6)], {0}, dtype)
    probabilities = rng.random((6, 5))
    _compare(loss.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, [logits, probabilities],
             {0}, dtype, pos_weight=rng.uniform(0.5, 2.0, 5))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_binary_cross_entropy_with_logits_is_stable_at_extremes(dtype, scale):
    logits = leaf(np.array([scale, -scale, scale, -scale]), dtype)
    target = nbprop.tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype))
    result = loss.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert_close(result, np.array([0.0, 0.0, scale, scale], dtype))
    result.sum().backward()
    assert_close(logits.grad, np.array([0.0, 0.0, 1.0, -1.0], dtype))


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_every_row_ignored_follows_torch(reduction, label_smoothing):
    import torch.nn.functional as F

    logits, target = np.random.default_rng(6).standard_normal((3, 4)), np.array([2, 2, 2])
    _compare(loss.cross_entropy, F.cross_entropy, [logits, target], {0}, ignore_index=2, reduction=reduction,
             label_smoothing=label_smoothing)
    _compare(loss.nll_loss, F.nll_loss, [logits, target], {0}, ignore_index=2, reduction=reduction)


def test_every_row_ignored_gives_nan_mean_and_zero_gradient():
    logits = leaf(np.ones((2, 3)))
    result = loss.cross_entropy(logits, nbprop.tensor([-100, -100]))
    assert math.isnan(result.item())
    result.backward()
    assert_close(logits.grad, np.zeros((2, 3)))
    assert loss.cross_entropy(logits, nbprop.tensor([-100, -100]), reduction="sum").item() == 0.0


# ---------------------------------------------------------------------------------------- determinism


def _run_twice(function, *arrays_):
    results = []
    for _ in range(2):
        inputs = [leaf(array) if array.dtype.kind == "f" else nbprop.tensor(array) for array in arrays_]
        value = function(*inputs)
        value.backward()
        results.append([value.detach().numpy().copy()] + [x.grad.numpy().copy() for x in inputs if x.grad is not None])
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)


def test_deterministic_above_the_parallel_threshold():
    rng = np.random.default_rng(7)
    rows, classes = 700, 100  # 70,000 elements: the parallel variants
    logits, target = rng.standard_normal((rows, classes)) * 3, rng.integers(0, classes, rows)
    probabilities = rng.random((rows, classes))
    weight = nbprop.tensor(rng.uniform(0.5, 2.0, classes))
    _run_twice(lambda x: loss.cross_entropy(x, nbprop.tensor(target), weight=weight, label_smoothing=0.1), logits)
    _run_twice(lambda x, p: loss.cross_entropy(x, p), logits, probabilities)
    _run_twice(lambda x: loss.nll_loss(x, nbprop.tensor(target)), logits)
    _run_twice(lambda x, t: loss.binary_cross_entropy_with_logits(x, t, pos_weight=weight), logits, probabilities)
    _run_twice(lambda x, t: loss.binary_cross_entropy(x, t), probabilities, probabilities[::-1].copy())


def test_serial_and_parallel_variants_agree_bitwise():
    rng = np.random.default_rng(8)
    logits, target = rng.standard_normal((700, 100)), rng.integers(0, 100, 700)
    weight = rng.uniform(0.5, 2.0, 100)
    outputs = {}
    for variant in ("serial", "parallel"):
        buffers = [np.empty((700, 100)), np.empty(700), np.empty(700), np.empty(700), np.empty(2), np.empty(1),
                   np.empty(1, np.int64)]
        getattr(kernels.cross_entropy_forward, variant)(logits, target, weight, -100, 0.1, kernels.MEAN, *buffers)
        gradient, status = np.empty((700, 100)), np.empty(1, np.int64)
        getattr(kernels.cross_entropy_backward, variant)(np.ones(1), target, weight, -100, 0.1, kernels.MEAN,
                                                         buffers[0], buffers[2], buffers[4], gradient, status)
        assert status[0] == -1
        outputs[variant] = buffers[:6] + [gradient]
    for serial, parallel in zip(outputs["serial"], outputs["parallel"]):
        np.testing.assert_array_equal(serial, parallel)


# --------------------------------------------------------------------------------------------- errors


def _tensors():
    return nbprop.randn(3, 4), nbprop.tensor([0, 1, 2])


@pytest.mark.filterwarnings("ignore:.*different to the input size")
@pytest.mark.parametrize("call, error, message", [
    (lambda x, t: loss.cross_entropy(x, nbprop.tensor([0, 5, 1])), IndexError, "Target 5 is out of bounds"),
    (lambda x, t: loss.cross_entropy(x, nbprop.tensor([0, -1, 1])), IndexError, "Target -1 is out of bounds"),
    (lambda x, t: loss.nll_loss(x, nbprop.tensor([0, 1, 7])), IndexError, "nll_loss: Target 7 is out of bounds"),
    (lambda x, t: loss.cross_entropy(x, t.double()), RuntimeError, "expected target dtype to be Long"),
    (lambda x, t: loss.cross_entropy(x, nbprop.tensor([0, 1])), ValueError, r"batch_size \(3\) to match .* \(2\)"),
    (lambda x, t: loss.cross_entropy(x, nbprop.zeros(3, 2, dtype=nbprop.int64)), RuntimeError, "multi-target"),
    (lambda x, t: loss.cross_entropy(nbprop.randn(2, 3, 4), nbprop.zeros(2, 5, dtype=nbprop.int64)), RuntimeError,
     r"Expected target size \[2, 4\], got \[2, 5\]"),
    (lambda x, t: loss.cross_entropy(nbprop.randn(3), nbprop.tensor([1, 2])), ValueError, "1D target must have"),
    (lambda x, t: loss.cross_entropy(nbprop.tensor(1.0), nbprop.tensor(0)), ValueError, "1 or more dimensions"),
    (lambda x, t: loss.cross_entropy(x, t, weight=nbprop.ones(3)), RuntimeError, "for all 4 classes"),
    (lambda x, t: loss.cross_entropy(x, t, weight=nbprop.ones(4).double()), RuntimeError, "dtype"),
    (lambda x, t: loss.cross_entropy(x, t, label_smoothing=1.5), RuntimeError, "between 0.0 and 1.0"),
    (lambda x, t: loss.cross_entropy(x, nbprop.zeros(3, 4), ignore_index=1), RuntimeError, "ignore_index"),
    (lambda x, t: loss.cross_entropy(nbprop.randn(3), nbprop.tensor([0, 1, 0])), RuntimeError, "floating point"),
    (lambda x, t: loss.cross_entropy(x, t, reduction="avg"), ValueError, "avg is not a valid value for reduction"),
    (lambda x, t: loss.cross_entropy(t, t), RuntimeError, "floating point input"),
    (lambda x, t: loss.cross_entropy(x.numpy(), t), TypeError, "input must be a Tensor"),
    (lambda x, t: loss.binary_cross_entropy(x, x), RuntimeError, "input should be between 0 and 1"),
    (lambda x, t: loss.binary_cross_entropy(nbprop.full((2,), math.nan), nbprop.zeros(2)), RuntimeError,
     "between 0 and 1"),
    (lambda x, t: loss.binary_cross_entropy(nbprop.zeros(2), nbprop.full((2,), 2.0)), RuntimeError,
     "target should be between 0 and 1"),
    (lambda x, t: loss.binary_cross_entropy(nbprop.zeros(2), nbprop.zeros(3)), ValueError, "different to the input"),
    (lambda x, t: loss.binary_cross_entropy_with_logits(x, nbprop.zeros(4)), ValueError, "must be the same as"),
    (lambda x, t: loss.binary_cross_entropy_with_logits(x, nbprop.zeros(3, 4), pos_weight=nbprop.ones(3)),
     RuntimeError, "binary_cross_entropy_with_logits"),
    (lambda x, t: loss.binary_cross_entropy_with_logits(x, nbprop.zeros(3, 4), weight=nbprop.ones(2, 3, 4)),
     RuntimeError, "does not broadcast to the input's shape"),
    (lambda x, t: loss.mse_loss(x, nbprop.zeros(2, 4)), RuntimeError, "mse_loss"),
    (lambda x, t: loss.mse_loss(x, x, weight=nbprop.ones(4)), ValueError, "Weights and input must have the same"),
    (lambda x, t: loss.smooth_l1_loss(x, x, beta=-1.0), RuntimeError, "negative values for beta"),
    (lambda x, t: loss.huber_loss(x, x, delta=0.0), RuntimeError, "non-positive values for delta"),
    (lambda x, t: loss.kl_div(x, x, reduction="batch"), ValueError, "not a valid value for reduction"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(*_tensors())


def test_warnings_and_legacy_reduction_flags():
    x, target = nbprop.randn(3, 4), nbprop.randn(4)
    with pytest.warns(UserWarning, match="different to the input size"):
        broadcast = loss.mse_loss(x, target, reduction="none")
    assert broadcast.shape == (3, 4)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        summed = loss.l1_loss(x, x * 2, size_average=False)
    assert_close(summed, np.abs(x.numpy()).sum(), rtol=1e-5)
    with pytest.warns(UserWarning, match="batchmean"):
        loss.kl_div(x, x.exp())
    classes = nbprop.tensor([0, 1, 2])
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert loss.cross_entropy(x, classes, reduce=False).shape == (3,)
