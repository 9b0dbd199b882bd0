"""scalar.exp, the vectorisable exponential (and the float32 tanh, log, sigmoid, erf, erfc and GELU built like it):
accuracy against NumPy over the whole domain, NumPy's edge cases, serial and threaded loops alike, and proof from
the machine code that a loop calling them is vectorised."""

import math
import re

import numpy as np
import pytest
import scipy.special
from helpers import fresh_and_cached_results
from numba import float32, float64, njit, prange

from nbprop.kernels import activation, elementwise, scalar, scalar_special
from nbprop.kernels._jit import OPTIONS, cpu_kernel, parallel_cpu_kernel

# Allowed distance from NumPy in units in the last place: float64 against np.exp, float32 against the
# correctly rounded value (np.exp in float64, rounded to float32).
MAX_ULP = {np.float64: 2, np.float32: 1}
INTEGER_OF = {np.float64: np.int64, np.float32: np.int32}
# The largest x with a finite e^x, and the x below which e^x rounds to 0.
OVERFLOW = {np.float64: 709.782712893384, np.float32: 88.72283172607422}
UNDERFLOW = {np.float64: -745.1332191019411, np.float32: -103.97207708}
# Where e^x is subnormal: from the underflow threshold up to ln(smallest normal).
SUBNORMAL_TOP = {np.float64: -708.3964185322641, np.float32: -87.33654475}
DTYPES = [np.float32, np.float64]
# In x86 assembly (AT&T): a fused multiply-add on packed 256/512-bit registers, and a reference to libm's exp.
PACKED_FMA = re.compile(r"\bvfn?m(?:add|sub)\d+p[sd]\s+[^\n]*%[yz]mm")
LIBM_EXP_CALL = re.compile(r"[$*\s](?:__)?expf?\b")


@cpu_kernel
def serial_loop(x, out):
    for index in range(x.shape[0]):
        out[index] = scalar.exp(x[index])


@parallel_cpu_kernel
def threaded_loop(x, out):
    for index in prange(x.shape[0]):
        out[index] = scalar.exp(x[index])


@cpu_kernel
def exp_of_scalar(value):
    return scalar.exp(value)


def reference(x):
    """np.exp; for float32 the correctly rounded value (float64 exp rounded once to float32)."""
    with np.errstate(over="ignore"):
        if x.dtype == np.float32:
            return np.exp(x.astype(np.float64)).astype(np.float32)
        return np.exp(x)


def ulp_distance(actual, expected):
    """How many representable numbers apart two arrays of non-negative results are (0 where both are NaN)."""
    integer = INTEGER_OF[actual.dtype.type]
    distance = np.abs(actual.view(integer).astype(np.int64) - expected.view(integer).astype(np.int64))
    both_nan = np.isnan(actual) & np.isnan(expected)
    return np.where(both_nan, 0, distance)


def assert_close_to_numpy(x, label):
    out = np.empty_like(x)
    serial_loop(x, out)
    expected = reference(x)
    distance = ulp_distance(out, expected)
    worst = int(np.argmax(distance))
    assert distance[worst] <= MAX_ULP[x.dtype.type], (
        f"exp {label} ({x.dtype}): {distance[worst]} ulp from NumPy at x = {x[worst]!r}: "
        f"got {out[worst]!r}, expected {expected[worst]!r}"
    )
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected), err_msg=f"exp {label}: NaN where NumPy has none")
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected), err_msg=f"exp {label}: inf unlike NumPy")
    return out


def neighbours(center, dtype, count):
    """`count` consecutive representable numbers of `dtype` on each side of `center` (itself included),
    crossing zero where they reach it (the integers that order floats: a negative float's bit pattern
    counts down from the sign bit)."""
    integer = INTEGER_OF[dtype]
    sign_bit = np.int64(np.iinfo(integer).min)
    bits = np.int64(np.array([center], dtype=dtype).view(integer)[0])
    ordered = bits if bits >= 0 else sign_bit - bits
    steps = ordered + np.arange(-count, count + 1, dtype=np.int64)
    return np.where(steps >= 0, steps, sign_bit - steps).astype(integer).view(dtype)

