"""The README's example and the scripts in examples/ run and reach what they claim."""

import importlib.util
import pathlib
import re
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load(name):
    """Import examples/<name>.py as the module `name`, registered in sys.modules: Numba's on-disk cache records
    a kernel's module by name and imports it when loading the kernel, so an unregistered module would be cached
    as '<dynamic>', which no later run can import."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_readme_example_fits_the_line():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Example\n\n```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert namespace["loss"].item() < 1e-3
    np.testing.assert_allclose(namespace["weight"].detach().numpy().ravel(), [1.0, -2.0, 0.5], atol=0.02)
    assert abs(namespace["bias"].item() - 0.25) < 0.02


def test_train_tiny_mlp_loss_falls(capsys):
    loss, accuracy = _load("train_tiny_mlp").main(steps=300)
    printed = capsys.readouterr().out
    losses = [float(value) for value in re.findall(r"loss (\d+\.\d+)", printed)]
    assert losses[0] > 0.6 and losses[-1] < 0.5 * losses[0], losses
    assert accuracy > 0.8


def test_custom_function_example(capsys):
    _load("custom_function").main()
    printed = capsys.readouterr().out
    assert "gradcheck passed: True" in printed


def test_residual_mlp_trains_and_its_checkpoint_reloads(capsys):
    loss, accuracy, identical = _load("residual_mlp").main(steps=200)
    assert loss < 0.1 and accuracy > 0.95
    assert identical


def test_scalar_moons_reaches_97_percent(capsys):
    loss, accuracy = _load("scalar_moons").main()
    assert accuracy >= 0.97 and loss < 0.1
    assert "accuracy" in capsys.readouterr().out


def test_char_lstm_loss_falls_and_it_samples(capsys):
    first, last, sample = _load("char_lstm").main(steps=60, print_every=20)
    printed = capsys.readouterr().out
    assert first > 4.0 and last < first - 1.0, (first, last)
    assert "sample: The " in printed and len(sample) == len("The ") + 200


def test_char_transformer_loss_falls_and_it_samples(capsys):
    first, last, sample = _load("char_transformer").main(steps=40, sequence=32, batch=16, print_every=20)
    printed = capsys.readouterr().out
    assert first > 4.0 and last < first - 1.0, (first, last)
    assert "sample: The " in printed and len(sample) == len("The ") + 200


def test_regression_early_stopping_stops_and_predicts(capsys):
    history, rmse, r_squared = _load("regression_early_stopping").main(max_epochs=200, patience=5, progress=False)
    printed = capsys.readouterr().out
    assert history.stopped_early and len(history) == history.best_epoch + 5
    assert r_squared > 0.3 and rmse < 70  # the target's standard deviation is about 78
    assert "stopped early after epoch" in printed and "test RMSE" in printed


def test_digits_mlp_reaches_90_percent_and_draws_its_curves(tmp_path, capsys):
    accuracy, history = _load("digits_mlp").main(epochs=6, out=str(tmp_path), progress=False)
    assert accuracy > 0.9 and len(history) == 6
    assert "test accuracy" in capsys.readouterr().out
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_cnn_digits_trains_a_few_epochs(capsys):
    accuracy = _load("cnn_digits").main(epochs=2)
    printed = capsys.readouterr().out
    losses = [float(value) for value in re.findall(r"loss (\d+\.\d+)", printed)]
    assert len(losses) == 2 and losses[1] < 0.5 * losses[0], losses
    assert accuracy > 0.95 and "test accuracy" in printed


def _write_fashion_mnist_like(root, train_count, test_count):
    """Four IDX files in Fashion-MNIST's names and shapes whose class is learnable: class k is a bright band at
    rows 2k + 4 and 2k + 5 over uniform noise."""
    from nbprop.data.datasets import write_idx

    generator = np.random.default_rng(0)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        labels = generator.integers(0, 10, count).astype(np.uint8)
        images = generator.integers(0, 80, (count, 28, 28)).astype(np.uint8)
        for row in (4, 5):
            images[np.arange(count), 2 * labels + row] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)


def test_fashion_mnist_cnn_learns_from_idx_files(tmp_path, capsys):
    _write_fashion_mnist_like(tmp_path, train_count=700, test_count=300)
    accuracy, seconds = _load("fashion_mnist_cnn").main(epochs=2, root=str(tmp_path), limit=640, threads=1)
    printed = capsys.readouterr().out
    assert "640 training and 300 test images" in printed, printed
    losses = [float(value) for value in re.findall(r"loss (\d+\.\d+)", printed)]
    assert len(losses) == 2 and losses[1] < 0.6 * losses[0], losses
    reported = float(re.search(r"test accuracy (\d+\.\d+)% on 300 images", printed).group(1))
    assert reported == round(accuracy * 100, 2) and accuracy > 0.8, (reported, accuracy)
    assert len(seconds) == 2
    import pytest

    with pytest.raises(FileNotFoundError, match=r"missing.*dataset-fashion-mnist"):
        _load("fashion_mnist_cnn").main(root=str(tmp_path / "missing"))
