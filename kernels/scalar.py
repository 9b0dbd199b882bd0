"""Per-element formulas shared by CPU loops and CUDA kernels; each is inlined where it is called."""

import math

import numpy as np

from nbprop.kernels._jit import scalar_function
from nbprop.kernels.scalar_bits import bits_from_float, float_from_bits, overload_by_dtype, select

# ------------------------------------------------------------------------------------------ exponential
# math.exp becomes one libm call per element: LLVM vectorises the loop, then the x86 backend splits every
# vector exp back into scalar calls (no vector math library in Numba's LLVM), 10-30x slower than NumPy.
# This exp is plain arithmetic, which stays vectorised: x = n ln2 + r with n = round(x log2 e) and
# |r| <= ln2/2 (Cody-Waite: ln2 in a high part, exact times n, and a low part); e^r by a near-minimax
# polynomial 1 + r + c2 r^2 + ... in Horner form (degree 11 for float64, 6 for float32, fitted by Remez on
# the relative error: under 0.1 ulp); and e^x = e^r 2^(n - n // 2) 2^(n // 2), two powers of two built from
# their exponent bits and each normal, so the first product is exact, the second rounds once (also into
# the subnormal range) and neither overflows early. Branch-free: the edge cases are selects. Measured:
# at most 1 ulp from np.exp in float64 (0.87 ulp from the exact value) and from the correctly rounded
# value in float32, subnormal results included (tests/test_kernels_scalar_exp.py, compiled with the
# kernels' fast-math flags: reassoc without nsz leaves the Cody-Waite subtractions in their order).

LOG2_E = 1.4426950408889634
LN2_HIGH = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: 32 bits, n * LN2_HIGH is exact for |n| < 2^21
LN2_LOW = 1.90821492927058770002e-10  # ln 2 - LN2_HIGH
EXP_OVERFLOW = 709.782712893384  # the largest x with a finite e^x
EXP_LOW = -746.0  # e^x rounds to 0 below -745.1332...; inputs are clamped to [EXP_LOW, EXP_HIGH]
EXP_HIGH = 710.0
EXP_SHIFT = 1100  # more than |log2(e) EXP_LOW|
# c2..c11 of e^r ~ 1 + r + c2 r^2 + ... + c11 r^11 on |r| <= ln2/2 (relative error 0.08 ulp after rounding).
EXP_C2 = 0.500000000000001
EXP_C3 = 0.16666666666666674
EXP_C4 = 0.041666666666522106
EXP_C5 = 0.008333333333322215
EXP_C6 = 0.0013888888947785523
EXP_C7 = 0.00019841269886563802
EXP_C8 = 2.4801487366025675e-05
EXP_C9 = 2.755724236744966e-06
EXP_C10 = 2.7632640675430235e-07
EXP_C11 = 2.5110038296727242e-08

# float32: NumPy scalars, so that Numba keeps the arithmetic in float32.
LOG2_E_32 = np.float32(LOG2_E)
LN2_HIGH_32 = np.float32(0.693359375)  # 355 / 512: 9 bits, n * LN2_HIGH_32 is exact for |n| < 2^15
LN2_LOW_32 = np.float32(-2.12194440e-4)  # ln 2 - LN2_HIGH_32
EXP_OVERFLOW_32 = np.float32(88.72283172607422)  # 0x42B17217, the largest x with a finite e^x
EXP_LOW_32 = np.float32(-104.0)  # e^x rounds to 0 below -103.97207...
EXP_HIGH_32 = np.float32(89.0)
EXP_SHIFT_32 = np.float32(160.0)  # more than |log2(e) EXP_LOW_32|
# c2..c6 of e^r ~ 1 + r + c2 r^2 + ... + c6 r^6 on |r| <= ln2/2 (relative error 0.09 ulp after rounding).
EXP_C2_32 = np.float32(0.4999999701976776)
EXP_C3_32 = np.float32(0.16666506230831146)
EXP_C4_32 = np.float32(0.041667088866233826)
EXP_C5_32 = np.float32(0.008370262570679188)
EXP_C6_32 = np.float32(0.0013893402647227049)
HALF_32 = np.float32(0.5)
ONE_32 = np.float32(1.0)


