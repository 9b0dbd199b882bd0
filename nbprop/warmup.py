"""Compile the common kernels ahead of the first training step (from Numba's on-disk cache when warm)."""

import importlib
import time

import numpy as np

from nbprop import dtypes
from nbprop.backend import FAMILIES
from nbprop.creation import ones, tensor
from nbprop.kernels._jit import ParallelKernel


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


def _compile_threaded_variants():
    """Compile the threaded variant of every kernel whose serial variant has been compiled, for the same
    argument types (running the exercise at the threshold's 2^20 elements instead would take seconds)."""
    for family in FAMILIES:
        module = importlib.import_module(f"nbprop.kernels.{family}")
        for kernel in vars(module).values():
            if kernel.__class__ is ParallelKernel:
                for signature in kernel.serial.signatures:
                    kernel.parallel.compile(signature)


def warmup(dtypes_to_compile=(dtypes.float32, dtypes.float64), parallel=False, verbose=False):
    """Compile the kernels that a dense network uses, for each dtype; returns the seconds it took.

    Kernels are compiled lazily anyway; calling this first moves that cost out of the first step.
    With `parallel=True` the multi-threaded variants of the same kernels (run from
    `nbprop.kernels._jit.PARALLEL_THRESHOLD` elements of work, 2^20 by default) are compiled too.
    """
    start = time.perf_counter()
    for dtype in dtypes_to_compile:
        _exercise(dtypes.as_dtype(dtype), 16)
    if parallel:
        _compile_threaded_variants()
    elapsed = time.perf_counter() - start
    if verbose:
        print(f"nbprop.warmup: compiled in {elapsed:.1f} s")
    return elapsed
