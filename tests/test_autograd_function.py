"""Custom Functions: a user-written @njit kernel behind nbprop.Function, multi-output Functions, gradcheck."""

import math

import numpy as np
import pytest
from helpers import assert_close, leaf

import nbprop

F64 = nbprop.float64


def _ones(*shape):
    return nbprop.ones(*shape, dtype=F64)

# ------------------------------------------------------------------------------- custom Functions


@pytest.fixture(scope="module")
def log_cosh_kernels():
    """The documented pattern: a user writes @numba.njit kernels and wraps them in a Function."""
    from numba import njit

    @njit(cache=False)
    def log_cosh_forward(x, out):
        """out = log(cosh(x)), stable for large |x|: |x| + log1p(exp(-2|x|)) - log(2)."""
        for index in range(x.size):
            magnitude = abs(x[index])
            out[index] = magnitude + math.log1p(math.exp(-2.0 * magnitude)) - math.log(2.0)

    @njit(cache=False)
    def log_cosh_backward(grad_output, x, grad_input):
        """d log(cosh(x))/dx = tanh(x)."""
        for index in range(x.size):
            grad_input[index] = grad_output[index] * math.tanh(x[index])

    return log_cosh_forward, log_cosh_backward


def _log_cosh_function(kernels):
    forward_kernel, backward_kernel = kernels

    class LogCosh(nbprop.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            flat = np.ascontiguousarray(x.detach().numpy()).reshape(-1)
            out = np.empty_like(flat)
            forward_kernel(flat, out)
            return nbprop.from_numpy(out.reshape(x.shape))

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            flat = np.ascontiguousarray(x.detach().numpy()).reshape(-1)
            grad_input = np.empty_like(flat)
            backward_kernel(np.ascontiguousarray(grad_output.numpy()).reshape(-1), flat, grad_input)
            return nbprop.from_numpy(grad_input.reshape(x.shape))

    return LogCosh


def test_custom_function_with_numba_kernels_passes_gradcheck(log_cosh_kernels):
    log_cosh = _log_cosh_function(log_cosh_kernels)
    values = np.array([[-800.0, -2.0, -0.1], [0.0, 0.7, 800.0]])
    x = leaf(values)
    y = log_cosh.apply(x)
    assert y.grad_fn is not None and repr(y.grad_fn) == "<LogCoshBackward>"
    assert_close(y, np.abs(values) + np.log1p(np.exp(-2 * np.abs(values))) - np.log(2))
    y.backward(_ones(2, 3))
    assert_close(x.grad, np.tanh(values))
    probe = leaf(np.random.default_rng(0).normal(size=(3, 4)))
    assert nbprop.gradcheck(log_cosh.apply, (probe,))
    assert nbprop.gradcheck(lambda t: log_cosh.apply(t * t) * t, (probe,))
    with nbprop.no_grad():
        assert log_cosh.apply(x).grad_fn is None


class SplitScale(nbprop.Function):
    """Two outputs: 2x and x ** 2; checks that an output without gradient reaches backward as zeros."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.save_for_backward(x)
        ctx.factor = factor
        return x * factor, x * x

    @staticmethod
    def backward(ctx, grad_scaled, grad_square):
        (x,) = ctx.saved_tensors
        ctx.seen = (grad_scaled, grad_square)
        return grad_scaled * ctx.factor + grad_square * 2 * x, None


def test_multi_output_function_materialises_zero_gradients():
    x = leaf([1.0, 2.0, 3.0])
    scaled, square = SplitScale.apply(x, 2.0)
    assert scaled.grad_fn is square.grad_fn
    scaled.backward(_ones(3))
    assert_close(x.grad, [2.0, 2.0, 2.0])
    seen = scaled.grad_fn.seen
    assert seen[1].shape == (3,) and seen[1].dtype == F64
    np.testing.assert_array_equal(seen[1].numpy(), [0.0, 0.0, 0.0])
    x.grad = None
    _, square = SplitScale.apply(x, 2.0)
    square.backward(_ones(3))
    assert_close(x.grad, [2.0, 4.0, 6.0])
    assert nbprop.gradcheck(lambda t: SplitScale.apply(t, 3.0), (leaf([0.5, -1.5]),))


def test_function_contract_errors():
    class ReturnsInput(nbprop.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output

    class TooFewGradients(nbprop.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output

    class ReturnsList(nbprop.Function):
        @staticmethod
        def forward(ctx, x):
            return [x * 1]

    x = leaf([1.0])
    with pytest.raises(RuntimeError, match="ReturnsInput.forward must return new tensors"):
        ReturnsInput.apply(x * 1)
    with pytest.raises(RuntimeError, match="TooFewGradients.backward returned 1 gradients for 2 inputs"):
        TooFewGradients.apply(x, leaf([2.0])).backward()
    with pytest.raises(TypeError, match="ReturnsList.forward must return a Tensor or a tuple of Tensors"):
        ReturnsList.apply(x)


def test_needs_input_grad_reflects_the_inputs():
    recorded = {}

    class Probe(nbprop.Function):
        @staticmethod
        def forward(ctx, a, b, scale):
            recorded["needs"] = ctx.needs_input_grad
            return a * b * scale

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output, None, None

    Probe.apply(leaf([1.0]), nbprop.tensor([2.0], dtype=F64), 3.0)
    assert recorded["needs"] == (True, False, False)
