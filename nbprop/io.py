"""save/load of state dicts in the safetensors format; saving is atomic, so a failed save loses nothing."""

import contextlib
import errno
import json
import os
import re
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import safetensors
import safetensors.numpy

from nbprop.backend import DEVICES, HOST
from nbprop.tensor import Tensor

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["save", "load"]

# The header entry that keeps the state dict's key order (safetensors itself stores keys sorted).
_ORDER_KEY = "nbprop.key_order"

# Stored dtypes read without loss into nbprop's: narrower integers widen to int64, half floats to float32.
_WIDENED = {
    "I8": np.int8, "I16": np.int16, "I32": np.int32, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
}
_NATIVE = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def _arrays(obj):
    """The C-contiguous little-endian arrays of a state dict, checked before anything touches the disk."""
    if not isinstance(obj, Mapping):
        hint = "; pass model.state_dict()" if hasattr(obj, "state_dict") else ""
        raise TypeError(f"save: expects a state dict (a mapping of str -> Tensor), got "
                        f"{type(obj).__name__}{hint}")
    arrays = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"save: state dict keys must be strings, got {key!r} of type "
                            f"{type(key).__name__}")
        if key == "__metadata__":
            # The safetensors header keeps its metadata under this name: the file could not be read back.
            raise ValueError("save: the state dict key '__metadata__' is reserved by the safetensors format "
                             "for the file's metadata; rename that entry")
        if isinstance(value, Tensor):
            array = DEVICES[value.device].to_numpy(value._data)  # saved from host memory, loaded onto the host
        elif isinstance(value, np.ndarray):
            array = value
        else:
            raise TypeError(f"save: the value of {key!r} is a {type(value).__name__}; only Tensors (and "
                            "NumPy arrays) can be saved in the safetensors format")
        if array.dtype not in (np.float32, np.float64, np.int64, np.bool_):
            raise TypeError(f"save: the value of {key!r} has dtype {array.dtype}; expected float32, float64, "
                            "int64 or bool")
        # Not np.ascontiguousarray: it turns a 0-d array into a 1-d one.
        arrays[key] = array if array.flags.c_contiguous else np.array(array, order="C")
    return arrays


def _file_mode(path):
    """The permissions the saved file gets: the old file's, or the usual ones for a new file (the umask)."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory):
    """Make the rename itself durable; a no-op where directories cannot be opened (Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _temporary_name(name):
    """The pattern of the temporary files `save` writes beside `name`: `.<name>.<writer's pid>.<random>.tmp`."""
    return re.compile(re.escape(f".{name}.") + r"(\d{1,10})\.[a-z0-9_]+\.tmp")


def _writer_may_be_alive(temporary, pid):
    """Whether a save may still be writing `temporary`; when in doubt yes, so that a live save is never hurt."""
    if fcntl is None:
        return True  # Windows: no lock to ask, and os.kill(pid, 0) would terminate the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    except (OSError, OverflowError):  # PermissionError: alive under another user
        return True
    else:
        return True  # alive, or its pid reused: the file stays (litter at worst, never a lost save)
    # A writer on another host or in another pid namespace sharing this directory is invisible to
    # os.kill; it holds an exclusive lock on its file until the rename.
    try:
        descriptor = os.open(temporary, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)
    return False


def _remove_stale_temporaries(directory, name):
    """Delete the temporary files of earlier saves to `name` that were killed before their rename."""
    pattern = _temporary_name(name)
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) \
                    and not _writer_may_be_alive(entry.path, int(match[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _resolve(path):
    """The file a save to `path` writes: through symlinks, as PyTorch's `open(path, "wb")` does."""
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise OSError(errno.ELOOP, "save: too many levels of symbolic links", path)
    return target


def save(obj, path):
    """Write the state dict `obj` (str -> Tensor) to `path` in the safetensors format, atomically.

    The bytes go to a temporary file in the same directory, which is flushed and fsynced, then renamed over
    `path` (os.replace) and the directory fsynced. A failure at any point (a full disk, an interrupted
    process) leaves any previous file at `path` intact; the temporary files of killed saves to the same
    path are removed by the next save. A symlink at `path` stays: its target is replaced. The file loads
    with `safetensors.torch.load_file`.
    """
    path = os.fspath(path)
    arrays = _arrays(obj)
    metadata = {_ORDER_KEY: json.dumps(list(arrays))}
    data = safetensors.numpy.save(arrays, metadata=metadata)
    target = _resolve(path)
    directory, name = os.path.split(target)
    # Before writing, so that the space they hold is free for this save.
    _remove_stale_temporaries(directory, name)
    mode = _file_mode(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if fcntl is not None:
                # Held until the rename: tells a cleaner in another pid namespace that this file is live.
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            if fcntl is not None:
                os.replace(temporary, target)
        if fcntl is None:
            os.replace(temporary, target)  # after the close: Windows cannot rename an open file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


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


def load(path):
    """Read a state dict written by `save` (or by `safetensors.torch.save_file`) as an ordered dict of
    str -> Tensor, in the order it was saved. A truncated or foreign file raises RuntimeError naming the path.
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
    # A damaged order entry is not worth an error: the tensors are intact, in safetensors' sorted order.
    with contextlib.suppress(ValueError, TypeError, RecursionError):
        saved_order = json.loads(metadata.get(_ORDER_KEY, "null"))
        if isinstance(saved_order, list) and sorted(saved_order) == sorted(order):
            order = saved_order
    return OrderedDict((key, Tensor._make(arrays[key], None, HOST)) for key in order)
