"""Variable-length batches for recurrent layers, as torch.nn.utils.rnn: PackedSequence, pack_padded_sequence,
pad_packed_sequence, pad_sequence, pack_sequence and unpack_sequence."""

import collections
import itertools
import math
import numbers
import operator

from nbprop import dtypes
from nbprop.backend import DEVICES, HOST
from nbprop.ops import movement, padding
from nbprop.ops.gather import index_select
from nbprop.ops.recurrent import PackedToPadded, PaddedToPacked
from nbprop.tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpack_sequence"]


def _integer(value):
    """A Python int of an integer (int, NumPy integer, 0-d integer array); TypeError for anything else."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a length")
    return operator.index(value)


def _host_integers(values, what):
    """A host list of Python ints of a 1-D list, NumPy array or Tensor of integers."""
    if isinstance(values, Tensor):
        if values.dtype.kind not in "iu" or values.ndim != 1:
            raise RuntimeError(f"{what} must be a 1-D integer tensor, got shape {tuple(values.shape)} and dtype "
                               f"{values.dtype}")
        return [int(value) for value in DEVICES[values.device].to_numpy(values.detach()._data).tolist()]
    try:
        return [_integer(value) for value in values]
    except TypeError:
        raise RuntimeError(f"{what} must be a 1-D sequence of integers, got {values!r}") from None


def _inverse_order(order):
    """The positions that sort `order` (stable): for a permutation, its inverse."""
    return sorted(range(len(order)), key=order.__getitem__)


def _index_tensor(values, device):
    """A host list of ints as an int64 tensor on `device`."""
    return Tensor._make(DEVICES[device].asarray(list(values), dtypes.int64), None, device)


class PackedSequence(collections.namedtuple("PackedSequence",
                                            ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """The steps of a batch of sequences sorted by decreasing length, packed: data (sum(batch_sizes), *) holds
    the active entries of step 0, then of step 1, ...; batch_sizes (T,) int64 on the CPU; sorted_indices the
    original batch index of each sorted entry, unsorted_indices its inverse (None when the batch came sorted).
    Built by pack_padded_sequence or pack_sequence; accepted by nn.RNN, nn.LSTM and nn.GRU."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _index_tensor(_inverse_order(_host_integers(sorted_indices, "sorted_indices")),
                                             sorted_indices.device)
        if batch_sizes is None:
            raise TypeError("PackedSequence: batch_sizes is required; build one with pack_padded_sequence or "
                            "pack_sequence")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """The same sequence with data moved or cast by Tensor.to (the indices follow the data's device)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        indices = [None if index is None else index.to(data.device)
                   for index in (self.sorted_indices, self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *indices)

    def cpu(self):
        return self.to(HOST)

    def double(self):
        return self.to(dtypes.float64)

    def float(self):
        return self.to(dtypes.float32)

    @property
    def is_cuda(self):
        return self.data.device.startswith("cuda")

    def is_pinned(self):
        return False


def _batch_sizes(lengths):
    """batch_sizes[t] = how many sequences are longer than t, for lengths sorted in decreasing order."""
    return [sum(1 for length in lengths if length > step) for step in range(lengths[0])] if lengths else []


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):  # noqa: A002
    """Pack a padded batch (T, B, *) ((B, T, *) with batch_first) of sequences of the given lengths.

    With enforce_sorted the lengths must decrease; otherwise the batch is sorted by decreasing length and the
    permutation kept in sorted_indices / unsorted_indices."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence: input must be a Tensor, got {type(input).__name__}")
    lengths = _host_integers(lengths, "pack_padded_sequence: lengths")
    if input.ndim < 2:
        raise RuntimeError(f"pack_padded_sequence: input must have at least 2 dimensions (T, B, *), got shape "
                           f"{tuple(input.shape)}")
    batch_dim = 0 if batch_first else 1
    batch, steps = input.shape[batch_dim], input.shape[1 - batch_dim]
    if len(lengths) != batch:
        raise ValueError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                         f"(batch_size={batch})")
    if enforce_sorted:
        if any(later > earlier for earlier, later in itertools.pairwise(lengths)):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               f"to sidestep this requirement if you do not need ONNX exportability (got lengths "
                               f"{lengths})")
        sorted_indices = None
    else:
        order = sorted(range(len(lengths)), key=lambda index: -lengths[index])  # stable: ties keep their order
        lengths = [lengths[index] for index in order]
        sorted_indices = _index_tensor(order, input.device)
        input = index_select(input, batch_dim, sorted_indices)  # noqa: A001
    if lengths and lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' that "
                           f"is <= 0 (lengths {lengths})")
    if lengths and lengths[0] > steps:
        raise RuntimeError(f"pack_padded_sequence: a length of {lengths[0]} exceeds the padded sequence "
                           f"length {steps} of input shape {tuple(input.shape)}")
    if batch_first:
        input = movement.transpose(input, 0, 1)  # noqa: A001
    features = input.shape[2:]
    batch_sizes = _batch_sizes(lengths)
    flat = movement.reshape(input, (steps, batch, math.prod(features)))
    data = movement.reshape(PaddedToPacked.apply(flat, batch_sizes), (-1,) + tuple(features))
    unsorted_indices = None if sorted_indices is None else _index_tensor(_inverse_order(order), input.device)
    return PackedSequence(data, _index_tensor(batch_sizes, HOST), sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (B,) int64), in the
    original batch order, padded with padding_value to the longest sequence or to total_length."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expects a PackedSequence, got {type(sequence).__name__}")
    if not isinstance(padding_value, numbers.Real):
        raise TypeError(f"pad_packed_sequence: padding_value must be a number, got {type(padding_value).__name__}")
    batch_sizes = _host_integers(sequence.batch_sizes, "batch_sizes")
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {steps}")
        steps = int(total_length)
    data = sequence.data
    batch = batch_sizes[0] if batch_sizes else 0
    features = tuple(data.shape[1:])
    flat = movement.reshape(data, (data.shape[0], math.prod(features)))
    padded = PackedToPadded.apply(flat, batch_sizes, (steps, batch, flat.shape[1]), padding_value)
    padded = movement.reshape(padded, (steps, batch) + features)
    lengths = [sum(1 for size in batch_sizes if size > entry) for entry in range(batch)]
    if batch_first:
        padded = movement.transpose(padded, 0, 1)
    if sequence.unsorted_indices is not None:
        padded = index_select(padded, 0 if batch_first else 1, sequence.unsorted_indices)
        lengths = [lengths[index] for index in _host_integers(sequence.unsorted_indices, "unsorted_indices")]
    return padded, _index_tensor(lengths, HOST)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors (L_i, *) of one trailing shape into (L, B, *) ((B, L, *) with batch_first), L = max L_i,
    each padded with padding_value on its right (or left) end."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    for index, tensor in enumerate(sequences):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"pad_sequence: element {index} is a {type(tensor).__name__}, not a Tensor")
        if tensor.ndim == 0 or tensor.shape[1:] != sequences[0].shape[1:]:
            raise RuntimeError(f"pad_sequence: every sequence must be (L, *) with the same trailing shape; element "
                               f"{index} has shape {tuple(tensor.shape)}, element 0 {tuple(sequences[0].shape)}")
    longest = max(tensor.shape[0] for tensor in sequences)
    padded = []
    for tensor in sequences:
        missing = longest - tensor.shape[0]
        if missing:
            widths = (0, 0) * (tensor.ndim - 1) + ((0, missing) if padding_side == "right" else (missing, 0))
            tensor = padding.pad(tensor, widths, value=padding_value)
        padded.append(tensor)
    return movement.stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_i, *) (sorted by decreasing length unless enforce_sorted=False)."""
    lengths = [tensor.shape[0] for tensor in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The list of tensors (L_i, *) a PackedSequence was made of, in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return [movement.Narrow.apply(padded[index], 0, 0, int(length))
            for index, length in enumerate(DEVICES[lengths.device].to_numpy(lengths._data).tolist())]