# --------------------------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_values_over_the_whole_finite_domain(dtype):
    """1e6 values: half uniform where e^x is neither 0 nor inf (and a little beyond), half random bit
    patterns of finite numbers, so every exponent from the smallest subnormal to the largest float is drawn."""
    rng = np.random.default_rng(20261125)
    low, high = UNDERFLOW[dtype] - 2, OVERFLOW[dtype] + 2
    uniform = rng.uniform(low, high, 500_000).astype(dtype)
    integer = INTEGER_OF[dtype]
    bits = rng.integers(np.iinfo(integer).min, np.iinfo(integer).max, 500_000, dtype=integer, endpoint=True)
    patterns = bits.view(dtype)
    patterns = patterns[np.isfinite(patterns)]
    assert_close_to_numpy(np.concatenate([uniform, patterns]), "random")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_grids_where_exp_is_hard(dtype):
    """Around 0 (tiny and subnormal inputs), at the multiples of ln2/2 where the reduction switches n, at the
    overflow and underflow thresholds, and throughout the range of subnormal results."""
    grids = {
        "around 0": np.concatenate([neighbours(0.0, dtype, 40_000), np.linspace(-1e-3, 1e-3, 20_001, dtype=dtype)]),
        "at multiples of ln2/2": np.concatenate([
            neighbours(k * math.log(2.0) / 2, dtype, 50)
            for k in range(int(2 * UNDERFLOW[dtype] / math.log(2.0)), int(2 * OVERFLOW[dtype] / math.log(2.0)) + 1)
        ]),
        "at the overflow threshold": neighbours(OVERFLOW[dtype], dtype, 20_000),
        "at the underflow threshold": neighbours(UNDERFLOW[dtype], dtype, 20_000),
        "with subnormal results": np.linspace(UNDERFLOW[dtype] - 1, SUBNORMAL_TOP[dtype] + 1, 200_001, dtype=dtype),
    }
    for label, x in grids.items():
        assert_close_to_numpy(x, label)


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_cases_are_numpys_bit_for_bit(dtype):
    info = np.finfo(dtype)
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, info.max, -info.max, info.tiny, -info.tiny,
              info.smallest_subnormal, -info.smallest_subnormal, 1.0, -1.0, 0.5, 1e-30, -1e-30]
    x = np.array(values, dtype=dtype)
    out = np.empty_like(x)
    serial_loop(x, out)
    np.testing.assert_array_equal(out, reference(x))
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == math.inf and out[3] == 0.0 and np.isnan(out[4])


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflow_is_inf_exactly_above_the_threshold(dtype):
    at = np.array([OVERFLOW[dtype]], dtype=dtype)
    above = np.nextafter(at, dtype(math.inf))
    out_at, out_above = np.empty_like(at), np.empty_like(above)
    serial_loop(at, out_at)
    serial_loop(above, out_above)
    assert np.isfinite(out_at[0]) and out_at[0] > np.finfo(dtype).max / 2, f"exp({at[0]!r}) = {out_at[0]!r}"
    assert out_above[0] == math.inf, f"exp({above[0]!r}) = {out_above[0]!r}, expected inf"


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormal_results_are_gradual(dtype):
    """e^x for x through the subnormal range takes every step down to the smallest subnormal, then 0."""
    x = np.linspace(UNDERFLOW[dtype] + 0.01, SUBNORMAL_TOP[dtype] - 0.01, 1001, dtype=dtype)
    out = assert_close_to_numpy(x, "subnormal")
    assert np.all((out > 0) & (out < np.finfo(dtype).tiny))
    assert np.all(np.diff(out) >= 0), "exp is not monotonic through the subnormal range"


def test_float32_stays_float32_and_other_inputs_give_float64():
    exp_of_scalar(np.float32(1.5))
    exp_of_scalar(1.5)
    exp_of_scalar(3)
    return_types = {signature.args[0]: signature.return_type for signature in exp_of_scalar.nopython_signatures}
    assert return_types[float32] == float32
    assert return_types[float64] == float64
    assert all(return_types[argument] == float64 for argument in return_types if argument not in (float32,))
    assert exp_of_scalar(3) == pytest.approx(math.exp(3), rel=1e-15)


