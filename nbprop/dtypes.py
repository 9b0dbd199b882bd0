"""The dtypes nbprop knows (NumPy dtype objects under PyTorch's names) and PyTorch's promotion rules."""

import builtins

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

float = float32  # noqa: A001 - PyTorch's alias
double = float64
long = int64

SUPPORTED = (float32, float64, int64, bool_)
# NumPy dtypes the kernels do not compute in, each with the supported dtype that holds all its values.
# (uint64 has none: its upper half does not fit int64.)
WIDENED = {np.dtype(narrow): wide for narrow, wide in (
    (np.int8, int64), (np.int16, int64), (np.int32, int64), (np.uint8, int64), (np.uint16, int64),
    (np.uint32, int64), (np.float16, float32))}
ALIASES = {"float32": float32, "float": float32, "float64": float64, "double": float64,
            "int64": int64, "long": int64, "bool": bool_}

_default_dtype = [float32]


def get_default_dtype():
    """The floating dtype of tensors made from Python floats (float32 unless changed)."""
    return _default_dtype[0]


def set_default_dtype(dtype):
    dtype = as_dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: only float32 or float64 can be the default, got {dtype}")
    _default_dtype[0] = dtype


def as_dtype(dtype):
    """A NumPy dtype from an nbprop dtype, a NumPy dtype, a Python type or a name; error if unsupported."""
    if isinstance(dtype, str):
        if dtype in ALIASES:
            return ALIASES[dtype]
    elif dtype is builtins.float:
        return get_default_dtype()
    elif dtype is builtins.int:
        return int64
    elif dtype is builtins.bool:
        return bool_
    else:
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            resolved = None
        if resolved is not None:
            if resolved in SUPPORTED:
                return resolved
            if resolved.kind in "iu":
                return int64
            if resolved.kind == "f" and resolved.itemsize < 4:
                return float32
    raise TypeError(f"dtype {dtype!r} is not supported; use float32, float64, int64 or bool")


def promote(first, second):
    """The result dtype of a binary op between two tensors, as PyTorch computes it."""
    if first is second:
        return first
    if first.kind == "f" and second.kind == "f":
        return float64 if float64 in (first, second) else float32
    if first.kind == "f":
        return first
    if second.kind == "f":
        return second
    if first.kind == "b" and second.kind == "b":
        return bool_
    return int64


def promote_scalar(dtype, scalar):
    """The result dtype of a binary op between a tensor of `dtype` and a Python number."""
    if isinstance(scalar, builtins.bool):
        return dtype
    if isinstance(scalar, builtins.int):
        return int64 if dtype.kind == "b" else dtype
    if isinstance(scalar, (builtins.float, np.floating)):
        return dtype if dtype.kind == "f" else get_default_dtype()
    if isinstance(scalar, np.integer):
        return int64 if dtype.kind == "b" else dtype
    raise TypeError(f"cannot combine a tensor of dtype {dtype} with {type(scalar).__name__}")
