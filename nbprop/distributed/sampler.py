"""DistributedSampler (torch.utils.data.distributed's): each rank's disjoint share of a dataset, reshuffled per epoch
from a seed all ranks share."""

import math
import numbers

from nbprop.data.sampler import Sampler
from nbprop.distributed.group import GROUP, init
from nbprop.random import Generator, numpy_generator


class DistributedSampler(Sampler):
    """The indices of rank `rank`'s share of `dataset` among `num_replicas` (default: the process group's rank
    and world size; the group is joined if it was not).

    Every rank draws the same permutation (seeded with `seed + epoch`: call `set_epoch(epoch)` before each
    epoch for a new order; `shuffle=False` keeps 0, 1, ...) and takes every `num_replicas`-th index from its
    rank on. As in PyTorch, the indices are padded with the first ones again so that every rank gets
    ceil(len / num_replicas) of them, or, with `drop_last=True`, the tail is dropped so that every rank gets
    floor(len / num_replicas); either way all ranks take the same number of steps per epoch."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            init()
        num_replicas = GROUP.size if num_replicas is None else num_replicas
        rank = GROUP.rank if rank is None else rank
        for name, value in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"DistributedSampler: {name} must be an integer, got {value!r}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        size = len(dataset)
        if drop_last and size % self.num_replicas:
            self.num_samples = math.ceil((size - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(size / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self):
        size = len(self.dataset)
        if self.shuffle:
            stream = numpy_generator(Generator().manual_seed(self.seed + self.epoch), None, "DistributedSampler")
            indices = stream.permutation(size).tolist()
        else:
            indices = list(range(size))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use the permutation of `epoch` from now on (all ranks must set the same epoch)."""
        self.epoch = epoch
