"""nbprop.data.datasets: IDX files (plain and gzipped, written here), Fashion-MNIST and MNIST from a directory,
scikit-learn's bundled sets, MNIST-1D generated offline, Python's LICENSE text (or the Zen of Python where it is
not installed); clear errors for missing files and packages."""

import gzip
import os
import random
import sys
import sysconfig

import numpy as np
import pytest

import nbprop
from nbprop.data import datasets


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.random.default_rng(0).standard_normal((4, 3, 5)) * 40).astype(dtype)
    path = tmp_path / f"array-idx3{suffix}"
    datasets.write_idx(path, array)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    header = gzip.decompress(raw)[:16] if suffix else raw[:16]
    assert header[:2] == b"\0\0" and header[3] == 3 and np.frombuffer(header[4:], ">u4").tolist() == [4, 3, 5]
    result = datasets.read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.shape == (4, 3, 5) and result.flags.writeable
    np.testing.assert_array_equal(result, array)
    one_dimensional = np.arange(7, dtype=dtype)
    datasets.write_idx(tmp_path / "vector", one_dimensional)
    np.testing.assert_array_equal(datasets.read_idx(str(tmp_path / "vector")), one_dimensional)


def test_idx_reads_gzip_by_content_and_the_big_endian_layout(tmp_path):
    # MNIST's label header, by hand: magic 0x00000801, count 3, then the bytes
    body = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 0, 9])
    (tmp_path / "labels.idx").write_bytes(gzip.compress(body))  # gzipped under a plain name
    assert datasets.read_idx(tmp_path / "labels.idx").tolist() == [7, 0, 9]
    body = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + (258).to_bytes(4, "big") + (-1).to_bytes(4, "big",
                                                                                                       signed=True)
    (tmp_path / "ints").write_bytes(body)
    assert datasets.read_idx(tmp_path / "ints").tolist() == [258, -1]


def test_idx_errors(tmp_path):
    missing = tmp_path / "nowhere" / "train-images-idx3-ubyte"
    with pytest.raises(FileNotFoundError, match="no file at .*nowhere/train-images-idx3-ubyte"):
        datasets.read_idx(missing)
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(ValueError, match="is not an IDX file: its magic number is 89504e47"):
        datasets.read_idx(tmp_path / "png")
    (tmp_path / "kind").write_bytes(bytes([0, 0, 0x0A, 1]) + (1).to_bytes(4, "big") + bytes(1))
    with pytest.raises(ValueError, match="unknown element type 0x0a"):
        datasets.read_idx(tmp_path / "kind")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 2]) + (3).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(8))
    with pytest.raises(ValueError, match=r"holds 20 bytes, but its header \(shape \(3, 3\), uint8\) needs 21"):
        datasets.read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(tmp_path / "header")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(bytes(64))[:20])
    with pytest.raises(ValueError, match="does not decompress"):
        datasets.read_idx(tmp_path / "broken.gz")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="magic number is missing"):
        datasets.read_idx(tmp_path / "empty")
    with pytest.raises(ValueError, match="IDX holds uint8"):
        datasets.write_idx(tmp_path / "x", np.zeros(2, dtype=np.int64))


def _write_images(directory, prefix, count, seed, gz):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    datasets.write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    datasets.write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("loader", ["fashion_mnist", "mnist"])
def test_image_sets_from_idx_files(tmp_path, loader):
    load = getattr(datasets, loader)
    train_images, train_labels = _write_images(tmp_path, "train", 6, 0, gz=True)
    test_images, test_labels = _write_images(tmp_path, "t10k", 3, 1, gz=False)
    for train, (images, labels) in ((True, (train_images, train_labels)), (False, (test_images, test_labels))):
        features, targets = load(root=tmp_path, train=train)
        assert features.dtype == nbprop.float32 and tuple(features.shape) == (len(labels), 1, 28, 28)
        assert targets.dtype == nbprop.int64 and targets.tolist() == labels.tolist()
        np.testing.assert_allclose(features.numpy()[:, 0], images / np.float32(255), rtol=1e-7)
        assert 0 <= features.numpy().min() and features.numpy().max() <= 1
    # torchvision's layout: root/FashionMNIST/raw or root/MNIST/raw
    nested = tmp_path / "nested" / ("FashionMNIST" if loader == "fashion_mnist" else "MNIST") / "raw"
    _, labels = _write_images(nested, "train", 2, 3, gz=False)
    assert load(root=str(tmp_path / "nested"))[1].tolist() == labels.tolist()


def test_image_set_errors(tmp_path):
    assert datasets.FASHION_MNIST_ROOT == "/usr/share/datasets/fashion-mnist"
    assert datasets.fashion_mnist.__defaults__[0] == datasets.FASHION_MNIST_ROOT
    with pytest.raises(FileNotFoundError, match=r"fashion_mnist: no train-images-idx3-ubyte \(or "
                                                r"train-images-idx3-ubyte.gz\) in '.*empty'; Debian's "
                                                r"dataset-fashion-mnist package installs them in "
                                                r"/usr/share/datasets/fashion-mnist"):
        datasets.fashion_mnist(root=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="mnist: no t10k-images-idx3-ubyte .*no Debian package provides MNIST"):
        datasets.mnist(tmp_path, train=False)
    images, _ = _write_images(tmp_path, "train", 4, 0, gz=False)
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"images of shape \(4, 28, 28\) and labels of shape \(3,\)"):
        datasets.mnist(tmp_path)
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 12, 3], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels in .* range over \[0, 12\], expected 0..9"):
        datasets.fashion_mnist(tmp_path)


