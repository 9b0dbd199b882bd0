"""nbprop.train.fit: exact resume, early stopping, clipping, schedules, history files, gradient health, bad input."""

import io as text_io
import json
import math
import os
import time

import numpy as np
import pytest

import nbprop
from nbprop import nn, optim
from nbprop.data import DataLoader, TensorDataset
from nbprop.train import EarlyStopping, History, NonFiniteLossError, evaluate, fit


def _blobs(count=120, seed=0):
    """Three Gaussian blobs in 6 dimensions (labels 0..2), float32 features."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    features = rng.normal(size=(count, 6)) + 3.0 * np.eye(3, 6)[labels]
    return nbprop.tensor(features.astype(np.float32)), nbprop.tensor(labels)


def _setup(seed, generator=True, dropout=0.2):
    """A model (with dropout: draws from the default stream), Adam, StepLR and shuffled/plain loaders."""
    nbprop.manual_seed(seed)
    features, labels = _blobs()
    shuffle = nbprop.Generator().manual_seed(7) if generator else None
    train = DataLoader(TensorDataset(features[:90], labels[:90]), batch_size=16, shuffle=True, generator=shuffle)
    validation = DataLoader(TensorDataset(features[90:], labels[90:]), batch_size=64)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    scheduler = optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.7)
    return model, optimizer, scheduler, train, validation


def _weights(model):
    return {key: value.numpy().copy() for key, value in model.state_dict().items()}


def _without_time(rows):
    return [{key: value for key, value in row.items() if key not in ("seconds", "samples_per_second")} for row in rows]


@pytest.mark.parametrize("generator", [True, False], ids=["loader_generator", "default_stream"])
def test_resume_continues_bit_identically(tmp_path, generator):
    model, optimizer, scheduler, train, validation = _setup(0, generator)
    straight = fit(model, nn.CrossEntropyLoss(), optimizer, train, validation, epochs=4, scheduler=scheduler,
                   checkpoint_path=tmp_path / "straight.safetensors", progress=False)

    model, optimizer, scheduler, train, validation = _setup(0, generator)
    fit(model, nn.CrossEntropyLoss(), optimizer, train, validation, epochs=2, scheduler=scheduler,
        checkpoint_path=tmp_path / "split.safetensors", progress=False)
    nbprop.randn(100)  # the interruption: whatever happens in between moves the streams
    model, optimizer, scheduler, train, validation = _setup(1, generator)  # built anew, other weights
    resumed = fit(model, nn.CrossEntropyLoss(), optimizer, train, validation, epochs=4, scheduler=scheduler,
                  checkpoint_path=tmp_path / "split.safetensors", resume=True, progress=False)

    straight_model = nbprop.load(tmp_path / "straight.safetensors")["model"]
    for key, value in _weights(model).items():
        assert np.array_equal(value, straight_model[key].numpy()), key
    assert _without_time(resumed.rows) == _without_time(straight.rows)
    assert resumed["lr"] == pytest.approx([1e-2, 7e-3, 4.9e-3, 3.43e-3])
    assert straight["train_loss"][-1] < straight["train_loss"][0]


def test_a_compiled_fit_trains_bit_identically_to_an_eager_one():
    """Dropout, clipping, a per-step schedule and the gradient-health report, captured and replayed; the last
    batch of each epoch is smaller (a second plan)."""
    histories, weights = [], []
    for compile in (False, True):
        model, optimizer, _, train, validation = _setup(0)
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
        histories.append(fit(model, nn.CrossEntropyLoss(), optimizer, train, validation, epochs=4,
                             scheduler=scheduler, scheduler_interval="step", clip_grad_norm=0.5, progress=False,
                             verbose=False, compile=compile))
        weights.append(_weights(model))
    assert _without_time(histories[1].rows) == _without_time(histories[0].rows)
    for key in weights[0]:
        assert np.array_equal(weights[0][key], weights[1][key]), key
    assert histories[0]["train_loss"][-1] < histories[0]["train_loss"][0]


def test_resume_refuses_a_missing_or_foreign_checkpoint(tmp_path):
    model, optimizer, scheduler, train, _ = _setup(0)
    with pytest.raises(FileNotFoundError, match="cannot resume: no checkpoint at .*missing.safetensors"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, checkpoint_path=tmp_path / "missing.safetensors",
            resume=True, progress=False)
    nbprop.save(model.state_dict(), tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match="not a checkpoint written by nbprop.train.fit"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, resume=tmp_path / "weights.safetensors",
            progress=False)
    fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=1, checkpoint_path=tmp_path / "c.safetensors",
        progress=False)
    with pytest.raises(ValueError, match="written without a scheduler, and this run has one"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=scheduler,
            checkpoint_path=tmp_path / "c.safetensors", resume=True, progress=False)


def test_history_columns_lines_and_files(tmp_path, capsys):
    model, optimizer, scheduler, train, validation = _setup(0, dropout=0.0)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, validation, epochs=3, scheduler=scheduler,
                  history_path=tmp_path / "history.json", progress=True)
    assert history.columns() == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds",
                                 "samples_per_second", "grad_norm/0 (Linear)", "grad_norm/3 (Linear)"]
    assert history["epoch"] == [1, 2, 3] and history["val_accuracy"][-1] > 0.5  # chance: 1/3
    assert history["train_loss"][2] < history["train_loss"][0]
    assert all(norm > 0 for norm in history["grad_norm/0 (Linear)"])
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and printed[2].startswith("epoch 3/3  train loss ") and "val accuracy" in printed[2]
    assert "samples/s" in printed[2]
    # The model's own evaluation agrees with the last row.
    assert evaluate(model, nn.CrossEntropyLoss(), validation)["accuracy"] == history["val_accuracy"][-1]

    written = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in written["epochs"]] == [1, 2, 3]
    history.write(tmp_path / "history.csv")
    for name in ("history.json", "history.csv"):
        back = History.read(tmp_path / name)
        assert back.columns() == history.columns()
        for first, second in zip(back.rows, history.rows):
            assert first == pytest.approx(second), name
    assert sorted(os.listdir(tmp_path)) == ["history.csv", "history.json"]  # no temporaries left
    (tmp_path / "broken.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="broken.json' is not a history file"):
        History.read(tmp_path / "broken.json")


def test_progress_bar_shows_loss_and_throughput_on_a_terminal(monkeypatch):
    class Terminal(text_io.StringIO):
        def isatty(self):
            return True

    def slow_loss(outputs, targets):
        time.sleep(0.06)  # tqdm redraws at most every 0.1 s
        return nn.functional.cross_entropy(outputs, targets)

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    model, optimizer, _, train, _ = _setup(0)
    fit(model, slow_loss, optimizer, train, epochs=1, progress=True)
    bar = terminal.getvalue()
    assert "epoch 1/1" in bar and " samples/s]" in bar and "batch/s, loss " in bar


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    model, optimizer, _, train, _ = _setup(0, dropout=0.0)
    features, labels = _blobs(60, seed=3)
    # Validation labels that disagree with the training ones: the validation loss rises as training fits.
    contrary = DataLoader(TensorDataset(features, (labels + 1) % 3), batch_size=64)
    stopping = EarlyStopping(patience=2)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, contrary, epochs=30, early_stopping=stopping,
                  checkpoint_path=tmp_path / "c.safetensors", progress=False)
    losses = history["val_loss"]
    best = int(np.argmin(losses)) + 1
    assert history.stopped_early and len(history) == best + 2 < 30 and history.best_epoch == best
    last = nbprop.load(tmp_path / "c.safetensors")
    assert last["epoch"] == len(history) and last["stopped"]
    for key, value in _weights(model).items():
        assert np.array_equal(value, stopping.best_state[key].numpy()), key
    assert any(not np.array_equal(value, last["model"][key].numpy()) for key, value in _weights(model).items())
    # Resuming a run that stopped early trains no more.
    again = fit(model, nn.CrossEntropyLoss(), optimizer, train, contrary, epochs=30,
                early_stopping=EarlyStopping(patience=2), checkpoint_path=tmp_path / "c.safetensors", resume=True,
                progress=False)
    assert len(again) == len(history)


def test_early_stopping_rules():
    stopping = EarlyStopping(patience=2, min_delta=0.1, monitor="val_accuracy")
    stopping.resolve(True)
    model = nn.Linear(1, 1)
    decisions = [stopping.update({"epoch": epoch, "val_accuracy": value}, model)
                 for epoch, value in enumerate([0.5, 0.65, 0.7, 0.74, 0.9], 1)]
    assert stopping.mode == "max" and decisions == [False, False, False, True, False] and stopping.best_epoch == 5
    with pytest.raises(ValueError, match="patience must be a non-negative integer"):
        EarlyStopping(patience=-1)
    with pytest.raises(KeyError, match="monitors 'val_loss', which fit does not record here"):
        fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), [(nbprop.ones(2, 1), nbprop.ones(2, 1))],
            epochs=1, early_stopping=EarlyStopping(monitor="val_loss"), progress=False)


def test_clipping_bounds_each_step():
    nbprop.manual_seed(0)
    model = nn.Linear(4, 1)
    before = nbprop.cat([parameter.detach().reshape(-1) for parameter in model.parameters()])
    batches = [(nbprop.randn(8, 4) * 100, nbprop.randn(8, 1) * 100)]
    fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1.0), batches, epochs=1, clip_grad_norm=1e-3,
        progress=False)
    after = nbprop.cat([parameter.detach().reshape(-1) for parameter in model.parameters()])
    assert 0 < ((after - before) ** 2).sum().sqrt().item() <= 1e-3 * (1 + 1e-5)


def test_step_schedules_and_plateau_schedules():
    model, optimizer, _, train, validation = _setup(0)
    cycle = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=2 * len(train))
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, scheduler=cycle,
                  scheduler_interval="step", progress=False)
    assert cycle.last_epoch == 2 * len(train) and history["lr"][0] == pytest.approx(0.05 / 25)

    model, optimizer, _, train, validation = _setup(0)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, validation, epochs=3, scheduler=plateau,
                  progress=False)
    assert plateau.best == min(history["val_loss"])  # stepped with the validation loss


def test_plain_lists_of_batches_and_custom_metrics():
    nbprop.manual_seed(0)
    model = nn.Linear(3, 1)
    inputs = nbprop.randn(32, 3)
    targets = inputs @ nbprop.tensor([[1.0], [-1.0], [0.5]])
    batches = [(inputs[:16], targets[:16]), (inputs[16:], targets[16:])]

    def mean_absolute_error(outputs, expected):
        return (outputs - expected).abs().mean().item()

    history = fit(model, nn.MSELoss(), optim.Adam(model.parameters(), lr=0.05), batches, batches, epochs=40,
                  metrics={"mae": mean_absolute_error}, progress=False)
    assert "train_accuracy" not in history.columns() and history["val_mae"][-1] < 0.1 * history["val_mae"][0]


def test_gradient_health_flags_vanishing_and_exploding_layers(capsys):
    nbprop.manual_seed(0)

    class Damped(nn.Module):
        def __init__(self):
            super().__init__()
            self.quiet = nn.Linear(2, 2)
            self.loud = nn.Linear(2, 1)

        def forward(self, x):
            return self.loud(x) * 1e4 + self.quiet(x).sum(dim=1, keepdim=True) * 1e-14

    model = Damped()
    batches = [(nbprop.randn(4, 2), nbprop.randn(4, 1))]
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.0), batches, epochs=2, progress=True)
    assert history.gradient_health[:2] == [
        f"epoch 1: layer quiet (Linear): mean gradient norm {history['grad_norm/quiet (Linear)'][0]:.3g} < 1e-07 "
        "(vanishing)",
        f"epoch 1: layer loud (Linear): gradient norm reached {history['grad_norm/loud (Linear)'][0]:.3g} > 1000 "
        "(exploding)"]
    assert len(history.gradient_health) == 4
    assert "gradient health: epoch 2: layer quiet (Linear)" in capsys.readouterr().out


def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path):
    model, optimizer, _, train, _ = _setup(0)
    calls = []

    def exploding_loss(outputs, targets):
        calls.append(None)
        loss = nn.functional.cross_entropy(outputs, targets)
        return loss * math.inf if len(calls) == len(train) + 3 else loss

    with pytest.raises(NonFiniteLossError, match=r"the loss is (inf|nan) at epoch 2, step 3; training stopped \(the "
                                                 r"last good checkpoint \(end of epoch 1\) stays at") as caught:
        fit(model, exploding_loss, optimizer, train, epochs=3, checkpoint_path=tmp_path / "c.safetensors",
            history_path=tmp_path / "h.csv", progress=False)
    assert (caught.value.epoch, caught.value.step, len(caught.value.history)) == (2, 3, 1)
    assert nbprop.load(tmp_path / "c.safetensors")["epoch"] == 1
    assert History.read(tmp_path / "h.csv")["epoch"] == [1]


def test_bad_input_gets_clear_errors():
    model = nn.Linear(6, 3)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    features, labels = _blobs(8)
    with pytest.raises(RuntimeError, match=r"fit: epoch 1, step 1 \(inputs shape \(8, 5\) float32, targets shape "
                                           r"\(8,\) int64\): linear: input of shape \(8, 5\)"):
        fit(model, loss, optimizer, [(features[:, :5], labels)], epochs=1, progress=False)
    with pytest.raises(IndexError, match=r"fit: epoch 1, step 1 .*Target 7 is out of bounds"):
        fit(model, loss, optimizer, [(features, labels + 5)], epochs=1, progress=False)
    with pytest.raises(ValueError, match="train_loader has no batches"):
        fit(model, loss, optimizer, [], epochs=1, progress=False)
    with pytest.raises(ValueError, match="val_loader has no batches"):
        fit(model, loss, optimizer, [(features, labels)], [], epochs=1, progress=False)
    with pytest.raises(ValueError, match="yielded no batches in epoch 1"):
        fit(model, loss, optimizer, iter([]), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"epoch 1, step 1: a batch must be an \(inputs, targets\) pair, got a tuple "
                                        "of 3"):
        fit(model, loss, optimizer, [(features, labels, labels)], epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        fit(model, loss, optimizer, [(features, labels)], epochs=1.5, progress=False)
    with pytest.raises(ValueError, match="clip_grad_norm must be a positive number"):
        fit(model, loss, optimizer, [(features, labels)], epochs=1, clip_grad_norm=0, progress=False)
    with pytest.raises(ValueError, match="resume=True continues from checkpoint_path, which is None"):
        fit(model, loss, optimizer, [(features, labels)], epochs=1, resume=True, progress=False)
