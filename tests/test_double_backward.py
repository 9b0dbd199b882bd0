"""Higher-order gradients: create_graph=True records the backward pass (the core ops' backward_graph), against
central differences (gradgradcheck) and PyTorch; every op of the library can be differentiated twice."""

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import nbprop
import nbprop.nn.functional as F
from nbprop.autograd import Function
from nbprop.ops import unary

RNG = np.random.default_rng(7)


def leaf(*shape, low=-1.0, high=1.0):
    return nbprop.tensor(RNG.uniform(low, high, shape), dtype=nbprop.float64, requires_grad=True)


# --------------------------------------------------------------------------------- gradgradcheck, core ops

# Inputs away from kinks (ties, bounds, zero of abs) so that central differences are valid.
BINARY_CASES = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b + 3.0),
    "pow_tensor_exponent": lambda a, b: (a + 2.0) ** b,
    "pow_scalar_exponent": lambda a, b: (a + 2.0) ** 3 * b,
    "maximum": lambda a, b: nbprop.maximum(a, b * 0.5) * a,
    "minimum": lambda a, b: nbprop.minimum(a, b * 0.5) * b,
    "where": lambda a, b: nbprop.where(a > 0, a * b, b * b),
    "clamp": lambda a, b: (a * b).clamp(-0.25, 0.25) * a,
    "broadcast": lambda a, b: a * b[0] + b.sum(0),
}


@pytest.mark.parametrize("name", BINARY_CASES)
def test_gradgradcheck_binary(name):
    assert nbprop.gradgradcheck(BINARY_CASES[name], [leaf(3, 4), leaf(3, 4)])


# The domain of each unary row (log and sqrt need positive inputs).
UNARY_DOMAINS = {"log": (0.5, 2.0), "sqrt": (0.5, 2.0), "rsqrt": (0.5, 2.0), "log1p": (-0.5, 1.0)}


@pytest.mark.parametrize("name", sorted(unary.UNARY_ROWS))
def test_gradgradcheck_unary(name):
    low, high = UNARY_DOMAINS.get(name, (-1.5, 1.5))
    x = leaf(3, 5, low=low, high=high)
    function = getattr(unary, name)
    # times x, so that a zero or constant first derivative still leaves a second one to check
    assert nbprop.gradgradcheck(lambda x: function(x) * x, [x])


MOVEMENT_AND_REDUCTION_CASES = {
    "reshape": lambda x: (x.reshape(4, 3) ** 2).sum(0),
    "permute": lambda x: x.permute(1, 0) * x.permute(1, 0).exp(),
    "expand": lambda x: x[:, :1].expand(3, 4) * x,
    "split": lambda x: nbprop.split(x * x, [1, 3], dim=1)[1].tanh(),
    "cat_stack": lambda x: nbprop.cat([x * x, nbprop.stack([x[0], x[1]])], 0).sin(),
    "sum_dims": lambda x: (x * x).sum(dim=1, keepdim=True) * x,
    "mean_all": lambda x: x.exp().mean() * x,
    "var": lambda x: x.var(dim=0),
    "var_all": lambda x: (x * x).var() * x,
    "std": lambda x: x.std(dim=1, keepdim=True) * x,
    "clone_cast": lambda x: x.clone().to(nbprop.float64) ** 3,
}


@pytest.mark.parametrize("name", MOVEMENT_AND_REDUCTION_CASES)
def test_gradgradcheck_movement_and_reductions(name):
    assert nbprop.gradgradcheck(MOVEMENT_AND_REDUCTION_CASES[name], [leaf(3, 4)])


@pytest.mark.parametrize("a_shape, b_shape", [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                              ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2))])
def test_gradgradcheck_matmul(a_shape, b_shape):
    assert nbprop.gradgradcheck(lambda a, b: (a @ b).tanh(), [leaf(*a_shape), leaf(*b_shape)])


def test_gradgradcheck_linear_and_dropout():
    x, weight, bias = leaf(2, 3, 4), leaf(5, 4), leaf(5)
    assert nbprop.gradgradcheck(lambda x, w, b: F.linear(x, w, b).sigmoid(), [x, weight, bias])

    def dropped(x):
        nbprop.manual_seed(3)  # the same mask on every evaluation
        return F.dropout(x * x, 0.4)

    assert nbprop.gradgradcheck(dropped, [leaf(4, 5)])


# ------------------------------------------------------------------------------------------ the pass itself


def test_create_graph_leaves_a_differentiable_grad_and_retains_the_graph():
    x = leaf(4)
    y = (x ** 3).sum()
    y.backward(create_graph=True)  # retain_graph defaults to create_graph
    assert x.grad.requires_grad
    np.testing.assert_allclose(x.grad.detach().numpy(), 3 * x.detach().numpy() ** 2, rtol=1e-14)
    (second,) = nbprop.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(second.numpy(), 6 * x.detach().numpy(), rtol=1e-14)
    y.backward()  # the graph was kept
    assert not x.grad.requires_grad or x.grad.grad_fn is not None


