"""nbprop.data: torch.utils.data's datasets, samplers and DataLoader, with train_test_split, scalers, one_hot and
real data sets (nbprop.data.datasets) beside them."""

from nbprop.data import datasets
from nbprop.data.collate import default_collate, default_convert
from nbprop.data.dataloader import DataLoader, get_worker_info
from nbprop.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from nbprop.data.datasets import python_license_text
from nbprop.data.preprocessing import MinMaxScaler, NotFittedError, StandardScaler, one_hot
from nbprop.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from nbprop.data.split import train_test_split

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "MinMaxScaler",
    "NotFittedError", "RandomSampler", "Sampler", "SequentialSampler", "StandardScaler", "Subset",
    "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "datasets", "default_collate",
    "default_convert", "get_worker_info", "one_hot", "python_license_text", "random_split", "train_test_split",
]
