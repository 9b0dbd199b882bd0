"""The one decorator policy for every Numba kernel: caching, fast-math flags, serial/parallel variants."""

import os
import types

from numba import njit

# Fast-math without nnan/ninf: autodiff must keep log(0) = -inf and NaN honest. Without nsz too: with
# nsz and reassoc together a kernel compiled fresh and the same kernel loaded from the cache were seen to
# round differently, which breaks bit-identical reruns.
FASTMATH = {"arcp", "contract", "afn", "reassoc"}

# Below this many elements of work a kernel runs serially. Thread start-up is one cost; the larger one is
# contention: Numba's OpenMP threads and BLAS's threads both spin-wait, and on 2 cores an MLP step that
# interleaved BLAS products with threaded kernels of 65k elements took 40 ms instead of 3 ms. So medium
# work stays serial. NBPROP_PARALLEL_THRESHOLD overrides it (the tests lower it to reach the threaded
# variants with small inputs).
PARALLEL_THRESHOLD = int(os.environ.get("NBPROP_PARALLEL_THRESHOLD", 1 << 20))

THREADS_PER_BLOCK = 256

# IEEE semantics (x / 0 = inf, 0 ** -1 = inf) instead of Python's exceptions, and no checks in the loops.
OPTIONS = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


def scalar_function(function):
    """Compile a per-element formula, inlined into every kernel that calls it (CPU or CUDA)."""
    return njit(inline="always", **OPTIONS)(function)


def cpu_kernel(function):
    """Compile a serial CPU kernel."""
    return njit(**OPTIONS)(function)


class ParallelKernel:
    """One kernel source compiled twice: serially (no thread start-up) and with prange for large work."""

    __slots__ = ("serial", "parallel", "__name__")

    def __init__(self, function):
        self.__name__ = function.__name__
        self.serial = njit(**OPTIONS)(function)
        # A renamed copy, so that the two variants keep separate entries in Numba's on-disk cache.
        copy = types.FunctionType(
            function.__code__, function.__globals__, function.__name__ + "_parallel",
            function.__defaults__, function.__closure__,
        )
        copy.__qualname__ = function.__qualname__ + "_parallel"
        copy.__module__ = function.__module__
        self.parallel = njit(parallel=True, **OPTIONS)(copy)

    def for_size(self, size):
        """The variant worth running over `size` elements of work."""
        return self.parallel if size >= PARALLEL_THRESHOLD else self.serial

    def __call__(self, *arrays):
        """Run the variant chosen by the size of the last array (the output, by convention)."""
        return self.for_size(arrays[-1].size)(*arrays)


def parallel_cpu_kernel(function):
    """Compile a CPU kernel whose prange loops run in parallel over large inputs and serially over small."""
    return ParallelKernel(function)