def test_first_gradients_of_a_recorded_pass_equal_the_fast_path():
    x, weight = leaf(6, 4), leaf(3, 4)

    def loss():
        return (F.linear(x, weight).tanh() ** 2 / (1.0 + x.exp().sum(1, keepdim=True))).var()

    fast = nbprop.autograd.grad(loss(), [x, weight])
    recorded = nbprop.autograd.grad(loss(), [x, weight], create_graph=True)
    for a, b in zip(fast, recorded):
        np.testing.assert_allclose(b.detach().numpy(), a.numpy(), rtol=1e-13, atol=1e-15)


def test_a_users_function_has_its_backward_recorded():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x * x  # nbprop's ops: differentiable when the pass records

    x = leaf(5)
    (first,) = nbprop.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    (second,) = nbprop.autograd.grad(first.sum(), x)
    np.testing.assert_allclose(second.numpy(), 6 * x.detach().numpy(), rtol=1e-14)


def test_an_op_without_a_recorded_backward_says_so():
    class Opaque(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 2

    Opaque.__module__ = "nbprop.ops.example"  # one of the library's own ops, which must define backward_graph
    x = leaf(3)
    with pytest.raises(NotImplementedError, match="Opaque: its backward cannot be differentiated again"):
        nbprop.autograd.grad(Opaque.apply(x).sum(), x, create_graph=True)


def test_backward_inputs_accumulates_only_into_the_given_leaves():
    x, y = leaf(3), leaf(3)
    (x * y).sum().backward(inputs=[x])
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())
    assert y.grad is None
    with pytest.raises(RuntimeError, match="inputs"):
        (x * y).sum().backward(inputs=[])


def test_grad_materialize_grads_gives_zeros_for_unused_inputs():
    x, unused = leaf(3), leaf(2)
    gradient, zeros = nbprop.autograd.grad((x * x).sum(), [x, unused], materialize_grads=True)
    np.testing.assert_array_equal(zeros.numpy(), np.zeros(2))
    with pytest.raises(ValueError, match="materialize_grads"):
        nbprop.autograd.grad((x * x).sum(), [x, unused], allow_unused=False, materialize_grads=True)


def test_every_op_of_the_library_defines_a_recorded_backward():
    """A backward pass with create_graph=True can go through any op: each Function of nbprop has
    backward_graph (it may be `backward` itself where that is written with differentiable ops)."""
    missing = []
    for module_info in pkgutil.walk_packages(nbprop.__path__, "nbprop."):
        if module_info.name.endswith("__main__"):  # a command line, not a module of ops
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Function) and value is not Function
                    and value.__module__ == module.__name__ and value.backward_graph is None):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"Functions without backward_graph: {missing}"


# ---------------------------------------------------------------------------------- against PyTorch


def _mlp(module, x, y, w1, b1, w2, b2):
    """The same MLP loss written for either library (both have these names)."""
    hidden = module.tanh(x @ w1.T + b1)
    out = hidden @ w2.T + b2
    return ((out - y) ** 2).mean() + 0.1 * module.nn.functional.softplus(out).mean()


@pytest.mark.torch
def test_hessian_vector_product_of_an_mlp_loss_equals_pytorchs():
    import torch

    shapes = [(8, 5), (8, 2), (6, 5), (6,), (2, 6), (2,)]
    arrays = [RNG.standard_normal(shape) for shape in shapes]
    vectors = [RNG.standard_normal(shape) for shape in shapes[2:]]
    data = [nbprop.tensor(a) for a in arrays[:2]]
    params = tuple(nbprop.tensor(a) for a in arrays[2:])
    torch_data = [torch.tensor(a) for a in arrays[:2]]
    torch_params = tuple(torch.tensor(a) for a in arrays[2:])

    loss, products = nbprop.autograd.functional.hvp(
        lambda *p: _mlp(nbprop, *data, *p), params, tuple(nbprop.tensor(v) for v in vectors))
    expected_loss, expected = torch.autograd.functional.hvp(
        lambda *p: _mlp(torch, *torch_data, *p), torch_params, tuple(torch.tensor(v) for v in vectors))
    np.testing.assert_allclose(loss.item(), expected_loss.item(), rtol=1e-13)
    for ours, theirs in zip(products, expected):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.torch
def test_gradient_penalty_step_equals_pytorchs():
    """A WGAN-GP style penalty: the norm of d critic / d input, differentiated with respect to the weights."""
    import torch

    x_array, w1_array, w2_array = RNG.standard_normal((4, 3)), RNG.standard_normal((5, 3)), RNG.standard_normal((1, 5))

    def penalty_gradients(module, x, w1, w2):
        score = (module.sigmoid(x @ w1.T) @ w2.T).sum()
        (gradient,) = module.autograd.grad(score, x, create_graph=True)
        penalty = ((gradient.pow(2).sum(1) + 1e-12).sqrt() - 1.0).pow(2).mean()
        penalty.backward()
        return w1.grad, w2.grad

    ours = penalty_gradients(nbprop, nbprop.tensor(x_array, requires_grad=True),
                             nbprop.tensor(w1_array, requires_grad=True), nbprop.tensor(w2_array, requires_grad=True))
    theirs = penalty_gradients(torch, torch.tensor(x_array, requires_grad=True),
                               torch.tensor(w1_array, requires_grad=True), torch.tensor(w2_array, requires_grad=True))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-14)


