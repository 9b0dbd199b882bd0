"""History: what fit records per epoch (losses, metrics, learning rate, time, per-layer gradient norms), written
to and read from JSON or CSV."""

import contextlib
import csv
import io
import json
import math
import os
import tempfile

__all__ = ["GRADIENT_NORM", "History"]

# The columns of per-layer gradient norms are GRADIENT_NORM + the layer's name.
GRADIENT_NORM = "grad_norm/"


class History:
    """fit's record: `rows` (one dict per epoch: epoch, train_loss, val_loss, train_accuracy, val_accuracy, lr,
    seconds, samples_per_second, and grad_norm/<layer> for each layer), `history["val_loss"]` one column (None
    where an epoch lacks it), `gradient_health` the vanishing/exploding flags, `best_epoch` and
    `stopped_early` (early stopping), `stop_reason`."""

    def __init__(self, rows=(), gradient_health=(), best_epoch=None, stopped_early=False):
        self.rows = [dict(row) for row in rows]
        self.gradient_health = list(gradient_health)
        self.best_epoch = best_epoch
        self.stopped_early = stopped_early

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, column):
        if not any(column in row for row in self.rows):
            raise KeyError(f"History: no column {column!r}; the columns are {self.columns()}")
        return [row.get(column) for row in self.rows]

    def __repr__(self):
        return f"History({len(self.rows)} epochs, columns {self.columns()})"

    def columns(self):
        """The column names in first-seen order."""
        names = {}
        for row in self.rows:
            names.update(dict.fromkeys(row))
        return list(names)

    def layers(self):
        """The layers whose gradient norms were recorded."""
        return [name[len(GRADIENT_NORM):] for name in self.columns() if name.startswith(GRADIENT_NORM)]

    def state_dict(self):
        """A checkpointable form (plain lists, dicts and numbers)."""
        return {"rows": self.rows, "gradient_health": self.gradient_health, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early}

    @classmethod
    def from_state_dict(cls, state):
        return cls(state["rows"], state["gradient_health"], state["best_epoch"], state["stopped_early"])

    def write(self, path):
        """Write to `path`, atomically: CSV if it ends in .csv (one row per epoch), JSON otherwise ({"epochs": rows,
        "gradient_health": flags, ...}; a non-finite number is null)."""
        path = os.fspath(path)
        if path.lower().endswith(".csv"):
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=self.columns(), lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            text = text.getvalue()
        else:
            finite = [{key: _finite_or_none(value) for key, value in row.items()} for row in self.rows]
            text = json.dumps({"epochs": finite, "gradient_health": self.gradient_health,
                               "best_epoch": self.best_epoch, "stopped_early": self.stopped_early},
                              indent=1, allow_nan=False) + "\n"
        directory = os.path.dirname(os.path.abspath(path))
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @classmethod
    def read(cls, path):
        """A History from a file `write` wrote (CSV or JSON); raises ValueError naming the path if it is not one."""
        path = os.fspath(path)
        with open(path, newline="") as handle:
            text = handle.read()
        try:
            if path.lower().endswith(".csv"):
                reader = csv.DictReader(io.StringIO(text))
                return cls([{key: _number(value) for key, value in row.items()} for row in reader])
            data = json.loads(text)
            rows = [{key: math.nan if value is None else value for key, value in row.items()} for row in data["epochs"]]
            return cls(rows, data.get("gradient_health", ()), data.get("best_epoch"), data.get("stopped_early", False))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"History.read: {path!r} is not a history file written by nbprop.train.fit "
                             f"({type(error).__name__}: {error})") from error


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _number(text):
    """A CSV cell as a number (an int where it is one); an empty cell is NaN."""
    if text in ("", None):
        return math.nan
    try:
        return int(text)
    except ValueError:
        return float(text)
