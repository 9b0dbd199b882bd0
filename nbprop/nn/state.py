"""state_dict() and load_state_dict() of Modules: PyTorch's dotted keys, checks and error messages."""

from collections import OrderedDict, namedtuple

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _local_entries(module):
    """(name, tensor) of a module's own parameters and persistent buffers, in PyTorch's order."""
    for name, parameter in module._parameters.items():
        if parameter is not None:
            yield name, parameter
    for name, buffer in module._buffers.items():
        if buffer is not None and name not in module._non_persistent_buffers_set:
            yield name, buffer


def _walk(module, prefix):
    """(key, tensor) for every entry of the state dict: own entries first, then each child's, recursively
    (a shared sub-module appears under each of its names, as in PyTorch)."""
    stack = [(prefix, module)]
    while stack:
        current_prefix, current = stack.pop()
        for name, tensor in _local_entries(current):
            yield current_prefix + name, tensor
        children = [(current_prefix + name + ".", child) for name, child in current._modules.items()
                    if child is not None]
        stack.extend(reversed(children))


def state_dict(module, destination=None, prefix="", keep_vars=False):
    if destination is None:
        destination = OrderedDict()
    for key, tensor in _walk(module, prefix):
        destination[key] = tensor if keep_vars else tensor.detach()
    return destination


def _as_array(value, key):
    """The values of a state-dict entry: an nbprop Tensor itself, else a NumPy array (from NumPy arrays and
    array-likes such as PyTorch tensors)."""
    if isinstance(value, (Tensor, np.ndarray)):
        return value
    if hasattr(value, "detach") and hasattr(value, "shape"):
        value = value.detach()
    if not hasattr(value, "__array__") or not hasattr(value, "shape"):
        raise RuntimeError(f'While copying the parameter named "{key}", expected a Tensor or array-like '
                           f"object from checkpoint but received {type(value)}")
    try:
        return DEVICES[HOST].asarray(value)
    except (TypeError, RuntimeError) as error:
        raise RuntimeError(f'While copying the parameter named "{key}": cannot read the checkpoint value of '
                           f"type {type(value).__name__} as an array ({error})") from error


def load_state_dict(module, state_dict, strict=True):
    """Check every key and shape first, then copy: a load that raises changes nothing (PyTorch may have
    copied part of the entries before raising)."""
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
    expected = OrderedDict(_walk(module, ""))
    missing_keys = [key for key in expected if key not in state_dict]
    unexpected_keys = [key for key in state_dict.keys() if key not in expected]
    error_messages = []
    if strict:
        if missing_keys:
            error_messages.append("Missing key(s) in state_dict: "
                                  + ", ".join(f'"{key}"' for key in missing_keys) + ". ")
        if unexpected_keys:
            error_messages.append("Unexpected key(s) in state_dict: "
                                  + ", ".join(f'"{key}"' for key in unexpected_keys) + ". ")
    copies = []
    for key, target in expected.items():
        if key not in state_dict:
            continue
        source = _as_array(state_dict[key], key)
        if tuple(source.shape) != tuple(target.shape):
            error_messages.append(
                f"size mismatch for {key}: copying a param with shape {_size(source.shape)} from checkpoint, "
                f"the shape in current model is {_size(target.shape)}."
            )
            continue
        if source.dtype.kind not in "fiub":
            error_messages.append(f"dtype mismatch for {key}: the checkpoint holds {source.dtype} values, "
                                  f"which cannot be copied into a {target.dtype} tensor.")
            continue
        if source.dtype.kind == "f" and target.dtype.kind != "f":
            error_messages.append(f"dtype mismatch for {key}: cannot copy floating-point values "
                                  f"({source.dtype}) into a {target.dtype} tensor.")
            continue
        copies.append((target, source))
    if error_messages:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(module).__name__}:\n\t"
                           + "\n\t".join(error_messages))
    for target, source in copies:
        # In place, outside the tape (what PyTorch does under no_grad): the tensor objects stay the same, so
        # optimizers and other references keep seeing them; the version bump flags tensors saved for backward.
        device = DEVICES[target.device]
        values = _on_device(source, device, target.dtype)
        if device.is_writeable(target._data):
            device.copy_into(target._data, values)
        else:
            target._data = device.copy(values)
        target._version_counter[0] += 1
    return IncompatibleKeys(missing_keys, unexpected_keys)


def _on_device(source, device, dtype):
    """`source` (a Tensor, or a NumPy array in host memory) as an array of `dtype` on `device`."""
    if not isinstance(source, Tensor):
        return device.asarray(source, dtype)
    if DEVICES[source.device] is not device:
        return device.asarray(DEVICES[source.device].to_numpy(source._data), dtype)
    return source._data if source.dtype == dtype else device.astype(source._data, dtype)


def _size(shape):
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"
