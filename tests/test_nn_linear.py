"""Dense layers (Linear, Bilinear, Identity, Flatten), Dropout and Embedding: against PyTorch, NumPy and
central differences; the linear kernels' determinism; errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop
from nbprop.kernels._jit import PARALLEL_THRESHOLD
from nbprop.nn.container import Sequential
from nbprop.nn.dropout import Dropout
from nbprop.nn.embedding import Embedding
from nbprop.nn.linear import Bilinear, Flatten, Identity, Linear
from nbprop.ops.embedding import embedding
from nbprop.ops.linear import bilinear, dropout, linear
from nbprop.random import generator
from tests.helpers import assert_close, leaf

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
DTYPES = [np.float64, np.float32]


def _torch_dtype(dtype):
    import torch

    return torch.float64 if dtype == np.float64 else torch.float32


def _compare_with_torch(ours, theirs, arrays, dtype, train=True, integer_inputs=()):
    """Load theirs' state dict into ours; outputs, input gradients and parameter gradients must agree."""
    import torch

    theirs = theirs.to(_torch_dtype(dtype))
    ours.to(dtype)
    ours.load_state_dict(theirs.state_dict())
    ours.train(train)
    theirs.train(train)
    our_inputs, their_inputs = [], []
    for index, array in enumerate(arrays):
        if index in integer_inputs:
            our_inputs.append(nbprop.tensor(array))
            their_inputs.append(torch.tensor(array))
        else:
            our_inputs.append(leaf(array, dtype))
            their_inputs.append(torch.tensor(np.asarray(array, dtype), requires_grad=True))
    output, expected = ours(*our_inputs), theirs(*their_inputs)
    assert_close(output, expected.detach().numpy(), **TOLERANCE[dtype])
    grad_output = np.random.default_rng(3).standard_normal(expected.shape).astype(dtype)
    output.backward(nbprop.tensor(grad_output))
    expected.backward(torch.tensor(grad_output))
    for index, (our_input, their_input) in enumerate(zip(our_inputs, their_inputs)):
        if index not in integer_inputs:
            assert_close(our_input.grad, their_input.grad.numpy(), **TOLERANCE[dtype])
    their_parameters = dict(theirs.named_parameters())
    for name, parameter in ours.named_parameters():
        assert_close(parameter.grad, their_parameters[name].grad.numpy(), **TOLERANCE[dtype])


# ----------------------------------------------------------------------------------------------- Linear


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,), (0, 4), (1, 1, 1, 4)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_linear_matches_torch(dtype, shape, bias, train):
    import torch

    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal(shape)
    _compare_with_torch(Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), [x], dtype, train)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("features", [(0, 3), (3, 0), (1, 1), (70, 33)])
def test_linear_edge_features_match_torch(features):
    import torch

    torch.manual_seed(1)
    x = np.random.default_rng(1).standard_normal((6, features[0]))
    with pytest.warns(UserWarning) if 0 in features else _no_warning():
        ours = Linear(*features)
    _compare_with_torch(ours, torch.nn.Linear(*features), [x], np.float64)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


