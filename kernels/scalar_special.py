"""The error function and the normal distribution's terms (erf, erfc, normal_terms), per element, inlined where
called: vectorisable float64 arithmetic for float32 arguments, libm for float64 ones."""

import math

import numpy as np

from nbprop.kernels._jit import scalar_function
from nbprop.kernels.scalar import EXP_SHIFT, LN2_HIGH, LN2_LOW, LOG2_E, exp
from nbprop.kernels.scalar_bits import float_from_bits, overload_by_dtype, select

# math.erf and math.erfc are libm calls per element too: GELU's float32 kernels over 1e5 elements took 1.8 ms
# forward and 2.6 ms backward with them, 0.15 and 0.16 ms with what follows. For float32 inputs the functions
# below are float64 arithmetic and selects, which vectorise, and their float64 result is rounded once when
# stored: for z >= 0, erfc(z) = e^(-z^2) t Q(t) with t = 1 / (1 + 0.3 z) in (0, 1], Q of degree 10 (Q is smooth
# up to t = 0: erfc(z) e^(z^2) ~ 1 / (z sqrt pi)), fitted by reweighted least squares on the relative error over
# z in [0, 10.5], beyond which erfc's float32 value is 0 and so is GELU's: relative error 5.5e-10, against
# float32's half ulp of 3e-8. In float64, z^2 and e^(-z^2) stay exact to 1e-14 at z = 10 (in float32 the
# rounding of z^2 alone would cost 6e-6). erfc(-z) is 2 - erfc(z); erf(z) = 1 - erfc(|z|) with z's sign from
# |z| = 0.5 up (no float32 precision lost), and z P(z^2) below, P of degree 5 (relative error 1.2e-11).
# float64 inputs keep libm, as for tanh and log.

SQRT_HALF = 0.7071067811865476  # 1 / sqrt 2
ERFC_T_SCALE = 0.3
ERFC_Q0 = 0.16927842285721081
ERFC_Q1 = 0.16874639044036466
ERFC_Q2 = 0.16700477312796708
ERFC_Q3 = 0.11343152897948086
ERFC_Q4 = 0.25612738413259206
ERFC_Q5 = -0.25827023929059245
ERFC_Q6 = 0.7361909903718336
ERFC_Q7 = -0.803581494801272
ERFC_Q8 = 0.7210012451503932
ERFC_Q9 = -0.32425949635101464
ERFC_Q10 = 0.05433049483211805
# e^-s for the Gaussian e^(-z^2) inside them: exp's reduction with a polynomial of degree 7 instead of 11
# (relative error 5.2e-11, fitted like exp's: float32 results need no more; 1.3x faster), and the range cut at
# e^-700, which is still normal (one power of two scales it) and whose products round to 0 in float32.
GAUSSIAN_LIMIT = 700.0
GAUSSIAN_C2 = 0.5000000067690488
GAUSSIAN_C3 = 0.16666665868937594
GAUSSIAN_C4 = 0.041666294923940125
GAUSSIAN_C5 = 0.008333497062484596
GAUSSIAN_C6 = 0.0013944661041864139
GAUSSIAN_C7 = 0.00019790352471490836
ERF_SMALL = 0.5  # below this |z|, erf is z P(z^2): 1 - erfc(z) would cancel
ERF_P0 = 1.1283791670819743
ERF_P1 = -0.37612638517061847
ERF_P2 = 0.1128377374056205
ERF_P3 = -0.026863112675334873
ERF_P4 = 0.005200275549898963
ERF_P5 = -0.0007692330918130103


@scalar_function
def _exp_of_negative(square):
    """e^-square for a float64 square >= 0 (see GAUSSIAN_LIMIT): 0 from e^-700 down and at inf, NaN at NaN."""
    clamped = select(square < GAUSSIAN_LIMIT, square, GAUSSIAN_LIMIT)  # NaN too: n stays an integer
    scaled = -clamped * LOG2_E
    n = int(scaled + (EXP_SHIFT + 0.5)) - EXP_SHIFT  # round(scaled), as in exp
    n_float = float(n)
    r = (-clamped - n_float * LN2_HIGH) - n_float * LN2_LOW
    p = GAUSSIAN_C7
    p = p * r + GAUSSIAN_C6
    p = p * r + GAUSSIAN_C5
    p = p * r + GAUSSIAN_C4
    p = p * r + GAUSSIAN_C3
    p = p * r + GAUSSIAN_C2
    p = p * r + 1.0
    p = p * r + 1.0
    result = select(square > GAUSSIAN_LIMIT, 0.0, p * float_from_bits((n + 1023) << 52))
    return select(square != square, square, result)


