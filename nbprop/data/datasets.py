"""Real data sets that install offline, as (features, labels) tensors: scikit-learn's bundled sets, MNIST and
Fashion-MNIST from IDX files, MNIST-1D generated locally by the mnist1d package; and a text corpus that every
Python ships (python_license_text) for character-level models.

Features are float32, labels int64 class indices from 0. Nothing is downloaded: a missing data set raises an
error naming the path looked at and the package that provides it.
"""

import codecs
import contextlib
import functools
import gzip
import importlib
import io
import os
import random
import sys
import sysconfig

import numpy as np

from nbprop.creation import from_numpy

__all__ = ["FASHION_MNIST_ROOT", "ZEN_OF_PYTHON", "fashion_mnist", "load_breast_cancer", "load_digits", "load_iris",
           "load_wine", "mnist", "mnist1d", "python_license_text", "read_idx"]

# Where Debian's dataset-fashion-mnist package installs the four gzipped IDX files.
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"

# IDX element types: the third byte of the magic number (big-endian multi-byte values).
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _import(module, package, purpose):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the {package!r} package, which is not installed: pip install {package} "
                          f"(or pip install 'nbprop[data]')") from error


def _as_tensors(features, labels):
    # Copies: the source arrays may be cached or read-only, and the tensors share memory with what they wrap.
    return from_numpy(np.array(features, dtype=np.float32)), from_numpy(np.array(labels, dtype=np.int64))


def _sklearn_set(name):
    datasets = _import("sklearn.datasets", "scikit-learn", f"{name}()")
    features, labels = getattr(datasets, name)(return_X_y=True)
    return _as_tensors(features, labels)


def load_digits():
    """scikit-learn's 8x8 handwritten digits: features (1797, 64) float32 with pixel values 0..16 (reshape to
    (-1, 1, 8, 8) for a convolution), labels (1797,) int64 in 0..9."""
    return _sklearn_set("load_digits")


def load_iris():
    """scikit-learn's iris: features (150, 4) float32 in centimetres, labels (150,) int64 in 0..2."""
    return _sklearn_set("load_iris")


def load_wine():
    """scikit-learn's wine: features (178, 13) float32 (unscaled chemistry), labels (178,) int64 in 0..2."""
    return _sklearn_set("load_wine")


def load_breast_cancer():
    """scikit-learn's breast cancer (Wisconsin): features (569, 30) float32 (unscaled), labels (569,) int64
    (0 malignant, 1 benign)."""
    return _sklearn_set("load_breast_cancer")


# ----------------------------------------------------------------------------------------------- text

# What python_license_text names as its source when no LICENSE file is installed.
ZEN_OF_PYTHON = "the Zen of Python (module this)"


def python_license_text():
    """(source, text): a plain-English text found offline on any machine, for character-level language models.

    The text is Python's LICENSE (about 13,000 characters, read as UTF-8) from the first of sys.prefix,
    sys.base_prefix and the standard library's directory that holds a LICENSE.txt or LICENSE file, and source
    is that file's path. Where no such file is installed (some distributions leave it out), the text is the
    Zen of Python (module this, about 850 characters) and source is "the Zen of Python (module this)"."""
    for root in (sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"]):
        for name in ("LICENSE.txt", "LICENSE"):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as file:
                    return path, file.read()
    with contextlib.redirect_stdout(io.StringIO()):
        this = importlib.import_module("this")  # prints the Zen of Python on its first import: silenced here
    return ZEN_OF_PYTHON, codecs.decode(this.s, "rot13")


# ------------------------------------------------------------------------------------------------ IDX


def read_idx(path):
    """The array in an IDX file (MNIST's format), plain or gzipped (detected by content, whatever the name), as
    a NumPy array of the file's element type and shape (uint8 stays uint8: a tensor would widen it to int64,
    eight times the memory).

    FileNotFoundError names a missing path; ValueError a wrong magic number, an unknown element type or a file
    whose length does not match its header.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_idx: no file at {path!r}")
    with open(path, "rb") as file:
        raw = file.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"read_idx: {path!r} looks gzipped but does not decompress: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"read_idx: {path!r} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'}, "
                         f"expected 0000 followed by a type byte and a dimension count")
    kind, ndim = raw[2], raw[3]
    if kind not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path!r} has the unknown element type 0x{kind:02x} in its magic number "
                         f"{raw[:4].hex()} (known: {', '.join(f'0x{code:02x}' for code in _IDX_TYPES)})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path!r} is truncated: its header announces {ndim} dimensions but the file has "
                         f"{len(raw)} bytes")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[kind]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"read_idx: {path!r} holds {len(raw)} bytes, but its header (shape {shape}, "
                         f"{dtype.name}) needs {expected}")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writeable


def write_idx(path, array):
    """Write a NumPy array as an IDX file (gzipped if path ends in .gz): the inverse of read_idx."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"write_idx: IDX holds uint8, int8, int16, int32, float32 or float64, got {array.dtype}")
    code = codes[native]
    body = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
            + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes())
    with open(path, "wb") as file:
        file.write(gzip.compress(body) if os.fspath(path).endswith(".gz") else body)


