"""Compile the common kernels ahead of the first training step (from Numba's on-disk cache when warm)."""

import time

import numpy as np

from nbprop import dtypes
from nbprop.creation import ones, tensor


def _exercise(dtype, size):
    """One forward and backward pass through the common ops, so that each kernel compiles for `dtype`."""
    # A private generator: warming up must not move the user's seeded stream.
    generator = np.random.default_rng(0)
    x = tensor(generator.standard_normal((size, 8)), dtype=dtype, requires_grad=True)
    w = tensor(generator.standard_normal((8, 4)), dtype=dtype, requires_grad=True)
    b = tensor(generator.standard_normal(4), dtype=dtype, requires_grad=True)
    hidden = (x @ w + b).relu()
    mixed = hidden.tanh() * hidden.sigmoid() - hidden.exp() / (1 + hidden ** 2)
    mixed = mixed + hidden.abs().sqrt() + (hidden + 1).log() - hidden.clamp(-1, 1)
    loss = mixed.log_softmax(dim=1).sum() + mixed.mean(dim=0).var() + mixed.max() + mixed.logsumexp(1).sum()
    loss = loss + mixed.reshape(-1)[::2].sum() + mixed.T.softmax(dim=0)[0].sum()
    loss.backward()
    return ones(1, dtype=dtype)


def warmup(dtypes_to_compile=(dtypes.float32, dtypes.float64), parallel=False, verbose=False):
    """Compile the kernels that a dense network uses, for each dtype; returns the seconds it took.

    Kernels are compiled lazily anyway; calling this first moves that cost out of the first step.
    With `parallel=True` the multi-threaded variants (used above ~65k elements) are compiled too.
    """
    start = time.perf_counter()
    for dtype in dtypes_to_compile:
        _exercise(dtypes.as_dtype(dtype), 16)
        if parallel:
            _exercise(dtypes.as_dtype(dtype), 1 << 14)
    elapsed = time.perf_counter() - start
    if verbose:
        print(f"nbprop.warmup: compiled in {elapsed:.1f} s")
    return elapsed
