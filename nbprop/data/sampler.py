"""Samplers in torch.utils.data's names: the orders in which DataLoader visits a map-style dataset.

Random samplers draw from an nbprop.Generator (`generator=`) or, without one, as PyTorch does: one seed per pass
from the default stream (so `nbprop.manual_seed` makes the shuffles repeat and each pass costs the default
stream one draw, however large the dataset). Draws happen when iteration starts, not at construction.
"""

import itertools
import numbers

import numpy as np

from nbprop import dtypes
from nbprop import random as nbprop_random
from nbprop.creation import tensor as make_tensor
from nbprop.ops.sampling import multinomial
from nbprop.random import numpy_generator
from nbprop.tensor import Tensor

__all__ = ["BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
           "WeightedRandomSampler"]

# RandomSampler with replacement draws this many indices at a time (PyTorch's chunk), so that a pass stopped
# early has not drawn the rest.
_REPLACEMENT_CHUNK = 32


class Sampler:
    """Base class: `__iter__` yields indices (or lists of indices, for a batch sampler); `__len__` is optional
    but DataLoader's len() needs it."""

    def __iter__(self):
        raise NotImplementedError


def _pass_stream(generator, op):
    """The NumPy stream for one pass: the generator's own, or a fresh one seeded by one draw from the default
    stream (PyTorch's RandomSampler does the same with its global generator)."""
    if generator is None:
        return np.random.default_rng(int(nbprop_random.generator().integers(2 ** 63)))
    return numpy_generator(generator, None, op)


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the samples: a permutation per pass (repeated and cut to `num_samples` if that differs
    from the dataset's length) or, with `replacement=True`, `num_samples` independent uniform draws."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        count = self.num_samples
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            empty = " (the dataset is empty)" if num_samples is None and count == 0 else ""
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={count}{empty}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        size = len(self.data_source)
        if size == 0:
            raise ValueError(f"RandomSampler: cannot draw {self.num_samples} samples from an empty dataset")
        rng = _pass_stream(self.generator, "RandomSampler")
        if self.replacement:
            for _ in range(self.num_samples // _REPLACEMENT_CHUNK):
                yield from rng.integers(0, size, size=_REPLACEMENT_CHUNK).tolist()
            yield from rng.integers(0, size, size=self.num_samples % _REPLACEMENT_CHUNK).tolist()
            return
        for _ in range(self.num_samples // size):
            yield from rng.permutation(size).tolist()
        if self.num_samples % size:  # PyTorch draws this permutation even when nothing of it is used
            yield from rng.permutation(size).tolist()[:self.num_samples % size]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, a new one per pass."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for position in numpy_generator(self.generator, None, "SubsetRandomSampler").permutation(
                len(self.indices)).tolist():
            yield self.indices[position]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices into `weights` drawn in proportion to the weights (with replacement by default),
    as `nbprop.multinomial(weights, num_samples, replacement, generator=generator)`."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        if isinstance(weights, Tensor):
            weights = weights.to(dtypes.float64)
        else:
            weights = make_tensor(np.asarray(weights, dtype=np.float64))
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(weights.shape)}")
        self.weights = weights
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        yield from multinomial(self.weights, self.num_samples, self.replacement, generator=self.generator).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler` (any iterable of indices); the last, shorter list is dropped
    when `drop_last`."""

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        if self.drop_last:
            for batch in zip(*[indices] * self.batch_size):
                yield [*batch]
            return
        batch = [*itertools.islice(indices, self.batch_size)]
        while batch:
            yield batch
            batch = [*itertools.islice(indices, self.batch_size)]

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