def _exp_float64(x):
    """e ** x in float64 (see the notes above)."""
    clamped = select(x > EXP_LOW, x, EXP_LOW)  # NaN and -inf too: the loop stays finite, NaN is put back last
    clamped = select(clamped < EXP_HIGH, clamped, EXP_HIGH)
    scaled = clamped * LOG2_E
    # n = round(scaled), so that |r| <= ln2/2: scaled + EXP_SHIFT is positive, so truncating it floors.
    n = int(scaled + (EXP_SHIFT + 0.5)) - EXP_SHIFT
    n_float = float(n)
    r = (clamped - n_float * LN2_HIGH) - n_float * LN2_LOW
    p = EXP_C11
    p = p * r + EXP_C10
    p = p * r + EXP_C9
    p = p * r + EXP_C8
    p = p * r + EXP_C7
    p = p * r + EXP_C6
    p = p * r + EXP_C5
    p = p * r + EXP_C4
    p = p * r + EXP_C3
    p = p * r + EXP_C2
    p = p * r + 1.0
    p = p * r + 1.0
    half_n = n >> 1
    first_scale = float_from_bits((n - half_n + 1023) << 52)
    second_scale = float_from_bits((half_n + 1023) << 52)
    # Above EXP_OVERFLOW the product overflows to inf by itself (e^x is then beyond the largest float by far
    # more than an ulp), so no select is spent on it.
    result = (p * first_scale) * second_scale
    return select(x != x, x, result)


def _exp_float32(x):
    """e ** x in float32 arithmetic (see the notes above)."""
    clamped = select(x > EXP_LOW_32, x, EXP_LOW_32)
    clamped = select(clamped < EXP_HIGH_32, clamped, EXP_HIGH_32)
    scaled = clamped * LOG2_E_32
    shifted = np.int32(scaled + (EXP_SHIFT_32 + HALF_32))  # round(scaled) + EXP_SHIFT_32, as above
    n_float = np.float32(shifted) - EXP_SHIFT_32
    n = shifted - np.int32(EXP_SHIFT_32)
    r = (clamped - n_float * LN2_HIGH_32) - n_float * LN2_LOW_32
    p = EXP_C6_32
    p = p * r + EXP_C5_32
    p = p * r + EXP_C4_32
    p = p * r + EXP_C3_32
    p = p * r + EXP_C2_32
    p = p * r + ONE_32
    p = p * r + ONE_32
    half_n = n >> 1
    first_scale = float_from_bits(np.int32((n - half_n + 127) << 23))
    second_scale = float_from_bits(np.int32((half_n + 127) << 23))
    result = (p * first_scale) * second_scale  # inf above EXP_OVERFLOW_32, as in float64
    return select(x != x, x, result)


def _exp_in_dtype(x):
    """e ** x in x's dtype: compiled code gets the implementation the overload below picks by type; this
    body only runs uncompiled (NUMBA_DISABLE_JIT), where NumPy stands in."""
    return np.exp(x)


overload_by_dtype(_exp_in_dtype, _exp_float32, _exp_float64)


@scalar_function
def exp(x):
    """e ** x in x's dtype (float32 stays float32), within 1 ulp of the correctly rounded value, as NumPy at
    the edges (NaN -> NaN, inf -> inf, -inf -> 0, overflow to inf, gradual underflow) and vectorisable."""
    return _exp_in_dtype(x)