# ----------------------------------------------------------------------------------- kernels that use it


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_and_threaded_loops_agree_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    x = rng.uniform(UNDERFLOW[dtype] - 1, OVERFLOW[dtype] + 1, 1_000_000).astype(dtype)
    x[::1000] = np.nan
    serial, threaded = np.empty_like(x), np.empty_like(x)
    serial_loop(x, serial)
    threaded_loop.parallel(x, threaded)
    np.testing.assert_array_equal(serial, threaded)
    # The library's elementwise exp, both variants, over a 2-D view.
    grid = x.reshape(1000, 1000)
    serial_2d, threaded_2d = np.empty_like(grid), np.empty_like(grid)
    elementwise.exp.serial(grid, serial_2d)
    elementwise.exp.parallel(grid, threaded_2d)
    np.testing.assert_array_equal(serial_2d.ravel(), serial)
    np.testing.assert_array_equal(threaded_2d.ravel(), serial)


@pytest.mark.parametrize("dtype", [float32, float64])
def test_a_loop_calling_exp_is_vectorised(dtype):
    """LLVM has no vector exp on x86 here: math.exp in a loop becomes one libm call per element. scalar.exp
    must compile to packed (ymm/zmm) fused multiply-adds with no call to exp/expf left."""
    signature = (dtype[::1], dtype[::1])
    # Compiled afresh with the kernels' options but no cache: Numba has no assembly for cached code.
    loop = njit(**dict(OPTIONS, cache=False))(serial_loop.py_func)
    loop.compile(signature)
    assembly = loop.inspect_asm(signature)
    packed_fma = PACKED_FMA.findall(assembly)
    libm_exp = LIBM_EXP_CALL.findall(assembly)
    assert len(packed_fma) >= 6, (
        f"the {dtype} loop over scalar.exp is not vectorised: {len(packed_fma)} packed ymm/zmm FMAs in its "
        "assembly (the polynomial alone needs 7)"
    )
    assert not libm_exp, f"the {dtype} loop over scalar.exp still calls libm: {libm_exp[:3]}"


def test_the_vectorisation_check_sees_a_libm_exp():
    """The check above is not vacuous: the same loop over math.exp shows its libm calls and no packed FMA."""

    def libm_loop(x, out):
        for index in range(x.shape[0]):
            out[index] = math.exp(x[index])

    loop = njit(**dict(OPTIONS, cache=False))(libm_loop)
    signature = (float32[::1], float32[::1])
    loop.compile(signature)
    assembly = loop.inspect_asm(signature)
    assert LIBM_EXP_CALL.findall(assembly)
    assert not PACKED_FMA.findall(assembly)


_CACHE_PROBE = '''
import sys

import numpy as np

from nbprop.kernels import elementwise

rng = np.random.default_rng(11)
results = []
for kernel in (elementwise.exp, elementwise.tanh, elementwise.log, elementwise.sigmoid, elementwise.erf):
    for dtype, low, high in ((np.float32, -110.0, 95.0), (np.float64, -760.0, 720.0)):
        x = rng.uniform(low, high, (300, 301)).astype(dtype)
        if kernel is elementwise.log:
            x = np.abs(x) * np.array(1e-37, dtype)  # subnormal and normal inputs
        serial, parallel = np.empty_like(x), np.empty_like(x)
        kernel.serial(x, serial)
        kernel.parallel(x, parallel)
        results += [serial.astype(np.float64), parallel.astype(np.float64)]
np.save(sys.argv[1], np.stack(results))
'''


def test_exp_kernels_from_the_cache_compute_the_same_bits_as_freshly_compiled(tmp_path):
    """The intrinsics and the dtype overloads behind scalar.exp, tanh, log, sigmoid and erf survive Numba's on-disk
    cache unchanged, and their serial and threaded variants agree bit for bit."""
    fresh, cached = fresh_and_cached_results(tmp_path, _CACHE_PROBE)
    np.testing.assert_array_equal(fresh, cached)
    for serial, parallel in zip(cached[0::2], cached[1::2]):  # (kernel, dtype) pairs in the probe's order
        np.testing.assert_array_equal(serial, parallel)


