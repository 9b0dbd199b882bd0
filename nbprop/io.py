"""save/load of state dicts and nested checkpoints in the safetensors format; saving is atomic, so a failed save
loses nothing."""

import contextlib
import json
import math
import os
import struct
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import safetensors
import safetensors.numpy

from nbprop import dtypes
from nbprop.atomic_write import write_atomically
from nbprop.backend import DEVICES, HOST
from nbprop.tensor import Tensor

__all__ = ["save", "load"]

# The header entry that keeps the state dict's key order (safetensors itself stores keys sorted).
_ORDER_KEY = "nbprop.key_order"
# The header entry of a nested checkpoint: its structure as JSON, each tensor a reference to a stored one.
_STRUCTURE_KEY = "nbprop.structure"
_HOLDS = ("Tensors (or NumPy arrays), dicts and OrderedDicts with str or int keys, lists, tuples, str, int, float, "
          "bool and None")

# Stored dtypes read without loss into nbprop's: narrower integers widen to int64, half floats to float32.
_WIDENED = {
    "I8": np.int8, "I16": np.int16, "I32": np.int32, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
}
_NATIVE = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def _bfloat16_bits(array):
    """The bfloat16 bit patterns (uint16) of a float array, rounded to nearest even as PyTorch's .bfloat16():
    float64 is rounded to float32 first, as PyTorch does; a NaN stays a (quiet) NaN of its sign."""
    single = np.asarray(array, dtype=np.float32)
    bits = single.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(single)
    rounded[nan] = (bits[nan] >> 16).astype(np.uint16) | 0x7FC0
    return rounded


def _stored(array, dtype):
    """A floating array as saved in `dtype` (a NumPy float dtype or dtypes.bfloat16): the array, or uint16
    bfloat16 bit patterns. float64 reaches float16 through float32, as in PyTorch's .half()."""
    with np.errstate(over="ignore"):  # beyond the range is inf, as documented
        if dtype is dtypes.bfloat16:
            return _bfloat16_bits(array)
        if dtype == dtypes.float16 and array.dtype == np.float64:
            array = array.astype(np.float32)
        return array.astype(dtype, copy=False)


def _checked_array(value, what, dtype):
    """The C-contiguous host array of a Tensor or NumPy array (floating ones converted to the storage `dtype`,
    when given) and whether it holds bfloat16 bit patterns; `what` names the value in errors."""
    if isinstance(value, Tensor):
        array = DEVICES[value.device].to_numpy(value._data)  # saved from host memory, loaded onto the host
    else:
        array = value
    if array.dtype not in (np.float16, np.float32, np.float64, np.int64, np.bool_):
        raise TypeError(f"save: {what} has dtype {array.dtype}; expected float32, float64, int64 or bool (or a "
                        "float16 NumPy array)")
    bfloat16 = False
    if dtype is not None and array.dtype.kind == "f":
        array = _stored(array, dtype)
        bfloat16 = dtype is dtypes.bfloat16
    # Not np.ascontiguousarray: it turns a 0-d array into a 1-d one.
    return (array if array.flags.c_contiguous else np.array(array, order="C")), bfloat16


def _is_state_dict(obj):
    """Whether `obj` is a flat state dict (str -> Tensor or NumPy array): saved in the plain safetensors layout,
    one stored tensor per key, which PyTorch's safetensors reads as it is."""
    return isinstance(obj, Mapping) and all(isinstance(key, str) and isinstance(value, (Tensor, np.ndarray))
                                            for key, value in obj.items())


def _arrays(obj, dtype=None):
    """The C-contiguous arrays of a flat state dict (floating ones converted to the storage `dtype`, when given)
    and the keys of those that hold bfloat16 bit patterns, checked before anything touches the disk."""
    arrays, bfloat16_keys = {}, set()
    for key, value in obj.items():
        if key == "__metadata__":
            # The safetensors header keeps its metadata under this name: the file could not be read back.
            raise ValueError("save: the state dict key '__metadata__' is reserved by the safetensors format "
                             "for the file's metadata; rename that entry")
        arrays[key], bfloat16 = _checked_array(value, f"the value of {key!r}", dtype)
        if bfloat16:
            bfloat16_keys.add(key)
    return arrays, bfloat16_keys


def _child(name, key):
    """The stored name of an entry of the container stored as `name`: PyTorch's dotted state-dict style."""
    return f"{name}.{key}" if name else str(key)


