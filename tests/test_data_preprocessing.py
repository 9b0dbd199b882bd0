"""nbprop.data beyond torch.utils.data: train_test_split against scikit-learn (sizes, stratified proportions,
errors), StandardScaler / MinMaxScaler against scikit-learn (fit on the training split, state_dict), one_hot
against PyTorch."""

import re

import numpy as np
import pytest

import nbprop
from nbprop import data

# ---------------------------------------------------------------------------------------- train_test_split


def test_train_test_split_sizes_match_scikit_learn():
    from sklearn.model_selection import train_test_split as reference

    rows = np.arange(20)
    for sizes in (dict(), dict(test_size=0.3), dict(test_size=5), dict(train_size=0.6), dict(train_size=12),
                  dict(test_size=0.2, train_size=0.5), dict(test_size=3, train_size=4)):
        train, test = data.train_test_split(nbprop.tensor(rows), **sizes)
        expected_train, expected_test = reference(rows, **sizes)
        assert (len(train), len(test)) == (len(expected_train), len(expected_test)), sizes
        assert len(set(train.tolist()) & set(test.tolist())) == 0
    train, test = data.train_test_split(nbprop.tensor(rows), test_size=5, shuffle=False)
    assert train.tolist() == list(range(15)) and test.tolist() == list(range(15, 20))
    for bad in (dict(test_size=0), dict(test_size=20), dict(test_size=1.5), dict(test_size=0.7, train_size=0.5),
                dict(test_size=15, train_size=10)):
        with pytest.raises(ValueError):
            reference(rows, **bad)
        with pytest.raises(ValueError):
            data.train_test_split(nbprop.tensor(rows), **bad)