@scalar_function
def _scaled_erfc_of_magnitude(magnitude):
    """e^(z^2) erfc(z) for a float64 z = magnitude >= 0 (or NaN): t Q(t), to 5.5e-10 relative up to z = 10.5
    (and within 1.3e-4 beyond, where e^(-z^2) underflows what it multiplies); 0 at inf."""
    t = 1.0 / (1.0 + ERFC_T_SCALE * magnitude)
    q = ERFC_Q10
    q = q * t + ERFC_Q9
    q = q * t + ERFC_Q8
    q = q * t + ERFC_Q7
    q = q * t + ERFC_Q6
    q = q * t + ERFC_Q5
    q = q * t + ERFC_Q4
    q = q * t + ERFC_Q3
    q = q * t + ERFC_Q2
    q = q * t + ERFC_Q1
    q = q * t + ERFC_Q0
    return t * q


def _erfc_float32(x):
    """erfc x for float32 x, computed and returned in float64 (see the notes above)."""
    z = np.float64(x)  # float(x) would stay float32 in Numba
    magnitude = abs(z)
    tail = _exp_of_negative(magnitude * magnitude) * _scaled_erfc_of_magnitude(magnitude)  # inf: 0 * 0
    return select(z < 0, 2.0 - tail, tail)


def _erf_float32(x):
    """erf x for float32 x, computed and returned in float64: z P(z^2) near 0, +-(1 - erfc |z|) beyond."""
    z = np.float64(x)  # float(x) would stay float32 in Numba
    square = z * z
    p = ERF_P5
    p = p * square + ERF_P4
    p = p * square + ERF_P3
    p = p * square + ERF_P2
    p = p * square + ERF_P1
    p = p * square + ERF_P0
    small = z * p  # -0 stays -0
    magnitude = abs(z)
    large = 1.0 - _exp_of_negative(square) * _scaled_erfc_of_magnitude(magnitude)
    large = select(z < 0, -large, large)
    return select(magnitude < ERF_SMALL, small, large)  # NaN takes the large form, which is NaN


def _normal_terms_float32(x):
    """(erfc(-x / sqrt 2), e^(-x^2 / 2)) for float32 x, in float64, sharing the exponential."""
    z = np.float64(x) * SQRT_HALF  # in float32, rounding z would cost erfc up to 2 z^2 ulp
    gaussian = _exp_of_negative(z * z)
    tail = gaussian * _scaled_erfc_of_magnitude(abs(z))
    return select(z > 0, 2.0 - tail, tail), gaussian


def _erfc_libm(x):
    return math.erfc(x)


def _erf_libm(x):
    return math.erf(x)


def _normal_terms_libm(x):
    return math.erfc(-x * SQRT_HALF), exp(-0.5 * x * x)


def _erfc_in_dtype(x):
    """erfc x (compiled: the overload below; uncompiled: math)."""
    return math.erfc(x)


def _erf_in_dtype(x):
    """erf x (compiled: the overload below; uncompiled: math)."""
    return math.erf(x)


def _normal_terms_in_dtype(x):
    """(erfc(-x / sqrt 2), e^(-x^2 / 2)) (compiled: the overload below; uncompiled: math and NumPy)."""
    return math.erfc(-x * SQRT_HALF), np.exp(-0.5 * x * x)


overload_by_dtype(_erfc_in_dtype, _erfc_float32, _erfc_libm)
overload_by_dtype(_erf_in_dtype, _erf_float32, _erf_libm)
overload_by_dtype(_normal_terms_in_dtype, _normal_terms_float32, _normal_terms_libm)


@scalar_function
def erfc(x):
    """1 - erf x: for float32 x vectorisable float64 arithmetic (stored in float32: within 1 ulp, tiny left-tail
    values included), libm for float64."""
    return _erfc_in_dtype(x)


@scalar_function
def erf(x):
    """The error function: for float32 x vectorisable float64 arithmetic (within 1 ulp when stored in float32),
    libm for float64."""
    return _erf_in_dtype(x)


@scalar_function
def normal_terms(x):
    """(2 Phi(x), e^(-x^2 / 2)): Phi the standard normal distribution function, as erfc(-x / sqrt 2), exact in
    the left tail (where 1 + erf would be 0), and the Gaussian both need. For float32 x vectorisable float64
    arithmetic with one exponential; for float64 bit for bit math.erfc(-x * SQRT_HALF) and exp(-0.5 * x * x)."""
    return _normal_terms_in_dtype(x)