class _Encoder:
    """Turns a nested checkpoint into JSON-ready structure and the arrays it refers to. Tensors are stored under
    their place in the structure (`optimizer.state.0.exp_avg`), so the file reads well in other tools too."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.arrays, self.bfloat16_keys = {}, set()
        self.open = set()  # the containers being encoded: one met again inside itself is a cycle

    def tensor(self, value, location, name):
        unique, suffix = name or "tensor", 1
        while unique in self.arrays or unique == "__metadata__":
            unique, suffix = f"{name or 'tensor'}#{suffix}", suffix + 1
        self.arrays[unique], bfloat16 = _checked_array(value, location, self.dtype)
        if bfloat16:
            self.bfloat16_keys.add(unique)
        return {"tensor": unique}

    def encode(self, value, location, name):
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            # JSON has no inf or NaN (Python's json would write non-standard tokens other readers refuse).
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return self.encode(value.item(), location, name)  # a NumPy scalar is kept as the Python number
        if isinstance(value, (Tensor, np.ndarray)):
            return self.tensor(value, location, name)
        if not (isinstance(value, Mapping) or type(value) in (list, tuple)):
            hint = "; pass model.state_dict()" if hasattr(value, "state_dict") else ""
            raise TypeError(f"save: {location} has type {type(value).__name__}; a checkpoint holds {_HOLDS}{hint}")
        if id(value) in self.open:
            raise ValueError(f"save: {location} contains itself; a checkpoint must be a tree")
        self.open.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {"OrderedDict" if isinstance(value, OrderedDict) else "dict": [
                    [self.key(key, location), self.encode(item, f"{location}[{key!r}]", _child(name, key))]
                    for key, item in value.items()]}
            items = [self.encode(item, f"{location}[{index}]", _child(name, index)) for index, item in enumerate(value)]
            return items if type(value) is list else {"tuple": items}
        finally:
            self.open.discard(id(value))

    @staticmethod
    def key(key, location):
        if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
            return key
        raise TypeError(f"save: {location} has the key {key!r} of type {type(key).__name__}; checkpoint keys must "
                        "be str or int")


def _serialize(arrays, bfloat16_keys, metadata):
    """The safetensors bytes of the arrays; those named in `bfloat16_keys` hold bfloat16 bit patterns, which
    safetensors.numpy cannot label (NumPy has no bfloat16), so that file is written through safetensors'
    TensorSpec."""
    if not bfloat16_keys:
        return safetensors.numpy.save(arrays, metadata=metadata)
    little = {key: array.astype(array.dtype.newbyteorder("<"), copy=False) for key, array in arrays.items()}
    specs = {key: safetensors.TensorSpec(dtype="bfloat16" if key in bfloat16_keys else array.dtype.name,
                                         shape=array.shape, data_ptr=array.ctypes.data, data_len=array.nbytes)
             for key, array in little.items()}
    return bytes(safetensors.serialize(specs, metadata=metadata))


def save(obj, path, *, dtype=None):
    """Write `obj` to `path` in the safetensors format, atomically: a state dict (str -> Tensor), or a nested
    checkpoint as PyTorch users write one, e.g. {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
    "epoch": 3}: dicts and OrderedDicts with str or int keys, lists, tuples, Tensors (and NumPy arrays), str, int,
    float (inf and NaN too), bool and None, nested to any depth (NumPy scalars are kept as Python numbers).

    A flat state dict is stored one safetensors tensor per key. In a nested checkpoint every tensor is a
    safetensors tensor named by its place (`optimizer.state.0.exp_avg`) and everything else is JSON in the
    file's metadata: no pickle, so loading a file from anyone runs no code. A value of another type, a key that
    is not str or int, or a container inside itself raises before anything is written, naming where it is.

    `dtype` (nbprop.float16, nbprop.bfloat16, float32 or float64) stores every floating tensor in that dtype,
    rounded to nearest even as PyTorch's .half() / .bfloat16() round (out-of-range values become inf);
    integer and bool tensors are stored as they are. `load` reads such a file back into float32 tensors.
    By default each tensor is stored in its own dtype.

    The bytes go to a temporary file in the same directory, which is flushed and fsynced, then renamed over
    `path` (os.replace) and the directory fsynced. A failure at any point (a full disk, an interrupted
    process) leaves any previous file at `path` intact; the temporary files of killed saves to the same
    path are removed by the next save. A symlink at `path` stays: its target is replaced. The file loads
    with `safetensors.torch.load_file`.
    """
    path = os.fspath(path)
    dtype = None if dtype is None else dtypes.storage_dtype(dtype, "save")
    if _is_state_dict(obj):
        arrays, bfloat16_keys = _arrays(obj, dtype)
        metadata = {_ORDER_KEY: json.dumps(list(arrays))}
    else:
        encoder = _Encoder(dtype)
        structure = encoder.encode(obj, "obj", "")
        arrays, bfloat16_keys = encoder.arrays, encoder.bfloat16_keys
        metadata = {_STRUCTURE_KEY: json.dumps(structure, allow_nan=False)}
    write_atomically(path, _serialize(arrays, bfloat16_keys, metadata))


def _invalid(path, reason):
    return RuntimeError(f"load: {path!r} is not a valid safetensors checkpoint ({reason}); the file may be "
                        "truncated, still being written, or not a safetensors file")


def _header(data, path):
    """The JSON header of a safetensors file, checked against the file's length."""
    if len(data) < 8:
        raise _invalid(path, f"{len(data)} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise _invalid(path, f"the header claims {length} bytes but the file has {len(data) - 8} after the "
                             "length field")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        raise _invalid(path, f"the header is not JSON: {type(error).__name__}: {error}") from error
    if not isinstance(header, dict):
        raise _invalid(path, "the header is not a JSON object")
    return header


