"""Bit-level helpers of the per-element formulas: float <-> bits casts, a branch-free select, and overloads that
pick a float32 implementation or another one by the argument's type; all vectorise in Numba's loops."""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


@intrinsic
def float_from_bits(typingctx, bits):
    """The float whose IEEE 754 bits are `bits`: int64 -> float64, int32 -> float32 (a plain bitcast,
    which vectorises; Numba has no scalar bitcast of its own)."""
    if bits == types.int64:
        result_type = types.float64
    elif bits == types.int32:
        result_type = types.float32
    else:
        return None

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], context.get_value_type(signature.return_type))

    return result_type(bits), codegen


@intrinsic
def bits_from_float(typingctx, value):
    """The IEEE 754 bits of `value`: float32 -> int32, float64 -> int64 (a bitcast, the inverse of the above)."""
    if value == types.float32:
        result_type = types.int32
    elif value == types.float64:
        result_type = types.int64
    else:
        return None

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], context.get_value_type(signature.return_type))

    return result_type(value), codegen


@intrinsic
def select(typingctx, condition, if_true, if_false):
    """`if_true if condition else if_false` as one LLVM select, no branch in Numba's IR. (A conditional
    expression vectorises too, but inlined twice into one function through an overload, its phi
    variables make Numba warn: NumbaIRAssumptionWarning, variable not in scope.)"""
    if not isinstance(condition, types.Boolean):
        return None
    result_type = typingctx.unify_types(if_true, if_false)
    if result_type is None:
        return None

    def codegen(context, builder, signature, arguments):
        truth = context.cast(builder, arguments[0], signature.args[0], types.boolean)
        chosen_true = context.cast(builder, arguments[1], signature.args[1], result_type)
        chosen_false = context.cast(builder, arguments[2], signature.args[2], result_type)
        return builder.select(truth, chosen_true, chosen_false)

    return result_type(condition, if_true, if_false), codegen


@intrinsic
def maximum_number(typingctx, a, b):
    """The larger of two floats of one type, a NaN losing to a number (LLVM's maxnum): a max reduction written
    with it vectorises, where a compare-and-select one needs the nnan flag the kernels go without (the row max
    of 1024 x 8192 float32: 4.87 ms -> 0.91 ms). Which of -0 and +0 it returns is unspecified."""
    if not isinstance(a, types.Float) or a != b:
        return None

    def codegen(context, builder, signature, arguments):
        value_type = context.get_value_type(signature.return_type)
        maxnum = cgutils.get_or_insert_function(builder.module, ir.FunctionType(value_type, [value_type, value_type]),
                                                f"llvm.maxnum.f{a.bitwidth}")
        return builder.call(maxnum, arguments)

    return a(a, b), codegen


def overload_by_dtype(function, float32_version, other_version):
    """Register the inlined overload of `function` that compiles `float32_version` for a float32 argument and
    `other_version` for other floats, integers and booleans (the body of `function` itself then only runs
    uncompiled, under NUMBA_DISABLE_JIT)."""

    @overload(function, inline="always")
    def _by_dtype(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return float32_version
        if isinstance(x, (types.Float, types.Integer, types.Boolean)):
            return other_version
        return None