@pytest.mark.torch
def test_linear_non_contiguous_operands_match_torch():
    import torch

    rng = np.random.default_rng(2)
    x, weight, bias = rng.standard_normal((4, 6)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    ours = [leaf(x), leaf(weight), leaf(bias)]
    theirs = [torch.tensor(array, requires_grad=True) for array in (x, weight, bias)]
    # A strided input, a transposed weight (its transpose is contiguous), and a strided copy of it.
    result = linear(ours[0][:, ::2], ours[1].T, ours[2]) \
        + linear(ours[0][:, 1::2], ours[1].T[:, ::1] * 1, ours[2])
    expected = torch.nn.functional.linear(theirs[0][:, ::2], theirs[1].T, theirs[2]) \
        + torch.nn.functional.linear(theirs[0][:, 1::2], theirs[1].T * 1, theirs[2])
    assert_close(result, expected.detach().numpy())
    result.sum().backward()
    expected.sum().backward()
    for our, their in zip(ours, theirs):
        assert_close(our.grad, their.grad.numpy())


@settings(max_examples=25)
@given(st.lists(st.integers(0, 3), min_size=0, max_size=3), st.integers(1, 4), st.integers(0, 4),
       st.booleans())
def test_linear_forward_matches_numpy(lead, in_features, out_features, with_bias):
    rng = np.random.default_rng(len(lead) + in_features)
    x = rng.standard_normal(tuple(lead) + (in_features,))
    weight, bias = rng.standard_normal((out_features, in_features)), rng.standard_normal(out_features)
    result = linear(leaf(x), leaf(weight), leaf(bias) if with_bias else None)
    assert_close(result, x @ weight.T + (bias if with_bias else 0))


@pytest.mark.parametrize("shape", [(3, 4), (2, 2, 4), (4,)])
def test_linear_gradcheck(shape):
    rng = np.random.default_rng(4)
    x, weight = leaf(rng.standard_normal(shape)), leaf(rng.standard_normal((3, 4)))
    bias = leaf(rng.standard_normal(3))
    assert nbprop.gradcheck(linear, (x, weight, bias))
    assert nbprop.gradcheck(lambda x, weight: linear(x, weight), (x, weight))
    module = Linear(4, 2).double()
    assert nbprop.gradcheck(lambda x, *parameters: module(x), (x, *module.parameters()))


def test_linear_default_init_statistics():
    nbprop.manual_seed(0)
    layer = Linear(400, 300)
    bound = 1 / np.sqrt(400)
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert weight.dtype == np.float32 and np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3); 120,000 draws pin it to well under 1%.
    assert abs(weight.std() / (bound / np.sqrt(3)) - 1) < 0.01 and abs(weight.mean()) < 0.01 * bound
    assert Linear(2, 3, dtype=nbprop.float64).weight.dtype == np.float64
    nbprop.manual_seed(5)
    first = Linear(3, 3).weight.tolist()
    nbprop.manual_seed(5)
    assert Linear(3, 3).weight.tolist() == first


def test_linear_kernels_deterministic_serial_and_parallel():
    rng = np.random.default_rng(5)
    rows = PARALLEL_THRESHOLD // 64 + 3  # grad_output of rows * 70 elements runs the parallel column sum
    x, weight = leaf(rng.standard_normal((rows, 5))), leaf(rng.standard_normal((70, 5)))
    bias = leaf(rng.standard_normal(70))
    grad_output = nbprop.tensor(rng.standard_normal((rows, 70)))
    results = []
    for _ in range(2):
        for tensor in (x, weight, bias):
            tensor.grad = None
        output = linear(x, weight, bias)
        output.backward(grad_output)
        results.append([output.detach().numpy().copy()] + [t.grad.numpy().copy() for t in (x, weight, bias)])
    for first, second in zip(*results):
        assert np.array_equal(first, second)
    # The parallel column sum adds rows in order, exactly as the serial variant does.
    serial = np.empty(70)
    nbprop.backend.cpu.call("linear_bias_grad", grad_output.numpy(), serial, work=0)
    assert np.array_equal(serial, bias.grad.numpy())
    assert_close(bias.grad, grad_output.numpy().sum(axis=0))


def test_linear_errors():
    weight = nbprop.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"linear: input of shape \(2, 5\).*in_features = 4"):
        linear(nbprop.zeros(2, 5), weight)
    with pytest.raises(RuntimeError, match="same dtype"):
        linear(nbprop.zeros(2, 4, dtype=nbprop.float64), weight)
    with pytest.raises(RuntimeError, match="floating-point"):
        linear(nbprop.zeros(2, 4, dtype=nbprop.int64), weight)
    with pytest.raises(RuntimeError, match=r"bias must have shape \(3,\)"):
        linear(nbprop.zeros(2, 4), weight, nbprop.zeros(4))
    with pytest.raises(RuntimeError, match="weight must be 2-D"):
        linear(nbprop.zeros(2, 4), nbprop.zeros(4))
    with pytest.raises(TypeError, match="must be a Tensor"):
        linear(np.zeros((2, 4)), weight)
    with pytest.raises(ValueError, match="non-negative integer"):
        Linear(-1, 2)


# --------------------------------------------------------------------------------------------- Bilinear


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(5,), (2, 3), (0,), ()])
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_matches_torch(dtype, lead, bias):
    import torch

    torch.manual_seed(2)
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(lead + (3,)), rng.standard_normal(lead + (4,))]
    _compare_with_torch(Bilinear(3, 4, 2, bias=bias), torch.nn.Bilinear(3, 4, 2, bias=bias), arrays, dtype)