# ------------------------------------------------------------------ float32 tanh, log and sigmoid (and exp)
# Max ulp from the correctly rounded float32 value (the float64 function rounded once), measured: tanh 1
# (libm's tanhf here: 2), log 1 (libm's logf: 1), sigmoid 1, exp 1.
FLOAT32_KERNELS = {
    "exp": (elementwise.exp, np.exp, 1),
    "tanh": (elementwise.tanh, np.tanh, 1),
    "log": (elementwise.log, np.log, 1),
    "sigmoid": (elementwise.sigmoid, lambda x: 1 / (1 + np.exp(-x)), 1),
}
FLOAT32_EDGES = {
    "exp": [88.0, -88.0, 88.72283172607422, 88.72284, -103.9, -104.0, 89.0, -1000.0, 1000.0],
    "tanh": [1000.0, -1000.0, 9.0, -9.0, 0.625, -0.625, np.nextafter(np.float32(0.625), np.float32(0)), 1e-30,
             -1e-30, 1e-45, -1e-45, 2e-4, -2e-4],
    "log": [1e-45, 3e-45, 1e-40, 1.1754942e-38, 1.1754944e-38, 1e-30, 0.70710677, 0.70710683, 1.4142135,
            1.0000001, 0.99999994, 3.4028235e38, -1e-45, -1.0, -1000.0],
    "sigmoid": [1000.0, -1000.0, 88.0, -88.0, -103.0, -104.0, 17.0, -17.0, 1e-30, -1e-30],
}
SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan]


def float32_cases(name):
    """Random bit patterns of finite floats, a uniform draw over the interesting range, a dense grid over
    [-1, 1] (tanh's and log's switch points are near), the edges listed above and inf, NaN and zeros."""
    rng = np.random.default_rng(20261126)
    bits = rng.integers(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 400_000, dtype=np.int32, endpoint=True)
    patterns = bits.view(np.float32)
    low, high = {"exp": (-106, 90), "tanh": (-12, 12), "log": (0, 20), "sigmoid": (-106, 30)}[name]
    parts = [patterns[np.isfinite(patterns)], rng.uniform(low, high, 300_000).astype(np.float32),
             np.linspace(-1, 1, 200_001, dtype=np.float32), np.array(FLOAT32_EDGES[name] + SPECIALS, np.float32)]
    if name == "log":  # every binade, subnormals included, and around 1
        parts += [np.abs(parts[0]), np.linspace(0.5, 2, 200_001, dtype=np.float32),
                  neighbours(1.0, np.float32, 20_000), neighbours(np.finfo(np.float32).tiny, np.float32, 20_000)]
    return np.concatenate(parts)


@pytest.mark.parametrize("name", FLOAT32_KERNELS)
def test_float32_kernels_are_within_1_ulp_of_the_correctly_rounded_value(name):
    kernel, function, allowed = FLOAT32_KERNELS[name]
    x = float32_cases(name)
    with np.errstate(all="ignore"):
        expected = function(x.astype(np.float64)).astype(np.float32)
    out = np.empty_like(x)
    kernel.serial(x[None], out[None])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected), err_msg=f"{name}: NaN unlike NumPy")
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected), err_msg=f"{name}: inf unlike NumPy")
    finite = np.isfinite(expected)
    # Signed distance in representable numbers (ulp_distance orders non-negative floats only).
    ordered = [np.where(a < 0, np.int64(np.iinfo(np.int32).min) - a, a)
               for a in (out[finite].view(np.int32).astype(np.int64), expected[finite].view(np.int32).astype(np.int64))]
    distance = np.abs(ordered[0] - ordered[1])
    worst = int(np.argmax(distance))
    assert distance[worst] <= allowed, (
        f"{name} float32: {distance[worst]} ulp at x = {x[finite][worst]!r}: got {out[finite][worst]!r}, "
        f"expected {expected[finite][worst]!r}"
    )
    signs = np.signbit(out[finite & (expected == 0)]) == np.signbit(expected[finite & (expected == 0)])
    assert signs.all(), f"{name}: the sign of a zero result differs from NumPy's"


