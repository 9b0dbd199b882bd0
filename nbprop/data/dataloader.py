"""DataLoader, as torch.utils.data.DataLoader in one process: batches of a dataset in a sampler's order.

A TensorDataset (or Subsets of one, as random_split makes) with the default collate is batched by one
index_select per tensor, through the tensors' device, instead of indexing and stacking sample by sample; the
result is the same batch (same values, dtypes, structure and autograd history) that default_collate gives.
"""

import math

import numpy as np

from nbprop.creation import tensor
from nbprop.data.collate import default_collate, default_convert
from nbprop.data.dataset import IterableDataset, Subset, TensorDataset, indices_array
from nbprop.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from nbprop.ops.gather import index_select

__all__ = ["DataLoader", "get_worker_info"]


def get_worker_info():
    """None: nbprop loads data in the main process only (PyTorch returns None there too)."""
    return None


def _tensor_source(dataset):
    """(the TensorDataset, the Subset layers from the outside in) when `dataset` is an unmodified TensorDataset or
    unmodified Subsets of one, whose batches the loader may gather directly; None otherwise."""
    layers = []
    while type(dataset) is Subset:
        layers.append(dataset)
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset:
        return None
    return dataset, layers


class _TensorBatches:
    """Gathers batches of a TensorDataset: host indices through the Subset maps, then one index_select per
    tensor. Negative indices count from the end, as `tensor[index]` does; others out of range raise IndexError."""

    def __init__(self, source):
        self.dataset, layers = source
        # The Subsets' index lists are read once per pass, as host arrays (they may change between passes).
        self.maps = [(indices_array(layer.indices, "DataLoader"), len(layer.dataset)) for layer in layers]
        self.length = len(layers[0]) if layers else len(self.dataset)

    @staticmethod
    def _checked(indices, size):
        if indices.size and (indices.min() < -size or indices.max() >= size):
            bad = indices[(indices < -size) | (indices >= size)][0]
            raise IndexError(f"DataLoader: index {bad} is out of bounds for dimension 0 with size {size}")
        return np.where(indices < 0, indices + size, indices)

    def __call__(self, batch):
        try:
            indices = np.asarray(batch, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"DataLoader: a TensorDataset's sampler must give integer indices, got {batch!r}") from None
        if indices.ndim != 1:
            raise TypeError(f"DataLoader: a batch of indices must be a flat list, got shape {indices.shape}")
        indices = self._checked(indices, self.length)
        for subset_indices, size in self.maps:
            indices = self._checked(subset_indices[indices], size)
        positions = {}
        batch_tensors = []
        for data in self.dataset.tensors:
            if data.device not in positions:
                positions[data.device] = tensor(indices, device=data.device)
            batch_tensors.append(index_select(data, 0, positions[data.device]))
        return batch_tensors


class DataLoader:
    """torch.utils.data.DataLoader's signature and behaviour, in this process (num_workers must be 0).

    batch_size samples per batch (None: no batching, each sample converted by default_convert); shuffle draws a
    new order each pass from `generator` (an nbprop.Generator; the default stream if None); sampler or
    batch_sampler give the order instead; drop_last drops the last, short batch; collate_fn makes a batch of a
    list of samples (default_collate). pin_memory, timeout, worker_init_fn, multiprocessing_context,
    prefetch_factor, persistent_workers, pin_memory_device and in_order are accepted and checked as in PyTorch
    and have nothing to do without workers. Unlike PyTorch, starting a pass draws no worker seed from the
    generator: a pass without shuffle leaves the random streams untouched.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if num_workers > 0:
            raise NotImplementedError(f"DataLoader: num_workers={num_workers} is not supported; nbprop loads data "
                                      f"in the main process only (num_workers=0). Batches of a TensorDataset are "
                                      f"gathered by one kernel per tensor, which needs no workers.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if persistent_workers:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None:
            raise ValueError(f"multiprocessing_context can only be used with multi-process loading (num_workers > "
                             f"0), but got num_workers={num_workers}")
        if isinstance(dataset, IterableDataset):
            if shuffle not in {False, None}:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                                 f"got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                                 "drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        iterable = isinstance(dataset, IterableDataset)
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            if iterable:  # the stream is cut into batches as it comes; check batch_size as BatchSampler would
                BatchSampler([], batch_size, drop_last)
            else:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._auto_collation = batch_size is not None or batch_sampler is not None
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._initialized = True

    def __setattr__(self, name, value):
        if getattr(self, "_initialized", False) and name in ("batch_size", "batch_sampler", "sampler", "drop_last",
                                                              "dataset", "persistent_workers"):
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            length = len(self.dataset)
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last else math.ceil(length / self.batch_size)
            return length
        return len(self.batch_sampler if self._auto_collation else self.sampler)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._iterable_batches()
        return self._map_batches()

    def _map_batches(self):
        order = self.batch_sampler if self._auto_collation else self.sampler
        source = _tensor_source(self.dataset) if self._auto_collation and self.collate_fn is default_collate else None
        gather = _TensorBatches(source) if source is not None else None
        fetch_many = getattr(self.dataset, "__getitems__", None)
        for indices in order:
            if not self._auto_collation:
                yield self.collate_fn(self.dataset[indices])
            elif gather is not None:
                yield gather(indices)
            elif callable(fetch_many):
                yield self.collate_fn(fetch_many(indices))
            else:
                yield self.collate_fn([self.dataset[index] for index in indices])

    def _iterable_batches(self):
        samples = iter(self.dataset)
        if not self._auto_collation:
            for sample in samples:
                yield self.collate_fn(sample)
            return
        while True:
            batch = []
            for sample in samples:
                batch.append(sample)
                if len(batch) == self.batch_size:
                    break
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield self.collate_fn(batch)
            if len(batch) < self.batch_size:
                return
