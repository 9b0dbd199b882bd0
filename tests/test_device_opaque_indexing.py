"""Indexing, embedding and every loss on the opaque test device: forward and backward reach their data only through
the device, give the CPU's results bit for bit (the same kernels), and hostile indices raise the CPU's errors."""

import contextlib

import numpy as np
import opaque_device
import pytest
from opaque_device import assert_same_on_opaque

import nbprop
import nbprop.nn
import nbprop.nn.functional as F


@pytest.fixture(scope="module", autouse=True)
def opaque():
    return opaque_device.install()


def _normal(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _on(device, array):
    return nbprop.tensor(array, device=device)


# ------------------------------------------------------------------------------------------------- getitem

BASIC_KEYS = {
    "int": 1, "negative int": -1, "slice": slice(1, 3), "strided slices": (slice(None, None, 2), slice(1, None, 2)),
    "None and Ellipsis": (None, Ellipsis, slice(None, None, 3)), "every dimension": (2, 1, 3),
    "int then None": (-1, None), "empty slice": slice(2, 2),
}


@pytest.mark.parametrize("key", BASIC_KEYS.values(), ids=BASIC_KEYS.keys())
def test_basic_getitem(key):
    assert_same_on_opaque(lambda x: x[key], _normal((3, 4, 5)))
    assert_same_on_opaque(lambda x: x[key], _normal((3, 4, 5)), sum_backward=True)


# Keys built from host data (lists, NumPy arrays): parsed on the host, gathered on the device.
HOST_KEYS = {
    "list": [0, 2, 2, -1], "array": np.array([[1, 0], [2, 2]]), "list in dim 1": (slice(None), [3, 0, 3]),
    "two lists": ([0, 2], [1, 1]), "separated lists": ([0, 2], slice(None), [4, 1]), "empty list": [],
    "bool": True, "mask array": np.array([True, False, True]), "int32 array": np.array([2, 0], np.int32),
}


@pytest.mark.parametrize("key", HOST_KEYS.values(), ids=HOST_KEYS.keys())
def test_getitem_with_host_keys(key):
    assert_same_on_opaque(lambda x: x[key], _normal((3, 4, 5)))


INDEX_TENSOR_KEYS = {
    # (function of x and the index tensor, index array); repeated positions accumulate their gradients.
    "rows": (lambda x, i: x[i], np.array([2, 0, 2, -3])),
    "matrix of rows": (lambda x, i: x[i], np.array([[1, 1], [0, 2]])),
    "columns": (lambda x, i: x[:, i], np.array([3, 3, 0])),
    "last dimension, after a slice": (lambda x, i: x[1:, ..., i], np.array([4, 0, 4])),
    "0-d tensor, as an int": (lambda x, i: x[i], np.array(-2)),
    "int32": (lambda x, i: x[i, 1], np.array([1, 2], np.int32)),
    "empty": (lambda x, i: x[i], np.zeros(0, np.int64)),
}


@pytest.mark.parametrize("case", INDEX_TENSOR_KEYS.values(), ids=INDEX_TENSOR_KEYS.keys())
def test_getitem_with_an_index_tensor(case):
    function, index = case
    assert_same_on_opaque(function, _normal((3, 4, 5)), index)
    assert_same_on_opaque(function, _normal((3, 4, 5)), index, sum_backward=True)


MASKS = {
    "rows": (lambda x, m: x[m], np.array([True, False, True])),
    "leading two dimensions": (lambda x, m: x[m], np.arange(12).reshape(3, 4) % 3 == 0),
    "dimension 1": (lambda x, m: x[:, m], np.array([False, True, True, False])),
    "every element": (lambda x, m: x[m], _normal((3, 4, 5)) > 0),
    "selects nothing": (lambda x, m: x[m], np.zeros(3, bool)),
}


@pytest.mark.parametrize("case", MASKS.values(), ids=MASKS.keys())
def test_getitem_with_a_boolean_mask(case):
    function, mask = case
    assert_same_on_opaque(function, _normal((3, 4, 5)), mask)


def test_getitem_with_a_mask_made_on_the_device():
    assert_same_on_opaque(lambda x: x[x > 0.5], _normal((3, 4, 5)))


MIXED = {
    "int, index tensor, slice": lambda x, i, m: x[1, i, 1:4],
    "index tensors apart": lambda x, i, m: x[i[:2], :, i[1:]],
    "index tensor and mask": lambda x, i, m: x[i[:1], m],
    "None, mask, Ellipsis": lambda x, i, m: x[None, :, m, ...],
    "index tensor and list": lambda x, i, m: x[[2, 0, 1], i],
    "chained": lambda x, i, m: x[i][:, m][1:, 0],
}


@pytest.mark.parametrize("function", MIXED.values(), ids=MIXED.keys())
def test_getitem_with_mixed_keys(function):
    index, mask = np.array([2, 0, 2]), np.array([True, False, True, True])
    assert_same_on_opaque(function, _normal((3, 4, 5)), index, mask)


def test_an_index_tensor_on_the_cpu_indexes_an_opaque_tensor():
    index, mask = nbprop.tensor([2, 0, 2]), nbprop.tensor([True, False, True, True])
    data = _normal((3, 4))
    for key in (index, (slice(None), mask), (index, mask)):
        expected = nbprop.tensor(data)[key]
        actual = _on("opaque", data)[key]
        assert actual.device == "opaque"
        np.testing.assert_array_equal(actual.cpu().numpy(), expected.numpy())


# ------------------------------------------------------------------------------------------------- setitem

SETITEM = {
    # (key as a function of the index and mask tensors, shape of the value)
    "int": (lambda i, m: 1, (5,)), "slices": (lambda i, m: (slice(0, 2), slice(None, None, 2)), (2, 2, 5)),
    "broadcast value": (lambda i, m: (slice(None), 2), (5,)), "index tensor": (lambda i, m: i, (3, 4, 5)),
    "repeated positions": (lambda i, m: i[::2], (1, 4, 5)), "mask": (lambda i, m: (slice(None), m), (3, 3, 5)),
    "mixed": (lambda i, m: (i, slice(1, 3), i), (3, 2)), "list": (lambda i, m: ([0, 2], 1), (2, 5)),
}


@pytest.mark.parametrize("case", SETITEM.values(), ids=SETITEM.keys())
def test_setitem_with_a_tensor_value(case):
    key, value_shape = case

    def function(x, value, index, mask):
        y = x * 1.0
        y[key(index, mask)] = value
        return y

    assert_same_on_opaque(function, _normal((3, 4, 5)), _normal(value_shape, seed=1), np.array([2, 0, 2]),
                          np.array([True, False, True, True]))


@pytest.mark.parametrize("case", SETITEM.values(), ids=SETITEM.keys())
@pytest.mark.parametrize("number", [2.5, -3])
def test_setitem_with_a_number(case, number):
    key, _ = case

    def function(x, index, mask):
        y = x * 1.0
        y[key(index, mask)] = number
        return y * y

    assert_same_on_opaque(function, _normal((3, 4, 5)), np.array([2, 0, 2]), np.array([True, False, True, True]))


def test_setitem_into_an_integer_tensor_casts_as_pytorch_does():
    def function(x, index):
        y = x + 0
        y[index] = -1  # wraps in uint8
        y[0] = 7.9
        return y

    assert_same_on_opaque(function, np.arange(12, dtype=np.uint8).reshape(4, 3), np.array([1, 3]))


# ----------------------------------------------------------------------------------------------- embedding


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding(padding_idx, dtype):
    indices = np.array([[0, 2, 5, 2], [5, 5, 1, 0]])
    assert_same_on_opaque(lambda weight, index: F.embedding(index, weight, padding_idx), _normal((6, 3), dtype),
                          indices)
    assert_same_on_opaque(lambda weight, index: F.embedding(index, weight, padding_idx), _normal((6, 3), dtype),
                          indices.astype(np.int32)[:, ::2], sum_backward=True)


def test_embedding_layer_on_the_device():
    outputs = {}
    for device in ("cpu", "opaque"):
        nbprop.manual_seed(0)
        layer = nbprop.nn.Embedding(5, 4, padding_idx=1, device=device)
        assert layer.weight.device == device
        output = layer(_on(device, np.array([[1, 4], [4, 0]])))
        output.backward(_on(device, _normal((2, 2, 4))))
        outputs[device] = (layer.weight.detach().cpu().numpy(), output.detach().cpu().numpy(),
                           layer.weight.grad.cpu().numpy())
    assert not outputs["cpu"][0][1].any()  # the padding row starts at zero
    for actual, expected in zip(outputs["opaque"], outputs["cpu"]):
        np.testing.assert_array_equal(actual, expected)


# -------------------------------------------------------------------------------------------------- losses

REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regression_losses(reduction, dtype):
    data, target = _normal((4, 5), dtype) * 2, _normal((4, 5), dtype, 1)
    target[0, :3] = data[0, :3]  # zero differences: the kinks of l1, smooth_l1 and huber
    target[1, :2] = data[1, :2] + [1.0, -0.5]  # |d| equal to beta and delta
    weight = np.abs(_normal((4, 5), dtype, 2))
    for function in (
        lambda x, t: F.mse_loss(x, t, reduction=reduction), lambda x, t: F.l1_loss(x, t, reduction=reduction),
        lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction), lambda x, t: F.smooth_l1_loss(x, t, beta=0.0),
        lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction, beta=0.5),
        lambda x, t: F.huber_loss(x, t, reduction=reduction), lambda x, t: F.huber_loss(x, t, reduction, delta=0.5),
    ):
        assert_same_on_opaque(function, data, target)
    for function in (F.mse_loss, F.l1_loss, F.huber_loss):
        assert_same_on_opaque(lambda x, t, w: function(x, t, reduction=reduction, weight=w), data, target, weight)
    # A broadcast target (with PyTorch's warning).
    with pytest.warns(UserWarning, match="different to the input size"):
        assert_same_on_opaque(lambda x, t: F.mse_loss(x, t, reduction=reduction), data, target[:1])