def test_stratified_split_keeps_class_proportions():
    from sklearn.model_selection import train_test_split as reference

    labels = np.repeat(np.arange(4), [40, 25, 10, 5])
    features = np.arange(80, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    x_train, x_test, y_train, y_test = data.train_test_split(
        nbprop.tensor(features), nbprop.tensor(labels), test_size=0.25, stratify=nbprop.tensor(labels),
        random_state=0)
    _, _, expected_train, expected_test = reference(features, labels, test_size=0.25, stratify=labels, random_state=0)
    for ours, theirs in ((y_train, expected_train), (y_test, expected_test)):
        counts, expected = np.bincount(ours.numpy(), minlength=4), np.bincount(theirs, minlength=4)
        assert counts.sum() == expected.sum() and np.abs(counts - expected).max() <= 1
    assert np.abs(np.bincount(y_test.numpy(), minlength=4) - np.array([40, 25, 10, 5]) * 0.25).max() < 1
    # rows stay together: each feature row is its label's row
    np.testing.assert_array_equal(labels[x_train.numpy()[:, 0].astype(int)], y_train.numpy())
    np.testing.assert_array_equal(labels[x_test.numpy()[:, 0].astype(int)], y_test.numpy())
    assert sorted(x_train.numpy()[:, 0].tolist() + x_test.numpy()[:, 0].tolist()) == list(range(80))
    again = data.train_test_split(nbprop.tensor(labels), stratify=labels, random_state=0)
    assert again[0].tolist() == data.train_test_split(nbprop.tensor(labels), stratify=labels,
                                                      random_state=0)[0].tolist()
    generator_split = data.train_test_split(nbprop.tensor(labels), stratify=labels,
                                            generator=nbprop.Generator().manual_seed(0))
    assert generator_split[0].tolist() == again[0].tolist()  # random_state=s is Generator().manual_seed(s)


def test_train_test_split_errors():
    labels = nbprop.tensor([0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="least populated class in y has only 1 member"):
        data.train_test_split(labels, stratify=labels, test_size=3)
    with pytest.raises(ValueError, match="inconsistent numbers of samples: \\[6, 5\\]"):
        data.train_test_split(labels, nbprop.zeros(5))
    with pytest.raises(ValueError, match="0 samples"):
        data.train_test_split(nbprop.zeros(0, 2))
    with pytest.raises(ValueError, match="At least one array"):
        data.train_test_split()
    with pytest.raises(ValueError, match="not implemented for shuffle=False"):
        data.train_test_split(labels, stratify=labels, shuffle=False)
    with pytest.raises(ValueError, match="test_size = 2 should be greater or equal to the number of classes = 3"):
        data.train_test_split(nbprop.tensor([0, 0, 1, 1, 2, 2, 0, 1]), stratify=[0, 0, 1, 1, 2, 2, 0, 1],
                              test_size=2)


# ------------------------------------------------------------------------------------------------ scalers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalers_match_scikit_learn(dtype):
    from sklearn import preprocessing

    rng = np.random.default_rng(0)
    train = (rng.standard_normal((50, 4)) * [1, 10, 0.1, 1] + [0, 5, -3, 2]).astype(dtype)
    train[:, 3] = 2.0  # a constant feature: scaled by 1, not divided by zero
    test = (rng.standard_normal((9, 4)) * 3).astype(dtype)
    pairs = ((data.StandardScaler(), preprocessing.StandardScaler()),
             (data.StandardScaler(with_mean=False), preprocessing.StandardScaler(with_mean=False)),
             (data.MinMaxScaler(), preprocessing.MinMaxScaler()),
             (data.MinMaxScaler((-1, 2), clip=True), preprocessing.MinMaxScaler((-1, 2), clip=True)))
    tolerance = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for ours, theirs in pairs:
        fitted = ours.fit_transform(nbprop.tensor(train))
        assert fitted.dtype == dtype
        np.testing.assert_allclose(fitted.numpy(), theirs.fit_transform(train), **tolerance)
        np.testing.assert_allclose(ours.transform(nbprop.tensor(test)).numpy(), theirs.transform(test), **tolerance)
        back = ours.inverse_transform(ours.transform(nbprop.tensor(test)))
        if not getattr(ours, "clip", False):
            np.testing.assert_allclose(back.numpy(), theirs.inverse_transform(theirs.transform(test)), **tolerance)
        np.testing.assert_allclose(ours.scale_.numpy(), theirs.scale_, rtol=1e-6)


def test_scaler_state_dict_round_trip_and_errors(tmp_path):
    train = nbprop.tensor(np.random.default_rng(1).standard_normal((20, 3)))
    test = nbprop.tensor(np.random.default_rng(2).standard_normal((5, 3)))
    for make in (data.StandardScaler, lambda: data.MinMaxScaler((-1, 1))):
        scaler = make().fit(train)
        nbprop.save({"scaler": scaler.state_dict(), "epoch": 3}, tmp_path / "checkpoint.safetensors")
        restored = data.MinMaxScaler() if isinstance(scaler, data.MinMaxScaler) else data.StandardScaler()
        restored.load_state_dict(nbprop.load(tmp_path / "checkpoint.safetensors")["scaler"])
        np.testing.assert_array_equal(restored.transform(test).numpy(), scaler.transform(test).numpy())
        with pytest.raises(data.NotFittedError, match="not fitted yet"):
            make().transform(test)
        with pytest.raises(ValueError, match=r"features of shape \(2,\), but .* fitted on features of shape \(3,\)"):
            scaler.transform(nbprop.zeros(4, 2, dtype=nbprop.float64))
        with pytest.raises(ValueError, match="0 samples"):
            make().fit(nbprop.zeros(0, 3))
        with pytest.raises(TypeError, match="floating tensor"):
            make().fit(nbprop.tensor([[1, 2]]))
        with pytest.raises(KeyError, match="expected the keys"):
            make().load_state_dict({"mean_": 1})
    # the test split's statistics never enter: transform(test) uses the training mean
    scaler = data.StandardScaler().fit(train)
    np.testing.assert_allclose(scaler.transform(train).numpy().mean(0), 0, atol=1e-12)
    assert abs(scaler.transform(test).numpy().mean(0)).max() > 1e-3
    with pytest.raises(ValueError, match="Minimum of desired feature range must be smaller"):
        data.MinMaxScaler((1, 0))


# ------------------------------------------------------------------------------------------------ one_hot


@pytest.mark.torch
def test_one_hot_matches_torch():
    import torch
    import torch.nn.functional as torch_functional

    cases = [([0, 2, 1], -1), ([0, 2, 1], 5), ([[1, 0], [3, 3]], -1), (4, 6), ([], 3), ([[], []], 2)]
    for values, classes in cases:
        ours = nbprop.nn.functional.one_hot(nbprop.tensor(values, dtype=nbprop.int64), classes)
        theirs = torch_functional.one_hot(torch.tensor(values, dtype=torch.int64), classes)
        assert ours.dtype == nbprop.int64 and tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert data.one_hot is nbprop.nn.functional.one_hot
    for values, classes, dtype in (([0, 1], -1, "float32"), ([], -1, "int64"), ([-1, 2], -1, "int64"),
                                   ([-1, 2], 3, "int64"), ([3], 3, "int64"), ([1], 0, "int64"), ([1], -2, "int64"),
                                   ([], 0, "int64"), ([1], 2.0, "int64")):
        with pytest.raises(Exception) as theirs:
            torch_functional.one_hot(torch.tensor(values, dtype=getattr(torch, dtype)), classes)
        with pytest.raises(type(theirs.value), match=re.escape(str(theirs.value))):
            data.one_hot(nbprop.tensor(values, dtype=getattr(nbprop, dtype)), classes)
