"""default_collate and default_convert, as in torch.utils.data: a list of samples becomes one batch of the same
structure (tensors stacked along a new dimension 0, numbers and NumPy arrays made tensors, dicts, tuples and
lists collated field by field, strings left as lists)."""

import collections.abc
import copy
import re

import numpy as np

from nbprop import dtypes
from nbprop.creation import as_tensor, tensor
from nbprop.ops.movement import stack
from nbprop.tensor import Tensor

__all__ = ["default_collate", "default_convert"]

# NumPy dtypes of strings and objects, which do not become tensors (PyTorch's pattern).
_STRING_OR_OBJECT = re.compile(r"[SaUO]")

_COLLATE_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_numpy(value):
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ not in ("str_", "string_")


def default_convert(data):
    """One sample with its NumPy arrays (and NumPy scalars) made tensors, inside dicts, tuples and lists too (a
    tuple becomes a list, as in PyTorch). DataLoader's conversion when batching is off (batch_size=None)."""
    if isinstance(data, Tensor):
        return data
    if _is_numpy(data):
        if isinstance(data, np.ndarray) and _STRING_OR_OBJECT.search(data.dtype.str) is not None:
            return data
        return as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return type(data)({key: default_convert(data[key]) for key in data})
        except TypeError:
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # a namedtuple keeps its type
        return type(data)(*(default_convert(item) for item in data))
    if isinstance(data, tuple):
        return [default_convert(item) for item in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for position, item in enumerate(data):
                    clone[position] = default_convert(item)
                return clone
            return type(data)([default_convert(item) for item in data])
        except TypeError:
            return [default_convert(item) for item in data]
    return data


def _collate_numpy_arrays(batch):
    if _STRING_OR_OBJECT.search(batch[0].dtype.str) is not None:
        raise TypeError(_COLLATE_ERROR.format(batch[0].dtype))
    return default_collate([as_tensor(item) for item in batch])


def default_collate(batch):
    """A list of samples as one batch: tensors stacked along a new dimension 0; NumPy arrays as tensors, stacked;
    Python floats a float64 tensor, ints an int64 tensor, bools a bool tensor, NumPy scalars a tensor of their
    dtype; strings and bytes the list itself; a dict (Mapping) of collated fields; a namedtuple of collated
    fields; a tuple or list of collated positions (a tuple becomes a list, as in PyTorch)."""
    element = batch[0]
    if isinstance(element, Tensor):
        return stack(batch, 0)
    if isinstance(element, np.ndarray):
        return _collate_numpy_arrays(batch)
    if isinstance(element, (np.bool_, np.number, np.object_)):
        return as_tensor(np.asarray(batch))
    if isinstance(element, float):
        return tensor(batch, dtype=dtypes.float64)
    if isinstance(element, int):
        return tensor(batch)
    if isinstance(element, (str, bytes)):
        return batch
    if isinstance(element, collections.abc.Mapping):
        try:
            if isinstance(element, collections.abc.MutableMapping):
                clone = copy.copy(element)
                clone.update({key: default_collate([sample[key] for sample in batch]) for key in element})
                return clone
            return type(element)({key: default_collate([sample[key] for sample in batch]) for key in element})
        except TypeError:
            return {key: default_collate([sample[key] for sample in batch]) for key in element}
    if isinstance(element, tuple) and hasattr(element, "_fields"):  # namedtuple
        return type(element)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(element, collections.abc.Sequence):
        size = len(element)
        if not all(len(sample) == size for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = [list(samples) for samples in zip(*batch)]
        if isinstance(element, tuple):
            return [default_collate(samples) for samples in transposed]
        try:
            if isinstance(element, collections.abc.MutableSequence):
                clone = copy.copy(element)
                for position, samples in enumerate(transposed):
                    clone[position] = default_collate(samples)
                return clone
            return type(element)([default_collate(samples) for samples in transposed])
        except TypeError:
            return [default_collate(samples) for samples in transposed]
    raise TypeError(_COLLATE_ERROR.format(type(element)))
