"""Tensor reprs as PyTorch prints them (values, notation, nesting, summaries, suffixes, grad_fn names); Size."""

import pickle

import numpy as np
import pytest

import nbprop
from nbprop.tensor_repr import get_printoptions, set_printoptions

# ------------------------------------------------------------------------------- doctest-style examples

# What PyTorch 2.13 prints for these tensors, with `torch.` written `nbprop.`.
EXAMPLES = [
    ("nbprop.tensor([1.0, 2.5])", "tensor([1.0000, 2.5000])"),
    ("nbprop.tensor([1.0, 2.0])", "tensor([1., 2.])"),
    ("nbprop.tensor(3.0)", "tensor(3.)"),
    ("nbprop.tensor([1, 2])", "tensor([1, 2])"),
    ("nbprop.tensor([True, False])", "tensor([ True, False])"),
    ("nbprop.tensor([1.0, 1e-5])", "tensor([1.0000e+00, 1.0000e-05])"),
    ("nbprop.tensor([1.0], dtype=nbprop.float64)", "tensor([1.], dtype=nbprop.float64)"),
    ("nbprop.zeros(0, 3)", "tensor([], size=(0, 3))"),
    ("nbprop.tensor([1.0], requires_grad=True)", "tensor([1.], requires_grad=True)"),
    ("nbprop.tensor([1.0, 3.0], requires_grad=True) * 2", "tensor([2., 6.], grad_fn=<MulBackward0>)"),
    ("nbprop.ones(2, 2, requires_grad=True) @ nbprop.ones(2, 1)",
     "tensor([[2.],\n        [2.]], grad_fn=<MmBackward0>)"),
    ("nbprop.arange(6).reshape(2, 1, 3)", "tensor([[[0, 1, 2]],\n\n        [[3, 4, 5]]])"),
    ("nbprop.arange(2000)", "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"),
]


@pytest.mark.parametrize(("expression", "expected"), EXAMPLES, ids=[example[0] for example in EXAMPLES])
def test_repr_examples(expression, expected):
    assert repr(eval(expression)) == expected
    assert str(eval(expression)) == expected


# ------------------------------------------------------------------------------------- against PyTorch

_RANDOM = np.random.default_rng(0)

# Each case builds a tensor with `lib` (nbprop or torch) from the same values.
CASES = {
    "float fractions": lambda lib: lib.tensor([1.0, 2.5, -3.25]),
    "float integers": lambda lib: lib.tensor([[1.0, -2.0], [30.0, 4.0]]),
    "zero-d": lambda lib: lib.tensor(3.5),
    "zero-d integer-valued": lambda lib: lib.tensor(-2.0),
    "zero-d int": lambda lib: lib.tensor(7),
    "zero-d bool": lambda lib: lib.tensor(True),
    "zeros": lambda lib: lib.zeros(2, 3),
    "negative zero": lambda lib: lib.tensor([0.0, -0.0, 1.0]),
    "nan and inf": lambda lib: lib.tensor([1.0, float("nan"), float("inf"), -float("inf")]),
    "nan and inf fractions": lambda lib: lib.tensor([1.5, float("nan"), -float("inf")]),
    "only nan": lambda lib: lib.tensor([float("nan"), float("nan")]),
    "large": lambda lib: lib.tensor([1.0e9, 2.0]),
    "large fractions": lambda lib: lib.tensor([1.5e9, 2.25]),
    "small": lambda lib: lib.tensor([1.0e-5, 0.5]),
    "wide range": lambda lib: lib.tensor([[0.001, 2.0], [3000.0, 4.0]]),
    "sci integers": lambda lib: lib.tensor([1.0, 100000.0]),
    "float64": lambda lib: lib.tensor([0.1, 0.2], dtype=lib.float64),
    "float64 integers": lambda lib: lib.tensor([[1.0, 2.0]], dtype=lib.float64),
    "int64": lambda lib: lib.tensor([[1, -20], [300, 4]]),
    "bool": lambda lib: lib.tensor([[True, False], [False, True]]),
    "empty": lambda lib: lib.zeros(0),
    "empty int": lambda lib: lib.zeros(0, dtype=lib.int64),
    "empty 2-d": lambda lib: lib.zeros(2, 0),
    "empty float64": lambda lib: lib.zeros(0, 4, dtype=lib.float64),
    "3-d": lambda lib: lib.tensor(_RANDOM.standard_normal((2, 3, 4)).astype(np.float32)),
    "4-d": lambda lib: lib.tensor(np.arange(24.0).reshape(2, 1, 3, 4) / 8),
    "wrapped vector": lambda lib: lib.tensor(_RANDOM.standard_normal(30).astype(np.float32)),
    "wrapped int vector": lambda lib: lib.tensor(np.arange(40) * 1000),
    "summarised vector": lambda lib: lib.tensor(np.linspace(-1, 1, 1001, dtype=np.float32)),
    "summarised matrix": lambda lib: lib.tensor(_RANDOM.standard_normal((40, 40)).astype(np.float32)),
    "summarised 3-d": lambda lib: lib.tensor(_RANDOM.standard_normal((12, 10, 10)).astype(np.float32)),
    "summarised short rows": lambda lib: lib.tensor(_RANDOM.standard_normal((500, 3)).astype(np.float32)),
    "summarised ints": lambda lib: lib.tensor(np.arange(3000).reshape(30, 100)),
    "summarised bool": lambda lib: lib.tensor(np.arange(2000) % 3 == 0),
    "leaf requires grad": lambda lib: lib.tensor([[1.5, 2.0]], requires_grad=True),
    "float64 requires grad, long": lambda lib: lib.tensor(np.arange(14.0) / 3, requires_grad=True),
    "float64 grad_fn, suffix on a new line": lambda lib: lib.tensor(np.arange(10.0) / 3, requires_grad=True) * 2,
}


