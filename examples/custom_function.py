"""A custom op with its own @njit kernels: softplus, its forward and backward, checked by gradcheck."""

import math

import numpy as np
from numba import njit, prange

import nbprop


@njit(parallel=True, cache=True)
def softplus_forward(x, out):
    """out = log(1 + e^x), computed without overflow (x, out: 1-D, same length)."""
    for index in prange(x.shape[0]):
        value = x[index]
        out[index] = max(value, 0.0) + math.log1p(math.exp(-abs(value)))


@njit(parallel=True, cache=True)
def softplus_backward(grad_output, x, grad_input):
    """d softplus(x)/dx = sigmoid(x)."""
    for index in prange(x.shape[0]):
        value = x[index]
        if value >= 0:
            sigmoid = 1.0 / (1.0 + math.exp(-value))
        else:
            exponential = math.exp(value)
            sigmoid = exponential / (1.0 + exponential)
        grad_input[index] = grad_output[index] * sigmoid


class Softplus(nbprop.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        array = np.ascontiguousarray(x.detach().numpy()).reshape(-1)
        out = np.empty_like(array)
        softplus_forward(array, out)
        return nbprop.from_numpy(out.reshape(x.shape))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        array = np.ascontiguousarray(x.detach().numpy()).reshape(-1)
        gradient = np.ascontiguousarray(grad_output.numpy()).reshape(-1)
        grad_input = np.empty_like(array)
        softplus_backward(gradient, array, grad_input)
        return nbprop.from_numpy(grad_input.reshape(x.shape))


def main():
    x = nbprop.tensor([[-1000.0, -1.0, 0.0], [0.5, 3.0, 1000.0]], dtype=nbprop.float64, requires_grad=True)
    y = Softplus.apply(x)
    y.backward(nbprop.ones_like(y))
    print("softplus:", y.detach().numpy().tolist())
    print("gradient:", x.grad.numpy().tolist())
    probe = nbprop.randn(3, 4, dtype=nbprop.float64, requires_grad=True)
    print("gradcheck passed:", nbprop.gradcheck(Softplus.apply, (probe,)))


if __name__ == "__main__":
    main()
