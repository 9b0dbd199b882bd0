"""nbprop.data against torch.utils.data: datasets, samplers, DataLoader batches and errors, default_collate,
random_split; seeded shuffles; the gathered TensorDataset batches, also on the opaque device (with the
preprocessing of tests/test_data_preprocessing.py)."""

import collections

import numpy as np
import opaque_device
import pytest

import nbprop
from nbprop import data
from nbprop.data import DataLoader, TensorDataset


def _host(value):
    """A batch as nested host values, for comparing nbprop's and PyTorch's: tensors become (dtype kind, array)."""
    if hasattr(value, "detach"):
        array = np.asarray(value.detach().cpu().numpy())
        return ("tensor", array.dtype.kind, array.dtype.itemsize, array.shape, array.tolist())
    if isinstance(value, dict):
        return {key: _host(item) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return (type(value).__name__, tuple(_host(item) for item in value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_host(item) for item in value])
    return value


def _arrays(count=11, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 3, 2)).astype(np.float32), rng.integers(0, 5, count)


# ------------------------------------------------------------------------------------- DataLoader batches


@pytest.mark.torch
@pytest.mark.parametrize("batch_size", [1, 3, 4, 11, 12])
@pytest.mark.parametrize("drop_last", [False, True])
def test_tensor_dataset_batches_match_torch(batch_size, drop_last):
    import torch

    features, labels = _arrays()
    ours = DataLoader(TensorDataset(nbprop.tensor(features), nbprop.tensor(labels)), batch_size=batch_size,
                      drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(features), torch.tensor(labels)),
                                         batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    batches = [_host(batch) for batch in ours]
    assert batches == [_host(batch) for batch in theirs]
    assert len(batches) == len(ours)


def _by_samples(dataset, indices):
    return data.default_collate([dataset[index] for index in indices])


def test_gathered_batches_equal_stacked_samples_and_keep_the_graph():
    features, labels = _arrays(9)
    weights = nbprop.tensor(features.astype(np.float64), requires_grad=True)
    dataset = TensorDataset(weights, nbprop.tensor(labels), nbprop.tensor(labels % 2 == 0))
    subset = data.Subset(data.Subset(dataset, [8, 7, 6, 5, 4, 3, 2]), [6, 0, 2, 4, -1])
    for source, order in ((dataset, [[4, 0, -1], [8, 8]]), (subset, [[0, 1, 2], [3, -2]])):
        loader = DataLoader(source, batch_sampler=order)
        for batch, indices in zip(loader, order):
            expected = _by_samples(source, indices)
            assert isinstance(batch, list) and len(batch) == 3
            for got, want in zip(batch, expected):
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    # The gather is recorded, as torch.stack is: gradients reach the dataset's tensor.
    (batch, _, _), = DataLoader(dataset, batch_sampler=[[2, 2, 5]])
    batch.sum().backward()
    expected = np.zeros_like(features, dtype=np.float64)
    expected[2] = 2
    expected[5] = 1
    np.testing.assert_array_equal(weights.grad.numpy(), expected)


def test_gathered_batch_index_errors():
    dataset = TensorDataset(nbprop.zeros(4, 2))
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 0 with size 4"):
        list(DataLoader(dataset, batch_sampler=[[0, 4]]))
    with pytest.raises(IndexError, match="index -5 is out of bounds"):
        list(DataLoader(dataset, batch_sampler=[[-5]]))
    with pytest.raises(IndexError):  # a Subset pointing outside its dataset
        list(DataLoader(data.Subset(dataset, [0, 9]), batch_size=2))


def test_custom_datasets_use_getitems_and_collate_fn():
    calls = []

    class Squares(data.Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, index):
            return {"x": index * index, "name": f"s{index}"}

        def __getitems__(self, indices):
            calls.append(list(indices))
            return [self[index] for index in indices]

    batches = list(DataLoader(Squares(), batch_size=3))
    assert calls == [[0, 1, 2], [3, 4, 5], [6]]
    assert batches[0]["name"] == ["s0", "s1", "s2"] and batches[0]["x"].tolist() == [0, 1, 4]
    loader = DataLoader(Squares(), batch_size=2, collate_fn=lambda samples: len(samples))
    assert list(loader) == [2, 2, 2, 1]
    # batch_size=None: no batching, each sample converted on its own
    assert [item["x"] for item in DataLoader(Squares(), batch_size=None)][:3] == [0, 1, 4]