def _find_idx(root, name, directories, purpose, provider):
    """The path of IDX file `name` (plain, or with .gz) in root or one of its `directories`."""
    for directory in directories:
        for candidate in (name, name + ".gz"):
            path = os.path.join(root, directory, candidate)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(f"{purpose}: no {name} (or {name}.gz) in {root!r}; {provider}")


def _idx_images(root, train, purpose, directories, provider):
    prefix = "train" if train else "t10k"
    images = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte", directories, purpose, provider))
    labels = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte", directories, purpose, provider))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{purpose}: images of shape {images.shape} and labels of shape {labels.shape} in {root!r} "
                         f"do not match (expected (N, rows, columns) and (N,))")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{purpose}: labels in {root!r} range over [{labels.min()}, {labels.max()}], expected 0..9")
    # (N, 1, rows, columns) in [0, 1]: what torchvision's ToTensor gives per image, batched.
    features = np.empty((images.shape[0], 1) + images.shape[1:], dtype=np.float32)
    np.multiply(images[:, None], np.float32(1 / 255), out=features)
    return from_numpy(features), from_numpy(labels.astype(np.int64))


def fashion_mnist(root=FASHION_MNIST_ROOT, train=True):
    """Fashion-MNIST (60,000 training or 10,000 test images of clothes in 10 classes) from the IDX files in root
    (plain or .gz; also root/FashionMNIST/raw, torchvision's layout): images (N, 1, 28, 28) float32 in [0, 1],
    labels (N,) int64 in 0..9. The default root is where Debian's dataset-fashion-mnist package installs them."""
    provider = ("Debian's dataset-fashion-mnist package installs them in " + FASHION_MNIST_ROOT +
                " (apt-get install dataset-fashion-mnist); or pass root= a directory holding the four IDX files")
    return _idx_images(os.fspath(root), train, "fashion_mnist", ("", os.path.join("FashionMNIST", "raw")), provider)


def mnist(root, train=True):
    """MNIST (60,000 training or 10,000 test handwritten digits) from the IDX files in root (plain or .gz; also
    root/MNIST/raw, torchvision's layout): images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64 in 0..9."""
    provider = ("no Debian package provides MNIST: copy the four IDX files (train-images-idx3-ubyte, "
                "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) there")
    return _idx_images(os.fspath(root), train, "mnist", ("", os.path.join("MNIST", "raw")), provider)


# -------------------------------------------------------------------------------------------- MNIST-1D


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples, seed):
    data = _import("mnist1d.data", "mnist1d", "mnist1d()")
    arguments = data.get_dataset_args()
    arguments.num_samples, arguments.seed = num_samples, seed
    # make_dataset generates (get_dataset would try to download the frozen copy first). It seeds NumPy's and
    # Python's global random streams: they are restored, so that generating leaves the caller's draws alone.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = data.make_dataset(arguments)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    for array in generated.values():
        if isinstance(array, np.ndarray):
            array.setflags(write=False)  # cached: shared between calls
    return generated


def mnist1d(train=True, num_samples=5000, seed=42):
    """MNIST-1D (Greydanus 2020), generated locally by the mnist1d package: 1-D signals of length 40 made from
    ten digit templates with random padding, scale, shift, noise and shear. The defaults (5,000 samples, seed
    42) are the reference set's settings; train=True gives its first 80% (4,000), train=False the rest.
    Returns features (N, 40) float32, labels (N,) int64 in 0..9. Generation takes about a second per 5,000
    samples and is cached per (num_samples, seed)."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 10:
        raise ValueError(f"mnist1d: num_samples must be an int of at least 10 (one per class), got {num_samples!r}")
    generated = _mnist1d_arrays(num_samples, seed)
    if train:
        return _as_tensors(generated["x"], generated["y"])
    return _as_tensors(generated["x_test"], generated["y_test"])
