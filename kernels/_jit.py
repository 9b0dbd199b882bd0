"""The one decorator policy for every Numba kernel: caching, fast-math flags, serial/parallel variants."""

import os
import threading
import types

import numba
from numba import njit

# Fast-math without nnan/ninf: autodiff must keep log(0) = -inf and NaN honest. Without nsz too: with
# nsz and reassoc together a kernel compiled fresh and the same kernel loaded from the cache were seen to
# round differently, which breaks bit-identical reruns.
FASTMATH = {"arcp", "contract", "afn", "reassoc"}

# The same without `contract`, for kernels whose formulas add two products (a * b + c * d) or whose products
# and sums LLVM's passes may move apart. With contract LLVM fuses a product and a sum into one FMA (one
# rounding instead of two) where it finds them side by side, and which product that is depends on the
# passes the loop went through: Numba compiles a prange body as a function of its own, which the process
# that compiled it runs, while the copy optimized again inside the kernel's module is what the cache keeps
# and what later runs load; the serial variant is a third compilation. The fused optimizer steps
# (`b = momentum b + (1 - dampening) g`, Adam's second moment) came out differently in each: a seeded
# AdamW run gave other weights (by 1.2e-7) with an empty cache than with a warm one, and SGD with momentum
# depended on the parallel threshold. Without contract each product and sum rounds once, in every variant.
# It costs the memory-bound optimizer steps nothing measurable; polynomial kernels (exp) it would slow
# down 1.3-1.9x, so they keep FASTMATH where their products and sums pair up one way only.
FASTMATH_UNFUSED = FASTMATH - {"contract"}

# Below this many elements of work a kernel runs serially. Thread start-up is one cost; the larger one is
# contention: Numba's OpenMP threads and BLAS's threads both spin-wait, and on 2 cores an MLP step that
# interleaved BLAS products with threaded kernels took 40 ms instead of 3 ms with a threshold of 65,536
# elements. So medium work stays serial: the threshold is 2^20 = 1,048,576 elements. NBPROP_PARALLEL_THRESHOLD
# overrides it (the tests set 65,536 to reach the threaded variants with small inputs).
PARALLEL_THRESHOLD = int(os.environ.get("NBPROP_PARALLEL_THRESHOLD", 1 << 20))

THREADS_PER_BLOCK = 256

# IEEE semantics (x / 0 = inf, 0 ** -1 = inf) instead of Python's exceptions, and no checks in the loops.
OPTIONS = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


def scalar_function(function):
    """Compile a per-element formula, inlined into every kernel that calls it (CPU or CUDA).

    Inlined, it is compiled with the fast-math flags of the kernel that calls it."""
    return njit(inline="always", **OPTIONS)(function)


def cpu_kernel(function=None, fastmath=FASTMATH):
    """Compile a serial CPU kernel (`@cpu_kernel`, or `@cpu_kernel(fastmath=FASTMATH_UNFUSED)`)."""
    if function is None:
        return lambda function: cpu_kernel(function, fastmath)
    return njit(**dict(OPTIONS, fastmath=fastmath))(function)


class _Launches:
    """Whether threaded kernels must be launched one at a time: Numba's workqueue threading layer (used when
    neither TBB nor OpenMP loads, or when NUMBA_THREADING_LAYER asks for it) aborts the whole process when
    two Python threads launch threaded kernels at once. The layer is known only after the first launch
    (starting the threads at import would break processes forked later under OpenMP), so launches take the
    lock until then, and keep taking it if the layer is workqueue."""

    lock = threading.Lock()
    free = False

    @classmethod
    def after_launch(cls):
        try:
            cls.free = numba.threading_layer() != "workqueue"
        except ValueError:  # no threads started yet (the kernel ran no parallel region)
            pass


class ThreadedVariant:
    """The prange variant of a kernel, launched under `_Launches.lock` while the threading layer requires it."""

    __slots__ = ("dispatcher",)

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def __call__(self, *arguments):
        if _Launches.free:
            return self.dispatcher(*arguments)
        with _Launches.lock:
            result = self.dispatcher(*arguments)
            _Launches.after_launch()
        return result

    def __getattr__(self, name):
        """The dispatcher's attributes (`signatures`, `compile`, `py_func`, ...)."""
        return getattr(self.dispatcher, name)


class ParallelKernel:
    """One kernel source compiled twice: serially (no thread start-up) and with prange for large work."""

    __slots__ = ("serial", "parallel", "__name__")

    def __init__(self, function, fastmath=FASTMATH):
        self.__name__ = function.__name__
        options = dict(OPTIONS, fastmath=fastmath)
        self.serial = njit(**options)(function)
        # A renamed copy, so that the two variants keep separate entries in Numba's on-disk cache.
        copy = types.FunctionType(
            function.__code__, function.__globals__, function.__name__ + "_parallel",
            function.__defaults__, function.__closure__,
        )
        copy.__qualname__ = function.__qualname__ + "_parallel"
        copy.__module__ = function.__module__
        self.parallel = ThreadedVariant(njit(parallel=True, **options)(copy))

    def for_size(self, size):
        """The variant worth running over `size` elements of work."""
        return self.parallel if size >= PARALLEL_THRESHOLD else self.serial

    def __call__(self, *arrays):
        """Run the variant chosen by the size of the last array (the output, by convention)."""
        return self.for_size(arrays[-1].size)(*arrays)


def parallel_cpu_kernel(function=None, fastmath=FASTMATH):
    """Compile a CPU kernel whose prange loops run in parallel over large inputs and serially over small.

    `@parallel_cpu_kernel`, or `@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)` for a kernel whose serial,
    parallel, fresh and cached compilations must not differ in FMA contraction, or `fastmath=False` where one
    ulp decides an integer-valued result (floor division: arcp made the vectorized float32 loop differ from
    the scalar one)."""
    if function is None:
        return lambda function: ParallelKernel(function, fastmath)
    return ParallelKernel(function, fastmath)
