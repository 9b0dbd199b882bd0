"""The elementwise kernel factory: a per-element formula becomes serial and parallel CPU kernels over 2-D arrays.

Every made kernel takes its arrays (rows, columns) of one shape, any strides (a broadcast input has stride 0),
then its scalar arguments, and writes `formula(elements..., scalars...)` into the C-contiguous `out` passed
last. The loop is written once per calling shape below; the formula reaches it as a global of a copy of the
loop, not as a closure, because Numba's on-disk cache keys closures by a pickle that changes every run
(measured: a cache miss on every start).
"""

import types

from numba import prange

from nbprop.kernels._jit import FASTMATH, parallel_cpu_kernel


def _one(a, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column])  # noqa: F821 - a global of each made copy


def _two(a, b, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column], b[row, column])  # noqa: F821


def _three(a, b, c, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column], b[row, column], c[row, column])  # noqa: F821


def _four(a, b, c, d, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column], b[row, column], c[row, column], d[row, column])  # noqa: F821


def _one_with_two_scalars(a, first, second, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column], first, second)  # noqa: F821


def _two_with_one_scalar(a, b, first, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column], b[row, column], first)  # noqa: F821


def _two_with_two_scalars(a, b, first, second, out):
    for row in prange(out.shape[0]):
        for column in range(out.shape[1]):
            out[row, column] = formula(a[row, column], b[row, column], first, second)  # noqa: F821


# (arrays, scalars) -> the loop
_LOOPS = {
    (1, 0): _one, (2, 0): _two, (3, 0): _three, (4, 0): _four,
    (1, 2): _one_with_two_scalars, (2, 1): _two_with_one_scalar, (2, 2): _two_with_two_scalars,
}


def map_kernel(name, formula, arrays, scalars=0, fastmath=FASTMATH):
    """A parallel CPU kernel called `name` that applies the `@scalar_function` `formula` elementwise over
    `arrays` input arrays and `scalars` scalar arguments (`fastmath`: as parallel_cpu_kernel's)."""
    loop = _LOOPS[arrays, scalars]
    source = formula.py_func.__code__
    # The copy claims the formula's file and line: Numba names its cache entry and checks staleness by them,
    # so editing a formula recompiles its kernels.
    code = loop.__code__.replace(co_filename=source.co_filename, co_firstlineno=source.co_firstlineno, co_name=name)
    kernel = types.FunctionType(code, {"formula": formula, "prange": prange}, name)
    kernel.__qualname__ = name
    kernel.__module__ = formula.py_func.__module__
    kernel.__doc__ = formula.__doc__
    return parallel_cpu_kernel(kernel, fastmath)