def test_bilinear_gradcheck_and_errors():
    rng = np.random.default_rng(7)
    first, second = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal((2, 2)))
    weight, bias = leaf(rng.standard_normal((2, 3, 2))), leaf(rng.standard_normal(2))
    assert nbprop.gradcheck(bilinear, (first, second, weight, bias))
    layer = Bilinear(3, 2, 2).double()
    assert nbprop.gradcheck(lambda a, b, *parameters: layer(a, b), (first, second, *layer.parameters()))
    bound = 1 / np.sqrt(3)
    assert np.abs(layer.weight.detach().numpy()).max() <= bound
    with pytest.raises(RuntimeError, match="do not match weight"):
        bilinear(first, second[:1], weight)
    with pytest.raises(RuntimeError, match="weight must be 3-D"):
        bilinear(first, second, bias)


# -------------------------------------------------------------------------------- Identity and Flatten


@pytest.mark.torch
def test_flatten_and_identity_match_torch():
    import torch

    x = np.random.default_rng(8).standard_normal((2, 3, 4, 5))
    for arguments in [(), (0,), (1, 2), (-3, -2), (2, -1)]:
        ours, theirs = Flatten(*arguments), torch.nn.Flatten(*arguments)
        _compare_with_torch(ours, theirs, [x], np.float64)
        assert repr(ours) == repr(theirs)
    _compare_with_torch(Identity(3, key=4), torch.nn.Identity(3, key=4), [x], np.float64)
    layer = Flatten()
    assert nbprop.gradcheck(lambda t: layer(t), (leaf(x[:, :2, :2, :2]),))


# ---------------------------------------------------------------------------------------------- Dropout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout_matches_seeded_mask(dtype, p):
    x = leaf(np.random.default_rng(9).standard_normal((40, 30)), dtype)
    layer = Dropout(p)
    nbprop.manual_seed(11)
    output = layer(x)
    nbprop.manual_seed(11)
    keep = generator().random((40, 30), dtype=dtype) >= p
    scale = 1 / (1 - p) if p < 1 else 0.0
    expected = x.detach().numpy() * keep * np.asarray(scale, dtype)
    assert_close(output, expected, **TOLERANCE[dtype])
    grad_output = np.random.default_rng(10).standard_normal((40, 30)).astype(dtype)
    output.backward(nbprop.tensor(grad_output))
    assert_close(x.grad, grad_output * keep * np.asarray(scale, dtype), **TOLERANCE[dtype])
    if p == 1:
        assert not output.detach().numpy().any()
    if p == 0:
        assert_close(output, x.detach().numpy())


def test_dropout_statistics_seed_and_eval():
    x = nbprop.ones(200, 500)
    nbprop.manual_seed(3)
    first = dropout(x, 0.3).numpy()
    nbprop.manual_seed(3)
    assert np.array_equal(first, dropout(x, 0.3).numpy())
    assert not np.array_equal(first, dropout(x, 0.3).numpy())
    # 100,000 Bernoulli(0.7) draws: the kept fraction is within 0.005 (3.5 standard deviations).
    assert abs((first != 0).mean() - 0.7) < 0.005
    assert np.allclose(first[first != 0], 1 / 0.7)
    layer = Dropout(0.3).eval()
    assert layer(x) is x
    assert dropout(x, 0.3, training=False) is x
    nan = nbprop.tensor([float("nan")] * 4)
    assert np.isnan(dropout(nan, 1.0).numpy()).all()  # x * 0, as in PyTorch


def test_dropout_inplace_gradcheck_and_errors():
    base = leaf(np.random.default_rng(12).standard_normal((3, 4)))

    def seeded(x):
        nbprop.manual_seed(0)
        return dropout(x, 0.4)

    assert nbprop.gradcheck(seeded, (base,))
    hidden = base * 1
    nbprop.manual_seed(0)
    result = dropout(hidden, 0.4, inplace=True)
    assert result is hidden
    assert_close(hidden, seeded(base))
    hidden.sum().backward()
    assert base.grad is not None
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            Dropout(bad)
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout(base, bad)
    with pytest.raises(RuntimeError, match="floating-point"):
        dropout(nbprop.arange(3), 0.5)