@scalar_function
def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: with z = exp(-|x|) (never overflows), 1 / (1 + z) for x >= 0 and
    z / (1 + z) below, as one division of a selected numerator: no branch (a branch computed both exps), so
    loops over it vectorise. exp is taken in x's dtype, the division in float64: a float32 result stored
    is rounded once, within 1 ulp (in float32 arithmetic it would be 2 ulp, and only 1.4x faster)."""
    z = float(exp(-abs(x)))
    return select(x >= 0, 1.0, z) / (1.0 + z)


# ------------------------------------------------------------------------- hyperbolic tangent, logarithm
# Like exp, math.tanh and math.log are a libm call per element (tanh 16 ns, log 5 ns an element here); the
# float32 versions below are arithmetic and selects, which vectorise. float64 keeps libm (accuracy first;
# float64 is the dtype of gradient checks, float32 the one of training).

TWO_32 = np.float32(2.0)
# Below this |x| tanh is the odd polynomial x (1 + x^2 q(x^2)); above, 1 - 2 / (e^2|x| + 1), whose subtraction
# then loses at most a bit (the result is over 0.55).
TANH_SMALL_32 = np.float32(0.625)
# q(u) ~ (tanh(sqrt u) - sqrt u) / u^1.5 on [0, 0.625^2], degree 5, least squares on Chebyshev nodes
# (relative error 5e-9 before rounding).
TANH_Q0_32 = np.float32(-0.3333333432674408)
TANH_Q1_32 = np.float32(0.13333304226398468)
TANH_Q2_32 = np.float32(-0.05395940691232681)
TANH_Q3_32 = np.float32(0.021769961342215538)
TANH_Q4_32 = np.float32(-0.008346980437636375)
TANH_Q5_32 = np.float32(0.0022958412300795317)

SMALLEST_NORMAL_32 = np.float32(2.0**-126)
TWO_TO_23_32 = np.float32(2.0**23)
SQRT_HALF_BITS_32 = np.int32(0x3F3504F3)  # the bits of sqrt(1/2) in float32
NAN_32 = np.float32(math.nan)
INFINITY_32 = np.float32(math.inf)
# g(f) ~ (ln(1 + f) - f) / f^2 on [sqrt(1/2) - 1, sqrt(2) - 1], degree 8, least squares on Chebyshev nodes
# (relative error 5e-8 before rounding, which the factor f^2 shrinks below 1e-8 of the result).
LOG_G0_32 = np.float32(-0.4999999701976776)
LOG_G1_32 = np.float32(0.33333322405815125)
LOG_G2_32 = np.float32(-0.2500077188014984)
LOG_G3_32 = np.float32(0.2000196874141693)
LOG_G4_32 = np.float32(-0.1662759929895401)
LOG_G5_32 = np.float32(0.1418900042772293)
LOG_G6_32 = np.float32(-0.131016343832016)
LOG_G7_32 = np.float32(0.12821748852729797)
LOG_G8_32 = np.float32(-0.07866667956113815)


def _tanh_float32(x):
    """tanh x in float32 arithmetic, both forms computed and one selected (see the notes above)."""
    magnitude = abs(x)
    square = x * x
    q = TANH_Q5_32
    q = q * square + TANH_Q4_32
    q = q * square + TANH_Q3_32
    q = q * square + TANH_Q2_32
    q = q * square + TANH_Q1_32
    q = q * square + TANH_Q0_32
    small = x * (q * square + ONE_32)  # not x + x^3 q: at x = -0 that is +0
    # exp of 2|x| > 88.7 is inf and 2 / inf is 0: tanh is then exactly 1; NaN stays NaN.
    large = ONE_32 - TWO_32 / (exp(magnitude + magnitude) + ONE_32)
    large = select(x < 0, -large, large)
    return select(magnitude < TANH_SMALL_32, small, large)


def _tanh_libm(x):
    return math.tanh(x)


def _tanh_in_dtype(x):
    """tanh x in x's dtype (compiled: the overload below; uncompiled: NumPy)."""
    return np.tanh(x)


overload_by_dtype(_tanh_in_dtype, _tanh_float32, _tanh_libm)