@pytest.mark.torch
def test_iterable_dataset_batches_match_torch():
    import torch

    class Ours(data.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    class Theirs(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    for batch_size, drop_last in ((3, False), (3, True), (7, False), (None, False)):
        ours = DataLoader(Ours(), batch_size=batch_size, drop_last=drop_last)
        theirs = torch.utils.data.DataLoader(Theirs(), batch_size=batch_size, drop_last=drop_last)
        assert [_host(batch) for batch in ours] == [_host(batch) for batch in theirs]
        assert len(ours) == len(theirs)
    chained = Ours() + Ours()
    assert isinstance(chained, data.ChainDataset) and list(chained) == list(range(7)) * 2 and len(chained) == 14


# ------------------------------------------------------------------------------------------- collate


@pytest.mark.torch
def test_default_collate_matches_torch():
    import torch

    point = collections.namedtuple("Point", "x y")
    cases = [
        [1, 2, 3],
        [1.5, 2.0],
        [True, False],
        ["a", "b"],
        [(1, 2.0), (3, 4.0)],
        [[1, 2], [3, 4]],
        [{"a": 1, "b": [1.0, 2.0]}, {"a": 2, "b": [3.0, 4.0]}],
        [point(1, 2), point(3, 4)],
        [np.float32(1.5), np.float32(2.5)],
        [np.int64(3), np.int64(4)],
        [np.arange(3.0), np.arange(3.0) + 1],
        [np.ones((2, 2), dtype=np.float32), np.zeros((2, 2), dtype=np.float32)],
    ]
    for batch in cases:
        assert _host(data.default_collate(batch)) == _host(torch.utils.data.default_collate(batch)), batch
        for sample in batch:
            assert _host(data.default_convert(sample)) == _host(torch.utils.data.default_convert(sample)), sample
    tensors = [np.arange(6, dtype=np.float32).reshape(2, 3) + offset for offset in range(3)]
    assert _host(data.default_collate([nbprop.tensor(item) for item in tensors])) == _host(
        torch.utils.data.default_collate([torch.tensor(item) for item in tensors]))


@pytest.mark.torch
def test_default_collate_errors_match_torch():
    import torch

    for batch in ([[1, 2], [3]], [object(), object()], [np.array(["a"]), np.array(["b"])]):
        with pytest.raises(Exception) as theirs:
            torch.utils.data.default_collate(batch)
        with pytest.raises(type(theirs.value)):
            data.default_collate(batch)
    with pytest.raises(RuntimeError, match="equal size"):
        data.default_collate([nbprop.zeros(3), nbprop.zeros(2)])


# -------------------------------------------------------------------------------------------- samplers


@pytest.mark.torch
def test_sampler_lengths_and_sequential_orders_match_torch():
    import torch

    tu = torch.utils.data
    source = list(range(10))
    for ours, theirs in (
        (data.SequentialSampler(source), tu.SequentialSampler(source)),
        (data.RandomSampler(source), tu.RandomSampler(source)),
        (data.RandomSampler(source, num_samples=23), tu.RandomSampler(source, num_samples=23)),
        (data.RandomSampler(source, replacement=True, num_samples=70),
         tu.RandomSampler(source, replacement=True, num_samples=70)),
        (data.SubsetRandomSampler([1, 5, 7]), tu.SubsetRandomSampler([1, 5, 7])),
        (data.WeightedRandomSampler([0.1, 0.9, 0.0], 6), tu.WeightedRandomSampler([0.1, 0.9, 0.0], 6)),
    ):
        assert len(ours) == len(theirs) == len(list(ours))
    for batch_size in (1, 3, 10, 11):
        for drop_last in (False, True):
            ours = data.BatchSampler(data.SequentialSampler(source), batch_size, drop_last)
            theirs = tu.BatchSampler(tu.SequentialSampler(source), batch_size, drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
    assert list(data.SequentialSampler(source)) == source


def test_random_samplers_draw_what_they_claim():
    source = list(range(10))
    generator = nbprop.Generator().manual_seed(5)
    first, second = list(data.RandomSampler(source, generator=generator)), list(
        data.RandomSampler(source, generator=generator))
    assert sorted(first) == sorted(second) == source and first != second
    reference = nbprop.Generator().manual_seed(5)
    assert first == nbprop.randperm(10, generator=reference).tolist()
    assert second == nbprop.randperm(10, generator=reference).tolist()
    longer = list(data.RandomSampler(source, num_samples=25, generator=nbprop.Generator().manual_seed(1)))
    assert [sorted(longer[start:start + 10]) for start in (0, 10)] == [source, source] and len(longer) == 25
    drawn = list(data.RandomSampler(source, replacement=True, num_samples=1000,
                                    generator=nbprop.Generator().manual_seed(2)))
    assert len(drawn) == 1000 and set(drawn) == set(source)
    subset = list(data.SubsetRandomSampler([4, 8, 15, 16], generator=nbprop.Generator().manual_seed(3)))
    assert sorted(subset) == [4, 8, 15, 16]
    weighted = list(data.WeightedRandomSampler([1.0, 0.0, 3.0], 400, generator=nbprop.Generator().manual_seed(4)))
    assert set(weighted) == {0, 2} and 0.65 < weighted.count(2) / 400 < 0.85
    expected = nbprop.multinomial(nbprop.tensor([1.0, 0.0, 3.0], dtype=nbprop.float64), 400, True,
                                  generator=nbprop.Generator().manual_seed(4)).tolist()
    assert weighted == expected
    without = list(data.WeightedRandomSampler([1.0, 2.0, 3.0, 0.5], 4, replacement=False))
    assert sorted(without) == [0, 1, 2, 3]


def test_random_sampler_without_generator_follows_the_default_stream():
    # One draw from the default stream per pass, whatever the dataset's size (as PyTorch's global generator).
    orders, after = [], []
    for size in (10, 1000):
        nbprop.manual_seed(7)
        orders.append(list(data.RandomSampler(range(size))))
        after.append(nbprop.rand(3).tolist())
    assert after[0] == after[1]
    nbprop.manual_seed(7)
    assert list(data.RandomSampler(range(10))) == orders[0]


@pytest.mark.torch
def test_sampler_errors_match_torch():
    import torch

    tu = torch.utils.data
    for make in (
        lambda module: module.RandomSampler([], ),
        lambda module: module.RandomSampler([1, 2], num_samples=0),
        lambda module: module.RandomSampler([1, 2], replacement=1),
        lambda module: module.WeightedRandomSampler([1.0, 2.0], 0),
        lambda module: module.WeightedRandomSampler([[1.0, 2.0]], 2),
        lambda module: module.WeightedRandomSampler([1.0, 2.0], 2, replacement="yes"),
        lambda module: module.BatchSampler([1, 2], 0, False),
        lambda module: module.BatchSampler([1, 2], 2, 1),
        lambda module: list(module.WeightedRandomSampler([1.0, 2.0], 3, replacement=False)),
    ):
        with pytest.raises(Exception) as theirs:
            make(tu)
        with pytest.raises(type(theirs.value)):
            make(data)


# ------------------------------------------------------------------------------------ shuffling, seeds


def test_seeded_shuffle_repeats_and_each_pass_is_a_permutation():
    features, labels = _arrays(10)
    dataset = TensorDataset(nbprop.tensor(features), nbprop.tensor(labels))

    def passes(loader, count=3):
        return [np.concatenate([batch[1].numpy() for batch in loader]).tolist() for _ in range(count)]

    first = passes(DataLoader(dataset, batch_size=4, shuffle=True, generator=nbprop.Generator().manual_seed(11)))
    again = passes(DataLoader(dataset, batch_size=4, shuffle=True, generator=nbprop.Generator().manual_seed(11)))
    other = passes(DataLoader(dataset, batch_size=4, shuffle=True, generator=nbprop.Generator().manual_seed(12)))
    assert first == again and first != other
    assert first[0] != first[1]
    for order in first:
        assert sorted(order) == sorted(labels.tolist())
    nbprop.manual_seed(3)
    default_first = passes(DataLoader(dataset, batch_size=4, shuffle=True))
    nbprop.manual_seed(3)
    assert passes(DataLoader(dataset, batch_size=4, shuffle=True)) == default_first
    # A generator's state taken between passes continues the same shuffles (a checkpoint resumes them).
    generator = nbprop.Generator().manual_seed(11)
    loader = DataLoader(dataset, batch_size=4, shuffle=True, generator=generator)
    passes(loader, 1)
    state = generator.get_state()
    expected = passes(loader, 2)
    generator.set_state(state)
    assert passes(loader, 2) == expected == first[1:]


def test_shuffled_loader_reads_the_same_rows_as_the_samples():
    features, labels = _arrays(13)
    dataset = TensorDataset(nbprop.tensor(features), nbprop.tensor(np.arange(13)))
    for batch_features, batch_indices in DataLoader(dataset, batch_size=5, shuffle=True,
                                                    generator=nbprop.Generator().manual_seed(0)):
        np.testing.assert_array_equal(batch_features.numpy(), features[batch_indices.numpy()])


# ------------------------------------------------------------------------------------ DataLoader errors


@pytest.mark.torch
def test_dataloader_argument_errors_match_torch():
    import torch

    tu = torch.utils.data
    ours_set, theirs_set = TensorDataset(nbprop.zeros(4, 1)), tu.TensorDataset(torch.zeros(4, 1))
    for arguments in (
        dict(batch_sampler=[[0]], batch_size=2),
        dict(batch_sampler=[[0]], shuffle=True),
        dict(batch_sampler=[[0]], drop_last=True),
        dict(sampler=[0, 1], shuffle=True),
        dict(batch_size=None, drop_last=True),
        dict(num_workers=-1),
        dict(batch_size=0),
        dict(batch_size=2, drop_last="no"),
        dict(timeout=-1),
        dict(persistent_workers=True),
        dict(prefetch_factor=2),
    ):
        with pytest.raises(Exception) as theirs:
            tu.DataLoader(theirs_set, **arguments)
        with pytest.raises(type(theirs.value)):
            DataLoader(ours_set, **arguments)
    loader = DataLoader(ours_set)
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3
    with pytest.raises(NotImplementedError, match="num_workers=2 is not supported"):
        DataLoader(ours_set, num_workers=2)


@pytest.mark.torch
def test_empty_dataset_as_torch():
    import torch

    empty_ours = TensorDataset(nbprop.zeros(0, 3))
    empty_theirs = torch.utils.data.TensorDataset(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="num_samples=0"):
        torch.utils.data.DataLoader(empty_theirs, shuffle=True)
    with pytest.raises(ValueError, match=r"num_samples=0 \(the dataset is empty\)"):
        DataLoader(empty_ours, shuffle=True)
    assert len(DataLoader(empty_ours, batch_size=2)) == len(torch.utils.data.DataLoader(empty_theirs)) == 0
    assert list(DataLoader(empty_ours, batch_size=2)) == []
    with pytest.raises(ValueError, match="cannot draw 3 samples from an empty dataset"):
        list(data.RandomSampler([], num_samples=3))


@pytest.mark.torch
def test_tensor_dataset_errors():
    import torch

    with pytest.raises(AssertionError):
        torch.utils.data.TensorDataset(torch.zeros(3), torch.zeros(4))
    with pytest.raises(AssertionError, match=r"Size mismatch between tensors: sizes along dimension 0 are \[3, 4\]"):
        TensorDataset(nbprop.zeros(3), nbprop.zeros(4))
    with pytest.raises(TypeError, match="argument 1 must be a Tensor"):
        TensorDataset(nbprop.zeros(3), [1, 2, 3])
    with pytest.raises(IndexError, match="at least one tensor"):
        TensorDataset()


# ----------------------------------------------------------------------------- Subset, Concat, random_split


@pytest.mark.torch
def test_concat_and_subset_match_torch():
    import torch

    tu = torch.utils.data
    parts = [list(range(3)), list(range(10, 15)), list(range(20, 22))]
    ours = data.ConcatDataset([data.Subset(part, list(range(len(part)))) for part in parts])
    theirs = tu.ConcatDataset([tu.Subset(part, list(range(len(part)))) for part in parts])
    assert len(ours) == len(theirs) == 10 and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[index] for index in range(-10, 10)] == [theirs[index] for index in range(-10, 10)]
    for bad in (-11, 10):
        with pytest.raises(Exception) as error:
            theirs[bad]
        with pytest.raises(type(error.value)):
            ours[bad]
    with pytest.raises(AssertionError):
        data.ConcatDataset([])
    added = data.Subset(parts[0], [0, 1]) + data.Subset(parts[1], [2])
    assert isinstance(added, data.ConcatDataset) and [added[index] for index in range(3)] == [0, 1, 12]


@pytest.mark.torch
def test_random_split_sizes_disjoint_and_reproducible():
    import torch

    for lengths in ([0.5, 0.5], [0.3, 0.3, 0.4], [0.1, 0.9], [3, 7], [0.333, 0.333, 0.334]):
        ours = data.random_split(range(10), lengths, generator=nbprop.Generator().manual_seed(0))
        theirs = torch.utils.data.random_split(range(10), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(part) for part in ours] == [len(part) for part in theirs]
        seen = [index for part in ours for index in part.indices]
        assert sorted(seen) == list(range(10))
    again = data.random_split(range(10), [0.5, 0.5], generator=nbprop.Generator().manual_seed(0))
    first = data.random_split(range(10), [0.5, 0.5], generator=nbprop.Generator().manual_seed(0))
    other = data.random_split(range(10), [0.5, 0.5], generator=nbprop.Generator().manual_seed(1))
    assert [part.indices for part in again] == [part.indices for part in first] != [part.indices for part in other]
    with pytest.warns(UserWarning, match="Length of split at index [12] is 0"):
        data.random_split(range(3), [0.9, 0.05, 0.05])
    for bad in ([3, 8], [5, 5, 1]):
        with pytest.raises(ValueError):
            torch.utils.data.random_split(range(10), bad)
        with pytest.raises(ValueError):
            data.random_split(range(10), bad)
    with pytest.raises(ValueError, match="non-negative integers"):  # PyTorch makes a nonsense split of these
        data.random_split(range(10), [-1, 11])
    with pytest.raises(ValueError, match="lengths .3, 8. sum to 11, the dataset has 10 samples"):
        data.random_split(range(10), [3, 8])
    # a split of a TensorDataset goes through the gathered path
    dataset = TensorDataset(nbprop.arange(10))
    train, test = data.random_split(dataset, [0.8, 0.2], generator=nbprop.Generator().manual_seed(0))
    values = [value for (batch,) in DataLoader(train, batch_size=3) for value in batch.tolist()]
    assert values == list(train.indices)


# ---------------------------------------------------------------------------------------- opaque device


def test_tensor_dataset_of_opaque_tensors_batches_as_on_cpu():
    opaque_device.install()
    features, labels = _arrays(9)
    batches = {}
    for device in ("cpu", "opaque"):
        dataset = TensorDataset(nbprop.tensor(features, device=device), nbprop.tensor(labels, device=device))
        train, _ = data.random_split(dataset, [7, 2], generator=nbprop.Generator().manual_seed(1))
        loader = DataLoader(train, batch_size=3, shuffle=True, generator=nbprop.Generator().manual_seed(2))
        batches[device] = [[item for item in batch] for batch in loader]
        for batch in batches[device]:
            assert all(item.device == device for item in batch)
        split = data.train_test_split(*dataset.tensors, test_size=3, random_state=0, stratify=labels % 2)
        assert all(item.device == device for item in split)
        batches[device].append(split)
        batches[device].append([data.one_hot(dataset.tensors[1], 6)])
        scaler = data.StandardScaler().fit(dataset.tensors[0])
        batches[device].append([scaler.transform(dataset.tensors[0]), scaler.mean_])
        scaler = data.MinMaxScaler().fit(dataset.tensors[0])
        batches[device].append([scaler.inverse_transform(scaler.transform(dataset.tensors[0])), scaler.scale_])
    for ours, reference in zip(batches["opaque"], batches["cpu"]):
        for item, expected in zip(ours, reference):
            assert item.dtype == expected.dtype
            np.testing.assert_array_equal(item.cpu().numpy(), expected.numpy())