@pytest.mark.torch
def test_dropout_eval_matches_torch():
    import torch

    x = np.random.default_rng(13).standard_normal((4, 5))
    _compare_with_torch(Dropout(0.5), torch.nn.Dropout(0.5), [x], np.float64, train=False)


def test_dropout_parallel_deterministic():
    x = leaf(np.random.default_rng(14).standard_normal(PARALLEL_THRESHOLD + 17))
    runs = []
    for _ in range(2):
        x.grad = None
        nbprop.manual_seed(4)
        output = dropout(x, 0.25)
        output.sum().backward()
        runs.append((output.detach().numpy().copy(), x.grad.numpy().copy()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


# -------------------------------------------------------------------------------------------- Embedding


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
@pytest.mark.parametrize("indices", [[[0, 2, 2], [5, 3, 0]], [4, 4, 4, 1], [], 2])
def test_embedding_matches_torch(dtype, padding_idx, indices):
    import torch

    torch.manual_seed(3)
    indices = np.array(indices, dtype=np.int64)
    ours = Embedding(6, 3, padding_idx=padding_idx)
    theirs = torch.nn.Embedding(6, 3, padding_idx=padding_idx)
    _compare_with_torch(ours, theirs, [indices], dtype, integer_inputs=(0,))
    assert repr(ours) == repr(theirs)


def test_embedding_init_gradient_and_gradcheck():
    nbprop.manual_seed(0)
    layer = Embedding(1000, 50, padding_idx=2)
    weight = layer.weight.detach().numpy()
    assert not weight[2].any()
    assert abs(weight.std() - 1) < 0.02 and abs(weight.mean()) < 0.02
    indices = nbprop.tensor([[2, 1, 1], [7, 2, 1]])
    output = layer(indices)
    assert output.shape == (2, 3, 50)
    output.backward(nbprop.ones(2, 3, 50))
    gradient = layer.weight.grad.numpy()
    assert (gradient[1] == 3).all() and (gradient[7] == 1).all() and not gradient[2].any()
    assert gradient.sum() == 4 * 50
    table = leaf(np.random.default_rng(15).standard_normal((5, 2)))
    # Without padding_idx: the padding row is read by forward but gets no gradient by design.
    assert nbprop.gradcheck(lambda w: embedding(indices.clamp(0, 4), w), (table,))
    frozen = Embedding.from_pretrained(nbprop.ones(3, 2))
    assert not frozen.weight.requires_grad and frozen(nbprop.tensor([1])).tolist() == [[1.0, 1.0]]


def test_embedding_parallel_deterministic():
    rng = np.random.default_rng(16)
    table = leaf(rng.standard_normal((50, 64)))
    indices = nbprop.tensor(rng.integers(0, 50, 2000))  # 128,000 gradient elements: the parallel scatter
    grads = []
    for _ in range(2):
        table.grad = None
        embedding(indices, table).backward(nbprop.tensor(rng.standard_normal((2000, 64)) * 0 + 1.5))
        grads.append(table.grad.numpy().copy())
    assert np.array_equal(grads[0], grads[1])
    counts = np.bincount(indices.numpy(), minlength=50)
    assert_close(grads[0], np.repeat(counts[:, None] * 1.5, 64, axis=1))


def test_embedding_errors():
    layer = Embedding(4, 2)
    with pytest.raises(IndexError, match="index 4 out of range"):
        layer(nbprop.tensor([0, 4]))
    with pytest.raises(IndexError, match="index -1 out of range"):
        layer(nbprop.tensor([-1]))
    with pytest.raises(RuntimeError, match="int64"):
        layer(nbprop.tensor([0.0]))
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        Embedding(4, 2, padding_idx=4)
    with pytest.raises(NotImplementedError, match="max_norm"):
        Embedding(4, 2, max_norm=1.0)
    with pytest.raises(NotImplementedError, match="sparse"):
        embedding(nbprop.tensor([0]), layer.weight, sparse=True)


@pytest.mark.torch
def test_mlp_with_containers_matches_torch():
    import torch

    torch.manual_seed(4)
    theirs = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 5), torch.nn.Dropout(0.2),
                                 torch.nn.Linear(5, 2))
    ours = Sequential(Flatten(), Linear(6, 5), Dropout(0.2), Linear(5, 2))
    x = np.random.default_rng(17).standard_normal((4, 2, 3))
    _compare_with_torch(ours, theirs, [x], np.float32, train=False)