CLASS_SHAPES = [((6, 5), (6,)), ((5,), ()), ((3, 5, 2, 2), (3, 2, 2))]


@pytest.mark.parametrize("shapes", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_with_class_targets(shapes, reduction, dtype):
    input_shape, target_shape = shapes
    logits = _normal(input_shape, dtype) * 3
    target = np.random.default_rng(1).integers(0, 5, target_shape)
    weight = np.abs(_normal((5,), dtype, 2)) + 0.1
    options = [{}, {"weight": True}, {"ignore_index": 3}, {"label_smoothing": 0.2},
               {"weight": True, "ignore_index": int(target.reshape(-1)[0]), "label_smoothing": 0.1}]
    for option in options:
        keywords = {key: value for key, value in option.items() if key != "weight"}
        if "weight" in option:
            assert_same_on_opaque(lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction, **keywords),
                                  logits, target, weight, grads=[True, False, False])
        else:
            assert_same_on_opaque(lambda x, t: F.cross_entropy(x, t, reduction=reduction, **keywords), logits, target)
        assert_same_on_opaque(lambda x, t: F.cross_entropy(x, t, reduction=reduction, **keywords), logits, target,
                              sum_backward=True)


@pytest.mark.parametrize("shape", [(6, 5), (5,), (3, 5, 2)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_class_probabilities(shape, reduction):
    logits = _normal(shape) * 3
    probabilities = np.abs(_normal(shape, seed=1))
    probabilities /= probabilities.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    weight = np.abs(_normal((5,), seed=2)) + 0.1
    for smoothing in (0.0, 0.3):
        assert_same_on_opaque(lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing),
                              logits, probabilities)
        assert_same_on_opaque(lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction,
                                                              label_smoothing=smoothing),
                              logits, probabilities, weight, grads=[True, True, False])


