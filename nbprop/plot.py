"""Plots of training runs: `history(path, out_png)` draws a history file's curves with matplotlib (an extra:
pip install 'nbprop[plot]'), imported only when a plot is drawn."""

import math
import os

from nbprop.train.health import EXPLODING, VANISHING
from nbprop.train.history import GRADIENT_NORM, History

__all__ = ["history"]


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("nbprop.plot needs matplotlib, which is not installed: pip install matplotlib (or "
                          "pip install 'nbprop[plot]')") from error
    return Figure, FigureCanvasAgg


def _present(rows, column):
    return any(isinstance(row.get(column), (int, float)) and math.isfinite(row[column]) for row in rows)


def _curve(axes, rows, column, label, **style):
    points = [(row["epoch"], row[column]) for row in rows
              if isinstance(row.get(column), (int, float)) and math.isfinite(row[column])]
    if points:
        epochs, values = zip(*points)
        axes.plot(epochs, values, label=label, marker="o" if len(points) < 30 else None, markersize=3, **style)


def history(path, out_png, title=None):
    """Draw the history file `path` (JSON or CSV, as fit's history_path writes) into the PNG `out_png`: loss and
    accuracy per epoch (training and validation), the learning rate, and each layer's gradient norm on a log
    scale between the vanishing (1e-7) and exploding (1e3) thresholds. Returns out_png."""
    record = History.read(path)
    rows = record.rows
    if not rows:
        raise ValueError(f"nbprop.plot.history: {os.fspath(path)!r} holds no epochs")
    Figure, FigureCanvasAgg = _matplotlib()
    panels = ["loss"]
    if _present(rows, "train_accuracy") or _present(rows, "val_accuracy"):
        panels.append("accuracy")
    if _present(rows, "lr"):
        panels.append("lr")
    layers = record.layers()
    if layers:
        panels.append("gradients")
    columns = 2 if len(panels) > 1 else 1
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(6.0 * columns, 4.0 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title or f"Training history: {os.path.basename(os.fspath(path))}", fontsize=13)
    grid = figure.subplots(lines, columns, squeeze=False).ravel()
    for axes in grid[len(panels):]:
        axes.set_visible(False)
    for axes, panel in zip(grid, panels):
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        if panel == "loss":
            _curve(axes, rows, "train_loss", "training")
            _curve(axes, rows, "val_loss", "validation")
            axes.set_title("Loss")
            axes.set_ylabel("loss")
            values = [row[name] for row in rows for name in ("train_loss", "val_loss") if _present([row], name)]
            if values and min(values) > 0 and max(values) > 10 * min(values):  # a log scale only over decades
                axes.set_yscale("log")
        elif panel == "accuracy":
            _curve(axes, rows, "train_accuracy", "training")
            _curve(axes, rows, "val_accuracy", "validation")
            axes.set_title("Accuracy")
            axes.set_ylabel("accuracy")
        elif panel == "lr":
            _curve(axes, rows, "lr", "learning rate", color="tab:purple")
            axes.set_title("Learning rate")
            axes.set_ylabel("learning rate")
        else:
            for layer in layers:
                _curve(axes, rows, GRADIENT_NORM + layer, layer)
            axes.set_yscale("log")
            axes.set_title("Gradient norm per layer (epoch mean)")
            axes.set_ylabel("gradient 2-norm")
            # The thresholds are drawn where the norms come within two decades of them: drawn always, they would
            # squeeze healthy curves into a thin band.
            low, high = axes.get_ylim()
            for threshold, label, color in ((VANISHING, "vanishing below 1e-7", "tab:blue"),
                                            (EXPLODING, "exploding above 1e3", "tab:red")):
                if threshold / 100 <= high and low <= threshold * 100:
                    axes.axhline(threshold, color=color, linestyle=":", linewidth=1.2)
                    axes.text(0.01, threshold, f" {label}", transform=axes.get_yaxis_transform(), va="bottom",
                              fontsize=8, color=color)
        if panel != "lr":
            axes.legend(fontsize=8, loc="best", ncol=2 if len(axes.get_lines()) > 6 else 1)
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.savefig(os.fspath(out_png), dpi=110)
    return out_png