def test_float32_edge_values_exactly():
    x = np.array([1000.0, -1000.0, math.inf, -math.inf, -0.0, 0.0, math.nan], np.float32)
    out = np.empty_like(x)
    elementwise.tanh.serial(x[None], out[None])
    assert out[:4].tolist() == [1.0, -1.0, 1.0, -1.0] and np.signbit(out[4]) and out[5] == 0 and np.isnan(out[6])
    elementwise.sigmoid.serial(x[None], out[None])
    assert out[:6].tolist() == [1.0, 0.0, 1.0, 0.0, 0.5, 0.5] and np.isnan(out[6])
    x = np.array([0.0, -0.0, -1e-45, -1.0, -math.inf, math.inf, math.nan, 1e-45, 1.0, 88.0], np.float32)
    out = np.empty_like(x)
    elementwise.log.serial(x[None], out[None])
    assert out[:2].tolist() == [-math.inf, -math.inf] and np.isnan(out[2:5]).all() and out[5] == math.inf
    assert np.isnan(out[6]) and out[7] == np.float32(np.log(np.float64(x[7]))) and out[8] == 0.0
    elementwise.exp.serial(np.array([[88.0, -88.0, 88.8, -104.0]], np.float32), out[None, :4])
    assert out[0] == np.float32(np.exp(88.0)) and out[1] == np.float32(np.exp(-88.0))
    assert out[2] == math.inf and out[3] == 0.0


@pytest.mark.parametrize("name", ["tanh", "log"])
def test_float64_tanh_and_log_stay_libm(name):
    """float64 is the dtype of gradient checks: it keeps libm's tanh and log, bit for bit."""
    kernel = FLOAT32_KERNELS[name][0]
    x = np.random.default_rng(3).uniform(1e-3, 20, 10_001) * (-1.0 if name == "tanh" else 1.0)
    out = np.empty_like(x)
    kernel.serial(x[None], out[None])
    np.testing.assert_array_equal(out, [getattr(math, name)(value) for value in x])


@pytest.mark.parametrize("name", ["tanh", "log", "sigmoid"])
def test_a_float32_loop_over_tanh_log_or_sigmoid_is_vectorised(name):
    """Packed FMAs and no libm call (tanhf, logf, expf) in the float32 kernel's serial loop."""
    kernel = FLOAT32_KERNELS[name][0]
    array = float32[:, ::1]
    loop = njit(**dict(OPTIONS, cache=False))(kernel.serial.py_func)
    loop.compile((array, array))
    assembly = loop.inspect_asm((array, array))
    assert len(PACKED_FMA.findall(assembly)) >= 5, f"the float32 {name} loop is not vectorised"
    calls = re.findall(r"[$*\s](?:__)?(?:tanhf?|logf?|expf?)\b", assembly)
    assert not calls, f"the float32 {name} loop calls libm: {calls[:3]}"


# --------------------------------------------------------------------------- float32 erf, erfc and GELU
SQRT_TWO = math.sqrt(2.0)
# scalar_special.normal_terms's erfc approximation (relative error 5.5e-10), which GELU's derivative shows unrounded
# where Phi(x) and x phi(x) nearly cancel (its zero near x = -0.75), on top of float32's half spacing.
ERFC_RELATIVE_ERROR = 5.5e-10


# Not cached: a cached loop would keep an inlined scalar function as it was when it was first compiled.
@njit(**dict(OPTIONS, cache=False))
def erfc_loop(x, out):
    for index in range(x.shape[0]):
        out[index] = scalar_special.erfc(x[index])


@njit(**dict(OPTIONS, cache=False))
def gelu_derivative_libm(x, out):
    """GELU's derivative as written before scalar_special.normal_terms: float64 must still give these bits."""
    for index in range(x.shape[0]):
        value = x[index]
        gaussian = scalar.exp(-0.5 * value * value)
        half_cdf = 0.5 * math.erfc(-value * scalar_special.SQRT_HALF)
        out[index] = half_cdf + value * activation.INVERSE_SQRT_TWO_PI * gaussian