def _pair(x, y):
    return (x * y).sin(), (x.reshape(2, 3).exp() @ y.reshape(3, 2)).sum(0)


@pytest.mark.torch
@pytest.mark.parametrize("create_graph", [False, True])
def test_functional_forms_equal_pytorchs(create_graph):
    import torch

    x_array, y_array = RNG.standard_normal(6), RNG.standard_normal(6)
    ours_inputs = (nbprop.tensor(x_array), nbprop.tensor(y_array))
    torch_inputs = (torch.tensor(x_array), torch.tensor(y_array))
    functional, torch_functional = nbprop.autograd.functional, torch.autograd.functional

    def same(ours, theirs):
        if isinstance(theirs, (tuple, list)):
            assert isinstance(ours, tuple) and len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                same(a, b)
        else:
            assert ours.shape == tuple(theirs.shape)
            assert ours.requires_grad == theirs.requires_grad
            np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)

    scalar = {"ours": lambda x, y: (x * y.tanh()).sum() ** 2, "torch": lambda x, y: (x * y.tanh()).sum() ** 2}
    vectors = [RNG.standard_normal(6), RNG.standard_normal(2)]
    same(functional.jacobian(_pair, ours_inputs, create_graph=create_graph),
         torch_functional.jacobian(_pair, torch_inputs, create_graph=create_graph))
    same(functional.jacobian(lambda x: x.exp() * x[0], ours_inputs[0], create_graph=create_graph),
         torch_functional.jacobian(lambda x: x.exp() * x[0], torch_inputs[0], create_graph=create_graph))
    same(functional.hessian(scalar["ours"], ours_inputs, create_graph=create_graph),
         torch_functional.hessian(scalar["torch"], torch_inputs, create_graph=create_graph))
    same(functional.hessian(lambda x: (x ** 3).sum(), ours_inputs[0], create_graph=create_graph),
         torch_functional.hessian(lambda x: (x ** 3).sum(), torch_inputs[0], create_graph=create_graph))
    same(functional.vjp(_pair, ours_inputs, tuple(nbprop.tensor(v) for v in vectors), create_graph=create_graph),
         torch_functional.vjp(_pair, torch_inputs, tuple(torch.tensor(v) for v in vectors),
                              create_graph=create_graph))
    tangents = (RNG.standard_normal(6), RNG.standard_normal(6))
    same(functional.jvp(_pair, ours_inputs, tuple(nbprop.tensor(v) for v in tangents), create_graph=create_graph),
         torch_functional.jvp(_pair, torch_inputs, tuple(torch.tensor(v) for v in tangents),
                              create_graph=create_graph))
    for name in ("vhp", "hvp"):
        same(getattr(functional, name)(scalar["ours"], ours_inputs, tuple(nbprop.tensor(v) for v in tangents),
                                       create_graph=create_graph),
             getattr(torch_functional, name)(scalar["torch"], torch_inputs, tuple(torch.tensor(v) for v in tangents),
                                             create_graph=create_graph))


@pytest.mark.torch
def test_an_in_place_op_on_a_saved_tensor_keeps_its_second_derivatives():
    """y.mul_(w) saves y's old values for w's gradient: the copy still stands for y on the tape."""
    import torch

    results = []
    for module in (nbprop, torch):
        x = module.tensor([0.5, 1.5, -2.0], dtype=module.float64, requires_grad=True)
        w = module.tensor([1.0, -0.5, 0.25], dtype=module.float64, requires_grad=True)
        y = x * 2
        y.mul_(w)
        (grad_w,) = module.autograd.grad((y * y * y).sum(), w, create_graph=True)
        results.append(module.autograd.grad(grad_w.sum(), [x, w]))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-14)


@pytest.mark.torch
def test_functional_strictness_and_errors_follow_pytorch():
    import torch

    x = nbprop.tensor(RNG.standard_normal(3))
    functional = nbprop.autograd.functional
    # An output independent of the input: zeros, or an error with strict=True.
    np.testing.assert_array_equal(functional.jacobian(lambda x: nbprop.ones(2), x).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(
        torch.autograd.functional.jacobian(lambda x: torch.ones(2), torch.zeros(3)).numpy(), np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="strict"):
        functional.jacobian(lambda x: nbprop.ones(2), x, strict=True)
    with pytest.raises(RuntimeError, match="v is required"):
        functional.vjp(lambda x: x * 2, x)
    with pytest.raises(RuntimeError, match="shape"):
        functional.vjp(lambda x: x * 2, x, nbprop.ones(4))
    with pytest.raises(RuntimeError, match="single-element"):
        functional.hessian(lambda x: x * 2, x)
    with pytest.raises(NotImplementedError, match="vectorize"):
        functional.jacobian(lambda x: x * 2, x, strategy="forward-mode")
    # The default v of a one-element output is 1.
    output, product = functional.vjp(lambda x: (x * x).sum(), x)
    np.testing.assert_allclose(product.numpy(), 2 * x.numpy(), rtol=1e-15)