def _log_float32(x):
    """ln x in float32 arithmetic: x = 2^k m with m in [sqrt(1/2), sqrt 2) from the bits (a subnormal x scaled
    by 2^23 first), ln x = k ln2 + ln(1 + f) with f = m - 1 exact, ln(1 + f) = f + f^2 g(f), and k ln2 in two
    parts (LN2_HIGH_32 * k is exact). 0 -> -inf, below 0 -> NaN, inf -> inf, NaN -> NaN by selects."""
    subnormal = x < SMALLEST_NORMAL_32
    scaled = select(subnormal, x * TWO_TO_23_32, x)
    bits = bits_from_float(scaled)
    k = np.int32(np.int32(bits - SQRT_HALF_BITS_32) >> 23)
    m = float_from_bits(np.int32(bits - np.int32(k << 23)))
    f = m - ONE_32
    k_float = np.float32(np.int32(k - select(subnormal, np.int32(23), np.int32(0))))
    g = LOG_G8_32
    g = g * f + LOG_G7_32
    g = g * f + LOG_G6_32
    g = g * f + LOG_G5_32
    g = g * f + LOG_G4_32
    g = g * f + LOG_G3_32
    g = g * f + LOG_G2_32
    g = g * f + LOG_G1_32
    g = g * f + LOG_G0_32
    log_of_m = f + (f * f) * g
    result = k_float * LN2_HIGH_32 + (log_of_m + k_float * LN2_LOW_32)
    special = select(x == 0, -INFINITY_32, select(x < 0, NAN_32, x))  # inf and NaN are their own log
    return select(x > 0, select(x < INFINITY_32, result, special), special)


def _log_libm(x):
    return math.log(x)


def _log_in_dtype(x):
    """ln x in x's dtype (compiled: the overload below; uncompiled: NumPy)."""
    return np.log(x)


overload_by_dtype(_log_in_dtype, _log_float32, _log_libm)


@scalar_function
def tanh(x):
    """The hyperbolic tangent in x's dtype: vectorisable float32 arithmetic within 2 ulp, libm for float64."""
    return _tanh_in_dtype(x)


@scalar_function
def log(x):
    """ln x in x's dtype (-inf at 0, NaN below 0): vectorisable float32 arithmetic within 1 ulp (subnormal x
    included), libm for float64."""
    return _log_in_dtype(x)


@scalar_function
def sign(x):
    """-1, 0 or 1 (0 at 0 and at NaN, as PyTorch's sign), also the derivative of abs."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0


@scalar_function
def power(base, exponent):
    """base ** exponent with PyTorch's conventions (0 ** 0 = 1, a negative base with a fractional exponent NaN)."""
    return base**exponent


@scalar_function
def power_base_derivative(base, exponent):
    """d(base ** exponent)/d base = exponent * base ** (exponent - 1), zero where the exponent is zero."""
    if exponent == 0:
        return 0.0
    return exponent * base ** (exponent - 1.0)


@scalar_function
def power_exponent_derivative(base, exponent, result):
    """d(base ** exponent)/d exponent = base ** exponent * log(base), zero where 0 ** (exponent >= 0)."""
    if base == 0 and exponent >= 0:
        return 0.0
    return result * math.log(base)


@scalar_function
def maximum(a, b):
    """The larger of a and b; NaN if either is NaN, as in PyTorch."""
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@scalar_function
def minimum(a, b):
    """The smaller of a and b; NaN if either is NaN, as in PyTorch."""
    if a != a or b != b:
        return a + b
    return a if a <= b else b


@scalar_function
def maximum_derivative(a, b):
    """d max(a, b)/d a: 1 where a wins, 1/2 on a tie (PyTorch splits the gradient), 0 where b wins.

    Where either is NaN the result is NaN and, as in PyTorch, both inputs get the whole gradient.
    """
    if a < b:
        return 0.0
    if a == b:
        return 0.5
    return 1.0


@scalar_function
def minimum_derivative(a, b):
    """d min(a, b)/d a: 1 where a wins, 1/2 on a tie, 0 where b wins (1 where either is NaN, as PyTorch)."""
    if a > b:
        return 0.0
    if a == b:
        return 0.5
    return 1.0


@scalar_function
def improves(value, best, largest):
    """Whether `value` replaces `best` as the running maximum (largest) or minimum: it is strictly beyond
    it, so the first of ties stays, or it is NaN, so a NaN anywhere makes the extreme NaN.
    """
    return (value > best if largest else value < best) or math.isnan(value)


@scalar_function
def accumulate(total, value, product):
    """A running product (where `product`) or sum, advanced by one value."""
    return total * value if product else total + value
