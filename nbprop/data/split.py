"""train_test_split, as scikit-learn's: tensors split into train and test rows at random, stratified by class
on request (each class in both splits in its overall proportion)."""

import math
import numbers

import numpy as np

from nbprop.creation import tensor as make_tensor
from nbprop.ops.gather import index_select
from nbprop.random import numpy_generator
from nbprop.tensor import Tensor

__all__ = ["train_test_split"]


def _split_sizes(count, test_size, train_size):
    """scikit-learn's _validate_shuffle_split: (train, test) row counts; a fraction of test rounds up, of train
    down; the unnamed part is the rest."""
    if test_size is None and train_size is None:
        test_size = 0.25
    for name, size in (("test_size", test_size), ("train_size", train_size)):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, numbers.Real):
            raise ValueError(f"train_test_split: invalid value for {name}: {size!r} (an int or a float expected)")
        if isinstance(size, numbers.Integral) and not 0 < size < count:
            raise ValueError(f"{name}={size} should be either positive and smaller than the number of samples "
                             f"{count} or a float in the (0, 1) range")
        if not isinstance(size, numbers.Integral) and not 0 < size < 1:
            raise ValueError(f"{name}={size} should be either positive and smaller than the number of samples "
                             f"{count} or a float in the (0, 1) range")
    fractions = [size for size in (test_size, train_size) if isinstance(size, float)]
    if len(fractions) == 2 and sum(fractions) > 1:
        raise ValueError(f"The sum of test_size and train_size = {sum(fractions)}, should be in the (0, 1) range. "
                         f"Reduce test_size and/or train_size.")
    test = None if test_size is None else (math.ceil(test_size * count) if isinstance(test_size, float)
                                           else int(test_size))
    train = None if train_size is None else (math.floor(train_size * count) if isinstance(train_size, float)
                                             else int(train_size))
    test = count - train if test is None else test
    train = count - test if train is None else train
    if train + test > count:
        raise ValueError(f"The sum of train_size and test_size = {train + test}, should be smaller than the number "
                         f"of samples {count}. Reduce test_size and/or train_size.")
    if train == 0 or test == 0:
        empty = "train" if train == 0 else "test"
        raise ValueError(f"With n_samples={count}, test_size={test_size} and train_size={train_size}, the resulting "
                         f"{empty} set will be empty. Adjust any of the aforementioned parameters.")
    return train, test


def _approximate_mode(class_counts, draws, rng):
    """scikit-learn's _approximate_mode: `draws` items shared among classes in proportion to class_counts, the
    rounding remainder going to the largest fractional parts (ties broken at random)."""
    continuous = class_counts / class_counts.sum() * draws
    floored = np.floor(continuous)
    missing = int(draws - floored.sum())
    if missing > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (candidates,) = np.where(remainder == value)
            taken = min(len(candidates), missing)
            floored[rng.choice(candidates, size=taken, replace=False)] += 1
            missing -= taken
            if missing == 0:
                break
    return floored.astype(np.int64)


def _stratified_rows(labels, train, test, rng):
    """scikit-learn's StratifiedShuffleSplit: per class, a random draw of its rows into train and test."""
    classes, inverse = np.unique(labels, return_inverse=True)
    class_counts = np.bincount(inverse)
    if class_counts.min() < 2:
        raise ValueError("The least populated class in y has only 1 member, which is too few. The minimum number of "
                         "groups for any class cannot be less than 2.")
    if train < len(classes):
        raise ValueError(f"The train_size = {train} should be greater or equal to the number of classes = "
                         f"{len(classes)}")
    if test < len(classes):
        raise ValueError(f"The test_size = {test} should be greater or equal to the number of classes = "
                         f"{len(classes)}")
    class_rows = np.split(np.argsort(inverse, kind="mergesort"), np.cumsum(class_counts)[:-1])
    train_counts = _approximate_mode(class_counts, train, rng)
    test_counts = _approximate_mode(class_counts - train_counts, test, rng)
    train_rows, test_rows = [], []
    for rows, train_count, test_count in zip(class_rows, train_counts, test_counts):
        rows = rows[rng.permutation(len(rows))]
        train_rows.append(rows[:train_count])
        test_rows.append(rows[train_count:train_count + test_count])
    return rng.permutation(np.concatenate(train_rows)), rng.permutation(np.concatenate(test_rows))


def _host_labels(stratify, count):
    if isinstance(stratify, Tensor):
        stratify = stratify.detach().cpu().numpy()
    labels = np.asarray(stratify)
    if labels.shape[:1] != (count,):
        raise ValueError(f"train_test_split: stratify has {labels.shape[0] if labels.ndim else 0} labels, the tensors "
                         f"have {count} samples")
    if labels.ndim > 1:  # scikit-learn stratifies multi-column labels by their rows as strings; rows as tuples here
        labels = np.unique(labels.reshape(count, -1), axis=0, return_inverse=True)[1].reshape(-1)
    return labels


def train_test_split(*tensors, test_size=None, train_size=None, random_state=None, shuffle=True, stratify=None,
                     generator=None):
    """Split tensors of one length (along dimension 0) into [a_train, a_test, b_train, b_test, ...].

    test_size / train_size: a fraction in (0, 1) or a row count (default test_size 0.25, train the rest).
    Rows are drawn from `generator` (an nbprop.Generator) or from a stream seeded with `random_state` (an int,
    scikit-learn's name), else from the default stream; shuffle=False keeps the order (train first).
    stratify: class labels (a tensor or sequence, one per row) whose proportions both splits keep, as in
    scikit-learn (its draws differ: the rows chosen are not scikit-learn's, the per-class counts are).
    The rows are gathered by one index_select per tensor, on the tensor's device.
    """
    if not tensors:
        raise ValueError("At least one array required as input")
    for position, data in enumerate(tensors):
        if not isinstance(data, Tensor):
            raise TypeError(f"train_test_split: argument {position} must be a Tensor, got {type(data).__name__}")
        if data.ndim == 0:
            raise ValueError(f"train_test_split: argument {position} is 0-d; rows are taken along dimension 0")
    count = tensors[0].shape[0]
    if any(data.shape[0] != count for data in tensors):
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"{[data.shape[0] for data in tensors]}")
    if count == 0:
        raise ValueError("train_test_split: the tensors have 0 samples; nothing to split")
    if random_state is not None and generator is not None:
        raise ValueError("train_test_split: pass random_state or generator, not both")
    train, test = _split_sizes(count, test_size, train_size)
    if not shuffle:
        if stratify is not None:
            raise ValueError("Stratified train/test split is not implemented for shuffle=False")
        train_rows, test_rows = np.arange(train), np.arange(train, train + test)
    else:
        if random_state is not None:
            rng = np.random.default_rng(random_state)  # the stream nbprop.Generator().manual_seed(random_state) gives
        else:
            rng = numpy_generator(generator, None, "train_test_split")
        if stratify is None:
            order = rng.permutation(count)
            test_rows, train_rows = order[:test], order[test:test + train]
        else:
            train_rows, test_rows = _stratified_rows(_host_labels(stratify, count), train, test, rng)
    pieces = []
    for data in tensors:
        for rows in (train_rows, test_rows):
            pieces.append(index_select(data, 0, make_tensor(rows.astype(np.int64), device=data.device)))
    return pieces