def _pair(case):
    import torch

    values = _RANDOM.bit_generator.state
    ours = CASES[case](nbprop)
    _RANDOM.bit_generator.state = values
    theirs = CASES[case](torch)
    return ours, theirs


def _expected(theirs):
    return repr(theirs).replace("torch.", "nbprop.")


@pytest.mark.torch
@pytest.mark.parametrize("case", list(CASES))
def test_repr_equals_pytorch(case):
    ours, theirs = _pair(case)
    assert repr(ours) == _expected(theirs)


def _grad_fn_cases(lib):
    functional = lib.nn.functional
    a = lib.tensor([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]], requires_grad=True)
    b = lib.tensor([[2.0, 1.0, 0.5], [1.0, 3.0, 2.0]], requires_grad=True)
    v = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = lib.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    return {
        "add": a + b, "sub": a - b, "mul": a * b, "div": a / b, "neg": -a, "pow": a ** 2, "pow tensors": b ** a,
        "sum": a.sum(), "sum dim": a.sum(0), "mean": a.mean(), "mean dim": a.mean(1), "prod": a.prod(),
        "prod dim": a.prod(1), "var": a.var(), "std": a.std(1),
        "mm": a @ m, "mv": a @ v, "dot": v @ v, "vector matrix": v @ m, "batched": lib.ones(2, 2, 3) @ m,
        "exp": a.exp(), "log": b.log(), "sqrt": b.sqrt(), "tanh": a.tanh(), "sigmoid": a.sigmoid(), "relu": a.relu(),
        "log1p": b.log1p(), "abs": a.abs(), "gelu": functional.gelu(a), "silu": functional.silu(a),
        "leaky_relu": functional.leaky_relu(a), "softplus": functional.softplus(a),
        "maximum": lib.maximum(a, b), "where": lib.where(a > 0, a, b), "clamp": a.clamp(-1, 1),
        "to float64": a.to(lib.float64), "clone": a.clone(),
        "reshape": a.reshape(3, 2), "view": a.view(6), "permute": a.permute(1, 0), "expand": v.expand(2, 3),
        "cat": lib.cat([a, b]), "index slice": a[:, 1:], "index tensor": a[lib.tensor([0, 1])],
        "gather": a.gather(1, lib.tensor([[0], [2]])), "scatter_add": a.scatter_add(1, lib.tensor([[0], [2]]), b),
        "index_select": a.index_select(1, lib.tensor([0, 2])), "cumsum": a.cumsum(1), "sort": a.sort(1)[0],
        "softmax": a.softmax(1), "log_softmax": a.log_softmax(1), "logsumexp": a.logsumexp(1),
        "linear": functional.linear(a, m.T), "linear with bias": functional.linear(a, m.T, v[:2]),
        "cross_entropy": functional.cross_entropy(a, lib.tensor([0, 2])),
        "layer_norm": functional.layer_norm(a, (3,)), "embedding": functional.embedding(lib.tensor([0, 1]), m),
        "pad": functional.pad(a, (1, 1)),
    }


@pytest.mark.torch
def test_grad_fn_names_are_pytorchs():
    import torch

    ours, theirs = _grad_fn_cases(nbprop), _grad_fn_cases(torch)
    differing = {name: (repr(ours[name]).rsplit("grad_fn=", 1)[-1], type(theirs[name].grad_fn).__name__)
                 for name in ours if f"grad_fn=<{type(theirs[name].grad_fn).__name__}>)" not in repr(ours[name])}
    assert not differing