@pytest.mark.parametrize("shapes", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(shapes, reduction):
    input_shape, target_shape = shapes
    log_probabilities = -np.abs(_normal(input_shape))
    target = np.random.default_rng(1).integers(0, 5, target_shape)
    weight = np.abs(_normal((5,), seed=2)) + 0.1
    assert_same_on_opaque(lambda x, t: F.nll_loss(x, t, reduction=reduction), log_probabilities, target)
    assert_same_on_opaque(lambda x, t, w: F.nll_loss(x, t, w, ignore_index=2, reduction=reduction),
                          log_probabilities, target, weight, grads=[True, False, False])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy(reduction, dtype):
    probabilities = 1 / (1 + np.exp(-_normal((4, 3), dtype)))
    probabilities[0, :2] = [0.0, 1.0]  # the clamped logs
    target = np.random.default_rng(1).uniform(size=(4, 3)).astype(dtype)
    weight = np.abs(_normal((3,), dtype, 2))
    assert_same_on_opaque(lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction), probabilities, target)
    assert_same_on_opaque(lambda x, t, w: F.binary_cross_entropy(x, t, w, reduction=reduction), probabilities,
                          target, weight, grads=[True, True, False])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_with_logits(reduction, dtype):
    logits = _normal((4, 3), dtype) * 4
    logits[0, :2] = [60.0, -60.0]
    target = np.random.default_rng(1).uniform(size=(4, 3)).astype(dtype)
    weight, pos_weight = np.abs(_normal((4, 1), dtype, 2)), np.abs(_normal((3,), dtype, 3)) + 0.5
    assert_same_on_opaque(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction), logits, target)
    assert_same_on_opaque(lambda x, t, w, p: F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction,
                                                                                pos_weight=p),
                          logits, target, weight, pos_weight, grads=[True, True, False, False])
    assert_same_on_opaque(lambda x, t, p: F.binary_cross_entropy_with_logits(x, t, reduction=reduction, pos_weight=p),
                          logits, target, pos_weight, grads=[True, True, False], sum_backward=True)


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    log_probabilities = -np.abs(_normal((4, 3)))
    target = -np.abs(_normal((4, 3), seed=1)) if log_target else np.abs(_normal((4, 3), seed=1))
    if not log_target:
        target[0, :2] = 0.0  # 0 * log 0 counts as 0
    with pytest.warns(UserWarning, match="batchmean") if reduction == "mean" else contextlib.nullcontext():
        assert_same_on_opaque(lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
                              log_probabilities, target)


