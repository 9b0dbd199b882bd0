"""Datasets in torch.utils.data's names: Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset,
ChainDataset and random_split."""

import bisect
import itertools
import math
import numbers
import warnings

import numpy as np

from nbprop.random import numpy_generator
from nbprop.tensor import Tensor

__all__ = ["ChainDataset", "ConcatDataset", "Dataset", "IterableDataset", "Subset", "TensorDataset", "random_split"]


class Dataset:
    """A map from keys (usually 0, ..., len - 1) to samples: subclasses define `__getitem__` and, for the
    default samplers, `__len__`; they may define `__getitems__(indices)` returning a list of samples, which
    DataLoader then calls once per batch."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define `__iter__`. DataLoader batches it in the order it yields (there
    are no workers, so no per-worker split is needed)."""

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples `tuple(tensor[index] for tensor in tensors)` of tensors with one size along dimension 0.

    DataLoader assembles a batch of it with one gather (index_select) per tensor instead of stacking samples."""

    def __init__(self, *tensors):
        if not tensors:
            raise IndexError("TensorDataset: expects at least one tensor, got none")
        for position, tensor in enumerate(tensors):
            if not isinstance(tensor, Tensor):
                raise TypeError(f"TensorDataset: argument {position} must be a Tensor, got {type(tensor).__name__}")
            if tensor.ndim == 0:
                raise IndexError(f"TensorDataset: argument {position} is 0-d; samples are taken along dimension 0")
        if any(tensor.shape[0] != tensors[0].shape[0] for tensor in tensors):
            raise AssertionError(f"Size mismatch between tensors: sizes along dimension 0 are "
                                 f"{[tensor.shape[0] for tensor in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(tensor[index] for tensor in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices` (a sequence of integers), in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        if type(self).__getitem__ is not Subset.__getitem__ and type(self).__getitems__ is Subset.__getitems__:
            raise NotImplementedError(f"{type(self).__name__} overrides __getitem__ but not __getitems__. When "
                                      f"subclassing Subset and overriding __getitem__, you must also override "
                                      f"__getitems__ to ensure DataLoader works correctly with your custom logic.")

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices):
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[index] for index in indices])
        return [self.dataset[self.indices[index]] for index in indices]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several map-style datasets one after another."""

    @staticmethod
    def cumsum(sequence):
        totals, running = [], 0
        for dataset in sequence:
            running += len(dataset)
            totals.append(running)
        return totals

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        for dataset in self.datasets:
            if isinstance(dataset, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index = len(self) + index
        dataset_index = bisect.bisect_right(self.cumulative_sizes, index)
        sample_index = index if dataset_index == 0 else index - self.cumulative_sizes[dataset_index - 1]
        if dataset_index == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} is out of range for a dataset of {len(self)} samples")
        return self.datasets[dataset_index][sample_index]


class ChainDataset(IterableDataset):
    """The samples of several iterable datasets one stream after another."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for dataset in self.datasets:
            if not isinstance(dataset, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from dataset

    def __len__(self):
        total = 0
        for dataset in self.datasets:
            if not isinstance(dataset, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            total += len(dataset)
        return total


def split_lengths(total, lengths, op):
    """PyTorch's rule: fractions summing to 1 become floor(fraction * total) each, the remainder handed out one
    by one from the first split on; integer lengths must sum to `total`."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError(f"{op}: expects at least one length or fraction, got none")
    for position, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, numbers.Real):
            raise TypeError(f"{op}: lengths must be integers or fractions, got {length!r} at index {position}")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for position, fraction in enumerate(lengths):
            if fraction < 0 or fraction > 1:
                raise ValueError(f"Fraction at index {position} is not between 0 and 1")
            counts.append(math.floor(total * fraction))
        for position in range(total - sum(counts)):
            counts[position % len(counts)] += 1
        for position, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"Length of split at index {position} is 0. This might result in an empty dataset.",
                              stacklevel=3)
        return counts
    for position, length in enumerate(lengths):
        if not isinstance(length, numbers.Integral) or length < 0:
            raise ValueError(f"{op}: lengths must be non-negative integers or fractions summing to 1, got {lengths} "
                             f"(index {position})")
    if sum(lengths) != total:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! ({op}: lengths "
                         f"{lengths} sum to {sum(lengths)}, the dataset has {total} samples)")
    return [int(length) for length in lengths]


def random_split(dataset, lengths, generator=None):
    """Disjoint random Subsets of `dataset` of the given `lengths` (integers summing to len(dataset), or fractions
    summing to 1), drawn by one permutation from `generator` (an nbprop.Generator; the default stream if None)."""
    counts = split_lengths(len(dataset), lengths, "random_split")
    order = numpy_generator(generator, None, "random_split").permutation(sum(counts)).tolist()
    return [Subset(dataset, order[stop - count:stop]) for stop, count in zip(itertools.accumulate(counts), counts)]


def indices_array(indices, op):
    """A sequence of sample indices (list, range, NumPy array or integer Tensor) as a host int64 array."""
    if isinstance(indices, Tensor):
        indices = indices.tolist()
    elif isinstance(indices, range):
        indices = np.arange(indices.start, indices.stop, indices.step)
    array = np.asarray(indices)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise TypeError(f"{op}: expects a 1-D sequence of integer indices, got {array.dtype} of shape {array.shape}")
    return array.astype(np.int64, copy=False)