def test_custom_function_prints_as_in_pytorch():
    class Twice(nbprop.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 2

    result = Twice.apply(nbprop.tensor([1.5], requires_grad=True))
    assert repr(result) == "tensor([3.], grad_fn=<TwiceBackward>)"


@pytest.mark.torch
def test_parameter_repr_equals_pytorch():
    import torch

    ours = nbprop.nn.Parameter(nbprop.tensor([[0.5, -1.0]]))
    theirs = torch.nn.Parameter(torch.tensor([[0.5, -1.0]]))
    assert repr(ours) == _expected(theirs)


@pytest.mark.torch
def test_float32_prints_its_dtype_when_float64_is_the_default():
    import torch

    previous = nbprop.get_default_dtype()
    nbprop.set_default_dtype(nbprop.float64)
    torch.set_default_dtype(torch.float64)
    try:
        for make in (lambda lib: lib.tensor([1.5], dtype=lib.float32), lambda lib: lib.tensor([1.5]),
                     lambda lib: lib.zeros(0, dtype=lib.float32)):
            assert repr(make(nbprop)) == _expected(make(torch))
    finally:
        nbprop.set_default_dtype(previous)
        torch.set_default_dtype(torch.float32)


@pytest.mark.torch
def test_print_options_as_pytorch():
    import torch

    values = np.linspace(-2, 2, 25, dtype=np.float32).reshape(5, 5) / 3
    saved = get_printoptions()
    try:
        for options in ({"precision": 2}, {"threshold": 5}, {"threshold": 5, "edgeitems": 1},
                        {"threshold": 5, "edgeitems": 0}, {"linewidth": 30}, {"sci_mode": True},
                        {"profile": "short"}, {"profile": "full"}):
            set_printoptions(**options)
            torch.set_printoptions(**options)
            assert repr(nbprop.tensor(values)) == _expected(torch.tensor(values)), options
            set_printoptions(profile="default")
            torch.set_printoptions(profile="default")
    finally:
        set_printoptions(**saved)
        torch.set_printoptions(profile="default")
    with pytest.raises(ValueError, match="unknown profile"):
        set_printoptions(profile="long")


def test_device_suffix_comes_before_dtype():
    import opaque_device

    opaque_device.install()
    on_device = nbprop.tensor([1.0, 2.0], dtype=nbprop.float64).to("opaque")
    assert repr(on_device) == "tensor([1., 2.], device='opaque', dtype=nbprop.float64)"
    leaf = nbprop.tensor([0.5], device="opaque", requires_grad=True)
    assert repr(leaf) == "tensor([0.5000], device='opaque', requires_grad=True)"


# ------------------------------------------------------------------------------------------ Size, size()


def test_shape_is_a_size():
    x = nbprop.zeros(2, 3)
    assert isinstance(x.shape, nbprop.Size) and isinstance(x.shape, tuple)
    assert x.shape == (2, 3) and x.size() == (2, 3) and isinstance(x.size(), nbprop.Size)
    assert repr(x.shape) == str(x.shape) == "nbprop.Size([2, 3])"
    assert repr(nbprop.tensor(1.0).shape) == "nbprop.Size([])"
    assert x.shape.numel() == 6 and nbprop.tensor(1.0).shape.numel() == 1
    assert x.shape[1:] == (3,) and isinstance(x.shape[1:], nbprop.Size) and x.shape[-1] == 3
    assert isinstance(x.shape + (4,), nbprop.Size) and (4,) + x.shape == (4, 2, 3)
    assert isinstance((4,) + x.shape, nbprop.Size)
    assert pickle.loads(pickle.dumps(x.shape)) == x.shape
    assert nbprop.zeros(x.shape).shape == (2, 3) and x.reshape(x.shape[::-1]).shape == (3, 2)


@pytest.mark.torch
def test_size_constructor_as_pytorch():
    import torch

    assert repr(nbprop.Size([2, np.int64(3)])) == repr(torch.Size([2, np.int64(3)])).replace("torch.", "nbprop.")
    assert nbprop.Size([2, 3]) * 2 == torch.Size([2, 3]) * 2
    with pytest.raises(TypeError, match=r"iterable of 'int' \(item 1 is 'float'\)"):
        nbprop.Size([2, 1.5])
    with pytest.raises(TypeError):
        nbprop.Size(3)


def test_size_of_a_dimension():
    x = nbprop.zeros(2, 3)
    assert x.size(0) == 2 and x.size(-1) == 3 and x.size(-2) == 2 and x.size(np.int64(1)) == 3
    with pytest.raises(IndexError, match=r"size: dimension 2 is out of range for a tensor of 2 dimensions "
                                         r"\(expected in \[-2, 1\]\)"):
        x.size(2)
    with pytest.raises(IndexError, match=r"size: dimension -3 is out of range"):
        x.size(-3)
    with pytest.raises(IndexError, match="size: dimension specified as 0 but tensor has no dimensions"):
        nbprop.tensor(1.0).size(0)
    for bad in (1.0, "1", True):
        with pytest.raises(TypeError, match=r"size\(\): argument 'dim' \(position 1\) must be int, not"):
            x.size(bad)
