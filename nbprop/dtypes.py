"""The dtypes nbprop knows (NumPy dtype objects under PyTorch's names) and PyTorch's promotion rules.

Tensors compute in float32, float64, int64 and bool. float16 and bfloat16 are storage dtypes, for checkpoints:
`nbprop.save(state, path, dtype=nbprop.bfloat16)` writes the floating tensors in that 2-byte format, and
`nbprop.load` reads F16 and BF16 tensors into float32 ones (exactly: each of their values is a float32).
Asked for as a tensor's dtype (`nbprop.tensor(data, dtype=nbprop.float16)`), either gives float32, whose
arithmetic is float32's: nbprop has no half-precision kernels (Numba compiles none), and NumPy has no
bfloat16 (the `ml_dtypes` package would bring one: not a dependency).
"""

import builtins

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
float16 = np.dtype(np.float16)


class StorageDtype:
    """A dtype NumPy lacks, known to nbprop as a storage format only (bfloat16: the upper 16 bits of a float32)."""

    __slots__ = ("name", "itemsize", "kind")

    def __init__(self, name, itemsize):
        self.name, self.itemsize, self.kind = name, itemsize, "f"

    def __repr__(self):
        return f"nbprop.{self.name}"

    def __reduce__(self):
        return self.name  # pickles as the module-level object of that name


bfloat16 = StorageDtype("bfloat16", 2)

float = float32  # noqa: A001 - PyTorch's alias
double = float64
long = int64
half = float16

SUPPORTED = (float32, float64, int64, bool_)
# NumPy dtypes the kernels do not compute in, each with the supported dtype that holds all its values.
# (uint64 has none: its upper half does not fit int64.)
WIDENED = {np.dtype(narrow): wide for narrow, wide in (
    (np.int8, int64), (np.int16, int64), (np.int32, int64), (np.uint8, int64), (np.uint16, int64),
    (np.uint32, int64), (np.float16, float32))}
ALIASES = {"float32": float32, "float": float32, "float64": float64, "double": float64,
            "int64": int64, "long": int64, "bool": bool_}
# Storage-only names: a tensor asked for in one of them holds float32 (see the module's docstring).
STORAGE = {"float16": float16, "half": float16, "bfloat16": bfloat16}

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
    """A NumPy dtype from an nbprop dtype, a NumPy dtype, a Python type or a name; error if unsupported.
    Narrower integers give int64, and the storage dtypes float16 and bfloat16 float32."""
    if isinstance(dtype, str):
        if dtype in ALIASES:
            return ALIASES[dtype]
        if dtype in STORAGE:
            return float32
    elif dtype is bfloat16:
        return float32
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


def storage_dtype(dtype, op):
    """The dtype a checkpoint stores floating tensors in: float16, bfloat16, float32 or float64 (a dtype
    object or its name)."""
    if isinstance(dtype, str):
        resolved = STORAGE.get(dtype, ALIASES.get(dtype))
    elif dtype is bfloat16 or dtype is None:
        resolved = dtype
    else:
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            resolved = None
    if resolved is not bfloat16 and (resolved is None or resolved not in (float16, float32, float64)):
        raise TypeError(f"{op}: dtype must be a floating dtype to store the floating tensors in (nbprop.float16, "
                        f"nbprop.bfloat16, float32 or float64), got {dtype!r}")
    return resolved


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