ERROR_FUNCTIONS = {
    "erf": (lambda x, out: elementwise.erf.serial(x[None], out[None]), scipy.special.erf),
    "erfc": (erfc_loop, scipy.special.erfc),
    "gelu": (lambda x, out: activation.gelu.serial(x[None], out[None]),
             lambda wide: 0.5 * wide * scipy.special.erfc(-wide / SQRT_TWO)),
}


def error_function_cases():
    """Random bit patterns of finite floats, a uniform draw over [-20, 20] (erfc and GELU reach 0 near -10 and
    -14.5), a dense grid over [-6, 6], runs of neighbours around 0 and erf's switch at +-0.5, and the extremes."""
    rng = np.random.default_rng(20261127)
    bits = rng.integers(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 400_000, dtype=np.int32, endpoint=True)
    patterns = bits.view(np.float32)
    info = np.finfo(np.float32)
    extremes = [1e4, -1e4, info.max, -info.max, info.tiny, -info.tiny, info.smallest_subnormal,
                -info.smallest_subnormal, 10.0, -10.0, 14.5, -14.5] + SPECIALS
    return np.concatenate([
        patterns[np.isfinite(patterns)], rng.uniform(-20, 20, 400_000).astype(np.float32),
        np.linspace(-6, 6, 400_001, dtype=np.float32), neighbours(0.0, np.float32, 20_000),
        neighbours(0.5, np.float32, 2_000), neighbours(-0.5, np.float32, 2_000), np.array(extremes, np.float32),
    ])


def signed_ulp_distance(actual, expected):
    """How many float32 values apart, across zero too (the integers that order floats)."""
    ordered = [np.where(bits < 0, np.int64(np.iinfo(np.int32).min) - bits, bits)
               for bits in (actual.view(np.int32).astype(np.int64), expected.view(np.int32).astype(np.int64))]
    return np.abs(ordered[0] - ordered[1])


