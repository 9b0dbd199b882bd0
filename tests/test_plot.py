"""nbprop.plot.history: a readable PNG of a history file's curves (JSON or CSV), clear errors otherwise."""

import math

import numpy as np
import pytest

from nbprop import plot
from nbprop.train import History


def _history(accuracy=True, epochs=6):
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 2.0 / epoch, "val_loss": 2.2 / epoch, "lr": 0.1 * 0.5 ** epoch,
               "seconds": 0.5, "samples_per_second": 1000.0,
               "grad_norm/0 (Linear)": 1.0 / epoch, "grad_norm/2 (Linear)": 1e-8 if epoch > 3 else 1e-3}
        if accuracy:
            row.update(train_accuracy=1 - 0.5 / epoch, val_accuracy=1 - 0.6 / epoch)
        rows.append(row)
    rows[-1]["grad_norm/0 (Linear)"] = math.nan  # a non-finite epoch is left out of its curve
    return History(rows)


def _image(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


@pytest.mark.parametrize("name", ["history.json", "history.csv"])
def test_history_png_from_json_and_csv(tmp_path, name):
    _history().write(tmp_path / name)
    out = tmp_path / "curves.png"
    assert plot.history(tmp_path / name, out) == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = _image(out)
    assert image.shape[0] > 600 and image.shape[1] > 1000  # four panels, two a row
    assert image[..., :3].std() > 0.05  # curves drawn, not a blank canvas


def test_regression_history_without_accuracy_has_three_panels(tmp_path):
    _history(accuracy=False).write(tmp_path / "history.json")
    plot.history(tmp_path / "history.json", tmp_path / "with.png")
    image = _image(tmp_path / "with.png")
    # The fourth cell of the 2x2 grid stays empty (white).
    height, width = image.shape[:2]
    assert np.all(image[height * 3 // 5:, width * 3 // 5:, :3] > 0.99)


def test_errors_name_the_file(tmp_path):
    History([]).write(tmp_path / "empty.json")
    with pytest.raises(ValueError, match="empty.json' holds no epochs"):
        plot.history(tmp_path / "empty.json", tmp_path / "x.png")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="other.json' is not a history file"):
        plot.history(tmp_path / "other.json", tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        plot.history(tmp_path / "missing.json", tmp_path / "x.png")