# ---------------------------------------------------------------------------------------- hostile indices


def _raises_alike(error, function, match):
    """function(device) raises `error` (and a message matching `match`) on the CPU and on the opaque device."""
    for device in ("cpu", "opaque"):
        with pytest.raises(error, match=match):
            function(device)


HOSTILE = [5, -6, 10**9, -10**9, 2**62, -2**63]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_indices_raise_the_cpu_errors(value):
    data = _normal((5, 3))

    def getitem(device):
        return _on(device, data)[_on(device, np.array([0, value]))]

    def getitem_list(device):
        return _on(device, data)[:, [0, value]]

    def setitem(device):
        y = _on(device, data)
        y[_on(device, np.array([value, 1]))] = 1.0

    def embedding(device):
        return F.embedding(_on(device, np.array([1, value])), _on(device, data))

    def cross_entropy(device):
        return F.cross_entropy(_on(device, data.T), _on(device, np.array([0, value, 1])))

    def nll_loss(device):
        return F.nll_loss(_on(device, data.T), _on(device, np.array([value, 0, 1])), reduction="none")

    _raises_alike(IndexError, getitem, "out of bounds")
    _raises_alike(IndexError, getitem_list, "out of bounds")
    _raises_alike(IndexError, setitem, "out of bounds")
    _raises_alike(IndexError, embedding, f"index {value} out of range")
    _raises_alike(IndexError, cross_entropy, f"Target {value} is out of bounds")
    _raises_alike(IndexError, nll_loss, f"Target {value} is out of bounds")


def test_bad_keys_and_values_raise_the_cpu_errors():
    data = _normal((3, 4))
    _raises_alike(IndexError, lambda device: _on(device, data)[_on(device, np.array([True, False]))],
                  "shape of the mask")
    _raises_alike(IndexError, lambda device: _on(device, data)[_on(device, np.array([0.0]))], "int64 or bool")
    _raises_alike(IndexError, lambda device: _on(device, data)[1, 2, 3], "too many indices")
    _raises_alike(RuntimeError, lambda device: F.binary_cross_entropy(_on(device, data), _on(device, data)),
                  "should be between 0 and 1")


def test_indices_changed_in_place_after_the_forward_raise_in_backward():
    data = _normal((5, 3))

    def embedding(device):
        weight, index = nbprop.tensor(data, device=device, requires_grad=True), _on(device, np.array([0, 1]))
        output = F.embedding(index, weight)
        index.copy_(_on(device, np.array([2, 3])))
        output.sum().backward()

    def getitem(device):
        x, index = nbprop.tensor(data, device=device, requires_grad=True), _on(device, np.array([0, 1]))
        output = x[index]
        index += 10**9
        output.sum().backward()

    def cross_entropy(device):
        x, target = nbprop.tensor(data, device=device, requires_grad=True), _on(device, np.array([0, 1, 2, 0, 1]))
        loss = F.cross_entropy(x, target)
        target.copy_(_on(device, np.array([10**9] * 5)))
        loss.backward()

    for function in (embedding, getitem, cross_entropy):
        _raises_alike(RuntimeError, function, "modified by an in")