@pytest.mark.parametrize("name", ERROR_FUNCTIONS)
def test_float32_erf_erfc_and_gelu_are_within_1_ulp_of_the_correctly_rounded_value(name):
    """erfc's tiny left-tail values (and GELU's, subnormal down to -14.5) are exact to the ulp, not 1 - erf's 0;
    measured: at most 1 ulp, 99.8% correctly rounded."""
    loop, function = ERROR_FUNCTIONS[name]
    x = error_function_cases()
    with np.errstate(all="ignore"):
        expected = function(x.astype(np.float64)).astype(np.float32)
    out = np.empty_like(x)
    loop(x, out)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected), err_msg=f"{name}: NaN unlike the reference")
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(out[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    distance = signed_ulp_distance(out[finite], expected[finite])
    worst = int(np.argmax(distance))
    assert distance[worst] <= 1, (
        f"{name} float32: {distance[worst]} ulp at x = {x[finite][worst]!r}: got {out[finite][worst]!r}, "
        f"expected {expected[finite][worst]!r}"
    )
    zero = finite & (expected == 0)
    assert (np.signbit(out[zero]) == np.signbit(expected[zero])).all(), f"{name}: the sign of a zero differs"


def test_float32_gelu_edges_and_its_left_tail_underflow_smoothly():
    x = np.array([-math.inf, math.inf, math.nan, -0.0, 0.0, -1e4, 1e4, -3.4e38, 3.4e38], np.float32)
    out = np.empty_like(x)
    activation.gelu.serial(x[None], out[None])
    assert np.isnan(out[[0, 2]]).all() and out[1] == math.inf  # -inf * Phi(-inf) = -inf * 0, as PyTorch's NaN
    assert out[3] == 0 and np.signbit(out[3]) and out[4] == 0 and not np.signbit(out[4])
    assert out[5] == 0 and np.signbit(out[5]) and out[6] == 1e4 and out[7] == 0 and out[8] == x[8]
    tail = np.linspace(-20, -4, 160_001, dtype=np.float32)
    values = np.empty_like(tail)
    activation.gelu.serial(tail[None], values[None])
    assert (values <= 0).all() and np.signbit(values).all(), "GELU's left tail left the negative side"
    assert (np.diff(values) <= 0).all(), "GELU is not monotonic through its left tail and its underflow"
    assert (values[tail < -14.5] == 0).all() and ((values > -np.finfo(np.float32).tiny) & (values < 0)).any()


def test_float32_gelu_derivative_is_the_rounded_value_up_to_the_erfc_approximation():
    """|derivative - exact| <= half a float32 spacing + 5.5e-10 (not in ulps: near its zero at x = -0.75 the
    derivative is as small as 1e-8, where any absolute error is many ulps)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-20, 10, 500_000), np.linspace(-1, 0, 500_001)]).astype(np.float32)
    x = np.concatenate([x, np.array(SPECIALS + [-1e4, 1e4], np.float32)])
    out = np.empty_like(x)
    activation.gelu_backward.serial(np.ones_like(x)[None], x[None], out[None])
    wide = x.astype(np.float64)
    with np.errstate(all="ignore"):
        exact = 0.5 * scipy.special.erfc(-wide / SQRT_TWO) + wide * np.exp(-0.5 * wide * wide) / math.sqrt(2 * math.pi)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(exact))  # +-inf: inf * 0, NaN as in PyTorch
    finite = np.isfinite(exact)
    error = np.abs(out[finite] - exact[finite])
    allowed = np.spacing(np.abs(exact[finite]).astype(np.float32)) / 2 + ERFC_RELATIVE_ERROR
    worst = int(np.argmax(error - allowed))
    assert error[worst] <= allowed[worst], f"GELU's derivative at x = {x[finite][worst]!r} is {error[worst]:.3g} off"


def test_float64_erf_and_gelu_stay_libm():
    """float64 (the gradient-check dtype) keeps libm's erf and erfc, bit for bit, in erf and GELU both ways."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-40, 12, 200_000), np.linspace(-38.5, -37, 20_001), [-0.0, 1e-320, -1e4]])
    out = np.empty_like(x)
    elementwise.erf.serial(x[None], out[None])
    np.testing.assert_array_equal(out, [math.erf(value) for value in x])
    activation.gelu.serial(x[None], out[None])
    np.testing.assert_array_equal(out, [0.5 * value * math.erfc(-value * scalar_special.SQRT_HALF) for value in x])
    expected = np.empty_like(x)
    gelu_derivative_libm(x, expected)
    activation.gelu_backward.serial(np.ones_like(x)[None], x[None], out[None])
    np.testing.assert_array_equal(out, expected)


ERROR_FUNCTION_KERNELS = {
    "erf": (elementwise.erf, 2),
    "gelu": (activation.gelu, 2),
    "gelu_backward": (activation.gelu_backward, 3),
}
LIBM_ERROR_FUNCTION_CALL = re.compile(r"[$*\s](?:__)?(?:erfc?f?|expf?)\b")


@pytest.mark.parametrize("name", ERROR_FUNCTION_KERNELS)
def test_a_float32_loop_over_erf_or_gelu_is_vectorised(name):
    """Packed FMAs (the float64 polynomials) and no call to libm's erf, erfc, erff, erfcf or exp left."""
    kernel, arrays = ERROR_FUNCTION_KERNELS[name]
    array = float32[:, ::1]
    loop = njit(**dict(OPTIONS, cache=False))(kernel.serial.py_func)
    loop.compile((array,) * arrays)
    assembly = loop.inspect_asm((array,) * arrays)
    assert len(PACKED_FMA.findall(assembly)) >= 10, f"the float32 {name} loop is not vectorised"
    calls = LIBM_ERROR_FUNCTION_CALL.findall(assembly)
    assert not calls, f"the float32 {name} loop calls libm: {calls[:3]}"


def test_the_erf_vectorisation_check_sees_libm():
    """The check above is not vacuous: a float32 loop over math.erf and math.erfc shows erff and erfc."""

    def libm_loop(x, out):
        for index in range(x.shape[0]):
            out[index] = math.erfc(-x[index] * scalar_special.SQRT_HALF) + math.erf(x[index])

    loop = njit(**dict(OPTIONS, cache=False))(libm_loop)
    signature = (float32[::1], float32[::1])
    loop.compile(signature)
    assert set(LIBM_ERROR_FUNCTION_CALL.findall(loop.inspect_asm(signature))) >= {"$erfc", "$erff"}
