"""The main job, `nbprop-train` / `python -m nbprop.train`: its default reaches 97% on digits and writes its files,
--resume continues a run, options select models and data sets, bad input gets one clear line."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import nbprop
from nbprop.train import History, cli, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*arguments):
    completed = subprocess.run([sys.executable, "-m", "nbprop.train", *arguments], cwd=ROOT, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_default_job_reaches_97_percent_on_digits_and_resumes(tmp_path):
    out = tmp_path / "run"
    # One thread: the same bits as at two (tested in test_reproducibility), and on cores shared with other work
    # measured 2x faster (Numba's and BLAS's threads wait for each other there).
    printed = _run("--out", str(out), "--no-progress", "--threads", "1")
    assert "nbprop-train: digits: 1,293 training, 144 validation, 360 test samples of shape (1, 8, 8)" in printed
    assert re.search(r"^epoch 10/10  train loss .* val accuracy ", printed, re.M)
    accuracy = float(re.search(r"^test accuracy (\d+\.\d+)% \(", printed, re.M).group(1))
    assert accuracy >= 97.0, printed
    assert sorted(os.listdir(out)) == ["checkpoint.safetensors", "config.json", "curves.png", "history.json",
                                       "model.safetensors"]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert History.read(out / "history.json")["epoch"] == list(range(1, 11))
    # The weights load into the same model outside the job and give its test accuracy's neighbourhood.
    model = models.cnn((1, 8, 8), 10)
    model.load_state_dict(nbprop.load(out / "model.safetensors"))
    checkpoint = nbprop.load(out / "checkpoint.safetensors")
    assert checkpoint["epoch"] == 10 and set(checkpoint["model"]) == set(model.state_dict())

    resumed = _run("--out", str(out), "--no-progress", "--threads", "1", "--epochs", "12", "--resume")
    assert f"resuming from {out / 'checkpoint.safetensors'}" in resumed
    assert "epoch 10/12" not in resumed and "epoch 11/12" in resumed and "epoch 12/12" in resumed
    assert History.read(out / "history.json")["epoch"] == list(range(1, 13))


def test_mlp_on_breast_cancer_with_other_options(tmp_path):
    printed = _run("--model", "mlp", "--dataset", "breast-cancer", "--epochs", "3", "--optimizer", "sgd",
                   "--schedule", "step", "--threads", "1", "--batch-size", "32", "--seed", "3", "--out",
                   str(tmp_path), "--no-progress")
    assert "breast-cancer: 409 training, 46 validation, 114 test samples of shape (30,), 2 classes; mlp" in printed
    assert "sgd lr 0.05, step schedule, batch 32, 3 epochs, seed 3" in printed
    assert float(re.search(r"test accuracy (\d+\.\d+)%", printed).group(1)) > 90


def test_cnn_on_mnist1d_signals(tmp_path):
    printed = _run("--dataset", "mnist1d", "--epochs", "1", "--threads", "1", "--out", str(tmp_path), "--no-progress")
    assert "mnist1d: 3,600 training, 400 validation, 1,000 test samples of shape (1, 40), 10 classes; cnn" in printed
    assert float(re.search(r"test accuracy (\d+\.\d+)%", printed).group(1)) > 30  # chance: 10%


def test_compile_gives_the_eager_run_faster(tmp_path):
    arguments = ("--model", "mlp", "--epochs", "2", "--threads", "1", "--no-progress")
    eager = _run(*arguments, "--out", str(tmp_path / "eager"))
    compiled = _run(*arguments, "--out", str(tmp_path / "compiled"), "--compile")
    # The same losses and accuracies line for line; only the timings differ.
    timings = re.compile(r"\d+\.\d+ s \([\d,]+ samples/s\)|in \d+\.\d+ s|/eager|/compiled")
    assert timings.sub("", eager) == timings.sub("", compiled)


def test_lstm_reads_digits_row_by_row(tmp_path):
    printed = _run("--model", "lstm", "--epochs", "3", "--threads", "1", "--out", str(tmp_path), "--no-progress")
    assert "lstm with" in printed and float(re.search(r"test accuracy (\d+\.\d+)%", printed).group(1)) > 40


def test_help_lists_the_options():
    completed = subprocess.run([sys.executable, "-m", "nbprop.train", "--help"], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0
    for option in ("--model", "--dataset", "--epochs", "--batch-size", "--optimizer", "--lr", "--schedule", "--seed",
                   "--threads", "--device", "--resume", "--out", "{mlp,cnn,lstm}", "fashion-mnist", "mnist1d",
                   "breast-cancer"):
        assert option in completed.stdout, option


def test_console_script_is_declared():
    with open(os.path.join(ROOT, "pyproject.toml")) as handle:
        text = handle.read()
    assert re.search(r'^\[project\.scripts\]\nnbprop-train = "nbprop\.train\.cli:main"$', text, re.M)
    script = os.path.join(os.path.dirname(sys.executable), "nbprop-train")
    if os.path.exists(script):  # installed (pip install -e .): it runs
        completed = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0 and "usage: nbprop-train" in completed.stdout


@pytest.mark.parametrize("arguments, message", [
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fashion"],
     r"fashion_mnist: no train-images-idx3-ubyte \(or train-images-idx3-ubyte.gz\) in '/nonexistent/fashion'; Debian's "
     "dataset-fashion-mnist package"),
    (["--dataset", "breast-cancer"], "--model cnn needs images or signals; breast-cancer is a table"),
    (["--threads", "999"], r"--threads must be in 1\.\.\d+"),
    (["--device", "tpu"], r"--device 'tpu' is not available; the devices are \['cpu'"),
    (["--epochs", "-1"], "--epochs must be >= 0"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--resume"], r"--resume: no checkpoint at '.*checkpoint.safetensors'"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, arguments, message):
    assert cli.main([*arguments, "--out", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert re.search("nbprop-train: error: " + message, error), error
    assert "Traceback" not in error


def test_resume_refuses_other_options(tmp_path, capsys):
    assert cli.main(["--model", "mlp", "--dataset", "breast-cancer", "--epochs", "1", "--out", str(tmp_path),
                     "--no-progress"]) == 0
    assert cli.main(["--model", "mlp", "--dataset", "breast-cancer", "--epochs", "2", "--lr", "0.1", "--out",
                     str(tmp_path), "--no-progress", "--resume"]) == 2
    assert "was trained with --lr 0.003 (now 0.1); pass the same options" in capsys.readouterr().err


def test_labels_out_of_range_name_the_step(tmp_path, monkeypatch):
    from nbprop.data import datasets

    features, labels = datasets.load_breast_cancer()
    monkeypatch.setattr(datasets, "load_breast_cancer", lambda: (features, labels * 5))
    monkeypatch.setattr(cli, "_load", _with_two_classes(cli._load))
    with pytest.raises(IndexError, match=r"fit: epoch 1, step 1 .*Target 5 is out of bounds"):
        cli.main(["--model", "mlp", "--dataset", "breast-cancer", "--epochs", "1", "--out", str(tmp_path),
                  "--no-progress"])
    assert np.isin(labels.numpy(), [0, 1]).all()


def _with_two_classes(load):
    """The job's loader, claiming two classes whatever the labels say (as a model built for them would)."""
    def loader(options):
        splits, kind, _ = load(options)
        return splits, kind, 2
    return loader
