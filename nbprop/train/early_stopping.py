"""EarlyStopping: stop when a monitored number stops improving, and give back the best weights."""

import math
from collections import OrderedDict

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop training after `patience` epochs without an improvement of `monitor` (a history column: "val_loss",
    the default, or "train_loss" without validation data, "val_accuracy", ...) by more than `min_delta`;
    `mode` "min" (losses) or "max" (accuracies), by default "max" for a column with "accuracy" in its name.
    With `restore_best_weights` the model gets the weights of its best epoch back when training ends."""

    def __init__(self, patience=5, min_delta=0.0, monitor=None, mode=None, restore_best_weights=True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative integer, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"EarlyStopping: min_delta must be a non-negative number, got {min_delta!r}")
        if mode not in (None, "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.min_delta, self.monitor, self.mode = patience, float(min_delta), monitor, mode
        self.restore_best_weights = restore_best_weights
        self.best, self.best_epoch, self.bad_epochs, self.best_state = None, None, 0, None

    def resolve(self, has_validation):
        """Fill in the monitored column and the mode from what fit records."""
        if self.monitor is None:
            self.monitor = "val_loss" if has_validation else "train_loss"
        if self.mode is None:
            self.mode = "max" if "accuracy" in self.monitor else "min"

    def update(self, row, model):
        """Take an epoch's history row; returns True when training should stop."""
        if self.monitor not in row:
            raise KeyError(f"EarlyStopping: monitors {self.monitor!r}, which fit does not record here; the columns "
                           f"are {sorted(row)}")
        value = row[self.monitor]
        sign = 1.0 if self.mode == "min" else -1.0
        if math.isfinite(value) and (self.best is None or sign * (self.best - value) > self.min_delta):
            self.best, self.best_epoch, self.bad_epochs = value, row["epoch"], 0
            if self.restore_best_weights:
                self.best_state = OrderedDict((key, tensor.clone()) for key, tensor in model.state_dict().items())
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model):
        """Load the best epoch's weights into `model` (when kept); returns whether it did."""
        if self.restore_best_weights and self.best_state is not None:
            model.load_state_dict(self.best_state)
            return True
        return False

    def state_dict(self):
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "best_state": self.best_state}

    def load_state_dict(self, state):
        if state["monitor"] != self.monitor:
            raise ValueError(f"EarlyStopping: the checkpoint monitored {state['monitor']!r}, this run monitors "
                             f"{self.monitor!r}")
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
        self.best_state = state["best_state"]
