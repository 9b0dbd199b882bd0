"""Sampling from tensors of probabilities: multinomial, bernoulli and bernoulli_, drawn from a Generator.

The probabilities come to host memory through the tensor's device, the draws are made there with the
generator's NumPy stream (nbprop/random.py), and the samples go back through the device's `asarray`.
"""

import numbers

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import inplace
from nbprop.random import categories, coin_flips, numpy_generator
from nbprop.tensor import Tensor


def _host(tensor):
    return DEVICES[tensor.device].to_numpy(tensor._data)


def multinomial(input, num_samples, replacement=False, *, generator=None):  # noqa: A002 - PyTorch's name
    """torch.multinomial: for each row of `input` (1-D or 2-D, non-negative weights, not necessarily summing
    to 1), `num_samples` category indices drawn in proportion to the weights, with or without replacement.
    int64, shape (num_samples,) or (rows, num_samples); not differentiable."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: expects a Tensor of probabilities, got {type(input).__name__}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"multinomial: num_samples must be an int, got {type(num_samples).__name__}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {input.dtype}")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {tuple(input.shape)}")
    if num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample n_sample <= 0 samples (num_samples = {num_samples})")
    count = input.shape[-1]
    if not replacement and num_samples > count:
        raise RuntimeError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                           f"({num_samples} > {count})")
    rng = numpy_generator(generator, input.device, "multinomial")
    rows = _host(input).reshape(-1, count)
    samples = categories(rng, rows, num_samples, replacement, "multinomial")
    if input.ndim == 1:
        samples = samples.reshape(num_samples)
    return Tensor._make(DEVICES[input.device].asarray(samples), None, input.device)


def _checked_probability(p, op):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a number or a Tensor of probabilities, got {type(p).__name__}")
    if not 0 <= p <= 1:
        raise RuntimeError(f"{op} expects p to be in [0, 1], but got p={p}")
    return float(p)


class Bernoulli(Function):
    """Draws whose gradient with respect to the probabilities is zero, as PyTorch defines it."""

    @staticmethod
    def forward(ctx, input, p, rng):  # noqa: A002
        ctx.shape, ctx.dtype = input.shape, input.dtype
        draws = coin_flips(rng, _host(input) if p is None else p, input.shape, input.dtype, "bernoulli")
        return Tensor._make(DEVICES[input.device].asarray(draws), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        zeros = DEVICES[grad_output.device].zeros(ctx.shape, ctx.dtype)
        return Tensor._make(zeros, None, grad_output.device), None, None

    backward_graph = backward  # a constant zero gradient: nothing to record


def bernoulli(input, p=None, *, generator=None):  # noqa: A002 - PyTorch's argument name
    """torch.bernoulli: 0/1 draws of input's shape and dtype, each 1 with probability input[i] (a floating
    tensor with values in [0, 1]), or with probability `p` for every element when `p` is given."""
    if not isinstance(input, Tensor):
        raise TypeError(f"bernoulli: expects a Tensor, got {type(input).__name__}")
    if input.dtype.kind == "b":
        raise NotImplementedError("bernoulli: not implemented for bool tensors")
    if p is None and input.dtype.kind != "f":
        raise NotImplementedError(f"bernoulli: the probabilities must be a floating tensor, got {input.dtype}; "
                                  "convert with .float() or pass p")
    probability = None if p is None else _checked_probability(p, "bernoulli_")
    rng = numpy_generator(generator, input.device, "bernoulli")
    return Bernoulli.apply(input, probability, rng)


def bernoulli_(self, p=0.5, *, generator=None):
    """Tensor.bernoulli_: overwrite with 0/1 draws, each 1 with probability `p` (a number, or a tensor of
    probabilities that broadcasts to this tensor's shape)."""
    if self.dtype.kind == "b":
        raise NotImplementedError("bernoulli_: not implemented for bool tensors")
    rng = numpy_generator(generator, self.device, "bernoulli_")
    probability = _host(p) if isinstance(p, Tensor) else _checked_probability(p, "bernoulli_")
    draws = coin_flips(rng, probability, self.shape, self.dtype, "bernoulli_")
    drawn = Tensor._make(DEVICES[self.device].asarray(draws), None, self.device)
    return inplace.in_place(self, inplace.copy_source(self, drawn), "bernoulli_")


Tensor.multinomial = multinomial
Tensor.bernoulli = bernoulli
Tensor.bernoulli_ = bernoulli_