def _to_array(key, view, path):
    """A writeable NumPy array of a supported dtype from one deserialized entry."""
    dtype, shape, raw = view["dtype"], tuple(view["shape"]), view["data"]
    if dtype == "BOOL":
        # Any nonzero byte is True; NumPy would keep the byte itself, which the kernels read as a number.
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(shape)
    if dtype in _NATIVE:
        return np.frombuffer(raw, dtype=np.dtype(_NATIVE[dtype]).newbyteorder("<")).astype(_NATIVE[dtype]) \
            .reshape(shape)
    if dtype in _WIDENED:
        stored = np.dtype(_WIDENED[dtype]).newbyteorder("<")
        return np.frombuffer(raw, dtype=stored).astype(np.int64).reshape(shape)
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(shape)
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: shift its bits into place (exact).
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    raise TypeError(f"load: {path!r}: the tensor {key!r} has dtype {dtype}, which nbprop cannot hold "
                    "(float32, float64, int64, bool, and narrower ints or half floats that widen to them)")


def _decode(node, tensors, path):
    """The value a nested checkpoint's structure entry stands for; anything `save` does not write is refused."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(item, tensors, path) for item in node]
    if isinstance(node, dict) and len(node) == 1:
        ((tag, body),) = node.items()
        if tag == "tensor" and isinstance(body, str) and body in tensors:
            return tensors[body]
        if tag == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag == "tuple" and isinstance(body, list):
            return tuple(_decode(item, tensors, path) for item in body)
        if tag in ("dict", "OrderedDict") and isinstance(body, list):
            pairs = []
            for pair in body:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                        and not isinstance(pair[0], bool)):
                    raise _invalid(path, f"a {tag} entry of its structure is {str(pair)[:80]}, not a [key, value] "
                                         "pair with a str or int key")
                pairs.append((pair[0], _decode(pair[1], tensors, path)))
            return OrderedDict(pairs) if tag == "OrderedDict" else dict(pairs)
    raise _invalid(path, f"its structure holds {str(node)[:80]}, which save does not write")


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON (save writes a non-finite float as {{\"float\": ...}})")


def _structure(text, tensors, path):
    """The nested checkpoint described by the metadata entry `text`."""
    try:
        return _decode(json.loads(text, parse_constant=_refuse_constant), tensors, path)
    except RecursionError as error:
        raise _invalid(path, "its structure is nested too deeply") from error
    except (ValueError, TypeError) as error:
        raise _invalid(path, f"its structure is not JSON: {type(error).__name__}: {error}") from error


def load(path):
    """Read what `save` wrote: a state dict (also one written by `safetensors.torch.save_file`) as an ordered
    dict of str -> Tensor in the order it was saved, or a nested checkpoint as the structure that was saved
    (dicts, OrderedDicts, lists and tuples as they were; NumPy arrays come back as Tensors). Nothing in the file
    is executed. A truncated, foreign or tampered file raises RuntimeError naming the path.

    Stored dtypes nbprop does not compute in widen without loss: F16 and BF16 tensors load as float32 ones,
    narrower integers as int64 ones.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        data = handle.read()
    header = _header(data, path)
    try:
        views = safetensors.deserialize(data)
    except Exception as error:  # safetensors raises its own SafetensorError for every malformed file
        raise _invalid(path, str(error)) from error
    arrays = {key: _to_array(key, view, path) for key, view in views}
    order = sorted(arrays)  # deserialize gives a hash map's order, which changes from run to run
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict):  # null (allowed); safetensors has rejected any other non-object
        metadata = {}
    if _STRUCTURE_KEY in metadata:
        return _structure(metadata[_STRUCTURE_KEY], {key: Tensor._make(arrays[key], None, HOST) for key in order},
                          path)
    # A damaged order entry is not worth an error: the tensors are intact, in safetensors' sorted order.
    with contextlib.suppress(ValueError, TypeError, RecursionError):
        saved_order = json.loads(metadata.get(_ORDER_KEY, "null"))
        if isinstance(saved_order, list) and sorted(saved_order) == sorted(order):
            order = saved_order
    return OrderedDict((key, Tensor._make(arrays[key], None, HOST)) for key in order)
