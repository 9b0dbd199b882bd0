"""Training: `fit` (epochs with validation, schedules, clipping, early stopping, checkpoints with an exact resume,
a history file, a gradient-health report and a progress bar), `evaluate`, and the main job
`python -m nbprop.train` / `nbprop-train` (nbprop.train.cli)."""

from nbprop.train.early_stopping import EarlyStopping
from nbprop.train.health import GradientMonitor
from nbprop.train.history import History
from nbprop.train.loop import NonFiniteLossError, accuracy, evaluate, fit

__all__ = ["EarlyStopping", "GradientMonitor", "History", "NonFiniteLossError", "accuracy", "evaluate", "fit"]