def test_scikit_learn_sets():
    from sklearn import datasets as reference

    for name, shape, classes in (("load_digits", (1797, 64), 10), ("load_iris", (150, 4), 3),
                                 ("load_wine", (178, 13), 3), ("load_breast_cancer", (569, 30), 2)):
        features, labels = getattr(datasets, name)()
        assert features.dtype == nbprop.float32 and tuple(features.shape) == shape
        assert labels.dtype == nbprop.int64 and tuple(labels.shape) == shape[:1]
        assert sorted(set(labels.tolist())) == list(range(classes))
        expected_features, expected_labels = getattr(reference, name)(return_X_y=True)
        np.testing.assert_array_equal(features.numpy(), expected_features.astype(np.float32))
        np.testing.assert_array_equal(labels.numpy(), expected_labels)
        features[0, 0] = -1.0  # the tensors are the caller's own
        assert getattr(datasets, name)()[0][0, 0].item() == np.float32(expected_features[0, 0])


def test_missing_packages_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="load_digits\\(\\) needs the 'scikit-learn' package.*pip install "
                                          "scikit-learn"):
        datasets.load_digits()
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    datasets._mnist1d_arrays.cache_clear()
    with pytest.raises(ImportError, match="mnist1d\\(\\) needs the 'mnist1d' package"):
        datasets.mnist1d(num_samples=100, seed=1)


def test_mnist1d_generates_offline_and_leaves_global_streams_alone(monkeypatch):
    import socket

    import requests

    def no_network(*arguments, **keywords):
        raise AssertionError("mnist1d tried to reach the network")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    datasets._mnist1d_arrays.cache_clear()
    np.random.seed(123)
    random.seed(123)
    expected_numpy, expected_python = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    features, labels = datasets.mnist1d()
    assert (np.random.random(), random.random()) == (expected_numpy, expected_python)
    assert features.dtype == nbprop.float32 and tuple(features.shape) == (4000, 40)
    assert labels.dtype == nbprop.int64 and tuple(labels.shape) == (4000,)
    assert sorted(set(labels.tolist())) == list(range(10))
    test_features, test_labels = datasets.mnist1d(train=False)
    assert tuple(test_features.shape) == (1000, 40) and tuple(test_labels.shape) == (1000,)
    # the generator standardises the whole set: mean 0, standard deviation 1 over train and test together
    everything = np.concatenate([features.numpy(), test_features.numpy()]).astype(np.float64)
    assert abs(everything.mean()) < 1e-6 and abs(everything.std() - 1) < 1e-6
    # reproducible from the seed, and the seed matters
    small = datasets.mnist1d(num_samples=200, seed=3)
    datasets._mnist1d_arrays.cache_clear()
    again = datasets.mnist1d(num_samples=200, seed=3)
    other = datasets.mnist1d(num_samples=200, seed=4)
    np.testing.assert_array_equal(small[0].numpy(), again[0].numpy())
    assert tuple(small[0].shape) == (160, 40) and not np.array_equal(small[0].numpy(), other[0].numpy())
    small[0][0, 0] = 1e6  # a caller's write does not reach the cache
    assert datasets.mnist1d(num_samples=200, seed=3)[0][0, 0].item() != 1e6
    with pytest.raises(ValueError, match="num_samples must be an int of at least 10"):
        datasets.mnist1d(num_samples=5)


def test_python_license_text_reads_the_installed_license():
    source, text = nbprop.data.python_license_text()
    assert source == datasets.ZEN_OF_PYTHON or os.path.isfile(source)
    assert len(text) > 500
    if source != datasets.ZEN_OF_PYTHON:
        assert os.path.basename(source) in ("LICENSE", "LICENSE.txt")
        with open(source, encoding="utf-8", errors="replace") as file:
            assert text == file.read()
        assert "PYTHON SOFTWARE FOUNDATION LICENSE" in text


def test_python_license_text_falls_back_to_the_zen_of_python(tmp_path, monkeypatch, capsys):
    # an installation without any LICENSE file: every place looked at is an empty directory
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))
    monkeypatch.setattr(sysconfig, "get_paths", lambda *arguments, **keywords: {"stdlib": str(tmp_path)})
    monkeypatch.delitem(sys.modules, "this", raising=False)  # so that `this` is imported (and prints) afresh
    source, text = datasets.python_license_text()
    assert source == datasets.ZEN_OF_PYTHON == "the Zen of Python (module this)"
    assert text.startswith("The Zen of Python, by Tim Peters") and "Beautiful is better than ugly." in text
    assert capsys.readouterr().out == ""  # importing `this` prints the poem: not here
    # a LICENSE in the first place looked at is found again
    (tmp_path / "LICENSE").write_text("the license text\n")
    assert datasets.python_license_text() == (str(tmp_path / "LICENSE"), "the license text\n")
