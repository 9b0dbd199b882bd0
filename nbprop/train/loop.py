"""fit and evaluate: the training loop (epochs of steps, validation, schedules, clipping, early stopping,
checkpoints with an exact resume, a history file, a gradient-health report and a progress bar)."""

import math
import os
import sys
import time

from nbprop.autograd import no_grad
from nbprop.capture.compiled import compile as compile_step
from nbprop.nn.utils import clip_grad_norm_
from nbprop.optim.lr_scheduler import ReduceLROnPlateau
from nbprop.tensor import Tensor
from nbprop.train import checkpoint as checkpoints
from nbprop.train.early_stopping import EarlyStopping
from nbprop.train.health import GradientMonitor
from nbprop.train.history import GRADIENT_NORM, History

__all__ = ["NonFiniteLossError", "accuracy", "evaluate", "fit"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: training stopped (`epoch`, `step`, the `history` of the good epochs)."""

    def __init__(self, message, epoch, step, history):
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, history


def accuracy(outputs, targets):
    """The fraction of rows of `outputs` (N, classes) whose largest entry is at the class index in `targets` (N,)."""
    with no_grad():
        return (outputs.argmax(dim=1) == targets).float().mean().item()


def _classifying(outputs, targets):
    """Whether a batch looks like classification: scores (N, classes > 1) against int64 class indices (N,)."""
    return (isinstance(outputs, Tensor) and isinstance(targets, Tensor) and outputs.ndim == 2
            and outputs.shape[1] > 1 and targets.ndim == 1 and targets.dtype.kind == "i")


def _describe(value):
    if isinstance(value, Tensor):
        return f"shape {tuple(value.shape)} {value.dtype}"
    return type(value).__name__


def _batch(batch, where):
    """The (inputs, targets) of a loader's batch."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        size = f" of {len(batch)}" if isinstance(batch, (tuple, list)) else ""
        raise TypeError(f"fit: {where}: a batch must be an (inputs, targets) pair, got a {type(batch).__name__}{size}")
    return batch


def _step_error(error, where, inputs, targets):
    """The error of a failed forward or loss, with the epoch, step and batch it happened at."""
    context = f"fit: {where} (inputs {_describe(inputs)}, targets {_describe(targets)}): "
    if type(error) in (RuntimeError, ValueError, IndexError, TypeError):
        return type(error)(context + str(error))
    error.add_note(context.rstrip(": "))
    return error


class _Progress:
    """An epoch's tqdm bar on stderr showing the running loss and samples/s; nothing when disabled or when stderr
    is not a terminal (a log file would fill with redrawn bars; the epoch lines on stdout stay)."""

    def __init__(self, enabled, total, epoch, epochs):
        self.bar = None
        if enabled:
            from tqdm import tqdm  # imported when a bar is shown: nbprop.train imports without it

            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                            file=sys.stderr, dynamic_ncols=True, disable=None)

    def update(self, loss, samples_per_second):
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}, {samples_per_second:,.0f} samples/s", refresh=False)
            self.bar.update()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _metric_functions(metrics, outputs, targets):
    if metrics == "auto":
        return {"accuracy": accuracy} if _classifying(outputs, targets) else {}
    return dict(metrics or {})


def evaluate(model, loss_fn, loader, metrics="auto"):
    """The mean loss and metrics of `model` (in eval mode, without gradients) over `loader`: {"loss": ...,
    "accuracy": ...}; each batch weighs by its number of samples. `metrics` as in fit."""
    was_training = model.training
    model.eval()
    totals, count, functions = {}, 0, None
    try:
        with no_grad():
            for step, batch in enumerate(loader, 1):
                inputs, targets = _batch(batch, f"evaluation step {step}")
                try:
                    outputs = model(inputs)
                    loss = loss_fn(outputs, targets).item()
                except Exception as error:
                    raise _step_error(error, f"evaluation step {step}", inputs, targets) from error
                if functions is None:
                    functions = _metric_functions(metrics, outputs, targets)
                size = len(targets)
                totals["loss"] = totals.get("loss", 0.0) + loss * size
                for name, function in functions.items():
                    totals[name] = totals.get(name, 0.0) + float(function(outputs, targets)) * size
                count += size
    finally:
        model.train(was_training)
    if not count:
        raise ValueError("evaluate: the loader yielded no samples (is the dataset empty?)")
    return {name: total / count for name, total in totals.items()}


def _learning_rate(optimizer):
    rate = optimizer.param_groups[0]["lr"]
    return float(rate) if isinstance(rate, (int, float)) else math.nan  # a schedule function: see its own record


def fit(model, loss_fn, optimizer, train_loader, val_loader=None, epochs=10, *, scheduler=None,
        scheduler_interval="epoch", clip_grad_norm=None, early_stopping=None, checkpoint_path=None, resume=False,
        metrics="auto", progress=True, verbose=True, history_path=None, compile=False):  # noqa: A002
    """Train `model` for `epochs` epochs over `train_loader` (batches of (inputs, targets)) with `optimizer`,
    minimising `loss_fn(model(inputs), targets)`; returns a History (one row per epoch: train_loss, val_loss,
    accuracies, lr, seconds, samples_per_second, grad_norm/<layer>).

    - `val_loader`: evaluated after each epoch (model.eval(), no gradients).
    - `scheduler`: an optim.lr_scheduler object, stepped after each epoch (ReduceLROnPlateau with the monitored
      loss: val_loss, else train_loss) or, with `scheduler_interval="step"`, after each optimizer step.
    - `clip_grad_norm`: clip the gradients' total 2-norm to this value before each step.
    - `early_stopping`: an EarlyStopping, or an int (its patience on val_loss, best weights restored at the end).
    - `checkpoint_path`: after every epoch, the model, optimizer, scheduler, epoch, early-stopping state, history
      and random state (the default generator's and the train loader's generators) are saved there atomically
      (nbprop.save). `resume=True` continues from that file (or `resume=<path>` from another one): the run then
      goes on exactly as if it had not been interrupted; build the model, optimizer, scheduler and loaders as
      for the first run.
    - `metrics`: "auto" (accuracy when the outputs are (N, classes) scores and the targets int64 class indices),
      None, or {name: function(outputs, targets) -> the batch's mean}.
    - `progress`: a tqdm bar per epoch (loss, samples/s) on stderr when it is a terminal.
    - `verbose`: a line per epoch (losses, accuracies, lr, time, samples/s) and the gradient-health flags on stdout.
    - `history_path`: the history is written there after every epoch (CSV for a .csv name, JSON otherwise).
    - `compile`: run each training step (forward, backward, gradient health, clipping, update, a per-step
      schedule) as one nbprop.compile'd step: its plan replays with no Python per op (see nbprop/capture/).
      The finiteness check of the loss then comes after the update rather than before it.

    Each epoch also measures every layer's gradient norm (the gradient-health report, in `history.gradient_health`
    and printed): a mean below 1e-7 is flagged vanishing, a step above 1e3 or non-finite exploding. A NaN or
    infinite loss stops training with NonFiniteLossError naming the epoch and step; the checkpoint and history
    of the last good epoch stay as they were.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"fit: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, (int, float)) and clip_grad_norm > 0):
        raise ValueError(f"fit: clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
    if not (metrics in ("auto", None) or isinstance(metrics, dict)):
        raise TypeError(f"fit: metrics must be 'auto', None or a dict of name -> function, got {metrics!r}")
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if loader is not None and hasattr(loader, "__len__") and len(loader) == 0:
            raise ValueError(f"fit: {name} has no batches (is its dataset empty, or smaller than a batch with "
                             "drop_last=True?)")
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        early_stopping = EarlyStopping(patience=early_stopping)
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"fit: early_stopping must be an EarlyStopping, an int (patience) or None, got "
                            f"{type(early_stopping).__name__}")
        early_stopping.resolve(val_loader is not None)
    if resume and checkpoint_path is None and resume is True:
        raise ValueError("fit: resume=True continues from checkpoint_path, which is None")

    history, first_epoch, stopped = History(), 1, False
    if resume:
        source = checkpoint_path if resume is True else os.fspath(resume)
        saved = checkpoints.read(source, model=model, optimizer=optimizer, scheduler=scheduler,
                                 loader=train_loader, early_stopping=early_stopping)
        history = History.from_state_dict(saved["history"])
        first_epoch, stopped = saved["epoch"] + 1, saved["stopped"]

    monitor = GradientMonitor(model)
    parameters = [parameter for _, group in monitor.layers for parameter in group]

    def forward(inputs, targets):
        outputs = model(inputs)
        return outputs, loss_fn(outputs, targets)

    def update(loss):
        optimizer.zero_grad()
        loss.backward()
        monitor.measure()
        if clip_grad_norm is not None:
            clip_grad_norm_(parameters, clip_grad_norm)
        optimizer.step()
        if scheduler is not None and scheduler_interval == "step":
            scheduler.step()

    def whole_step(inputs, targets):
        outputs, loss = forward(inputs, targets)
        update(loss)
        return outputs.detach(), loss.detach()

    compiled_step = compile_step(whole_step) if compile else None
    say = print if verbose else (lambda *args, **kwargs: None)
    for epoch in range(first_epoch, epochs + 1):
        if stopped:
            break
        model.train()
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):  # DistributedSampler: an order per epoch
            train_loader.sampler.set_epoch(epoch)
        rate = _learning_rate(optimizer)
        bar = _Progress(progress, len(train_loader) if hasattr(train_loader, "__len__") else None, epoch, epochs)
        totals, samples, functions, start = {"loss": 0.0}, 0, None, time.perf_counter()
        try:
            for step, batch in enumerate(train_loader, 1):
                where = f"epoch {epoch}, step {step}"
                inputs, targets = _batch(batch, where)
                try:
                    outputs, loss = (compiled_step or forward)(inputs, targets)
                except Exception as error:
                    raise _step_error(error, where, inputs, targets) from error
                value = loss.item()
                if not math.isfinite(value):
                    kept = (f"the last good checkpoint (end of epoch {epoch - 1}) stays at {checkpoint_path!r}"
                            if checkpoint_path is not None and epoch > 1 else "no checkpoint was written")
                    raise NonFiniteLossError(f"fit: the loss is {value} at epoch {epoch}, step {step}; training "
                                             f"stopped ({kept}). Lower the learning rate, clip the gradients "
                                             "(clip_grad_norm=) or check the data for NaN or infinite values.",
                                             epoch, step, history)
                if compiled_step is None:
                    update(loss)
                if functions is None:
                    functions = _metric_functions(metrics, outputs, targets)
                size = len(targets)
                totals["loss"] += value * size
                for name, function in functions.items():
                    totals[name] = totals.get(name, 0.0) + float(function(outputs, targets)) * size
                samples += size
                bar.update(totals["loss"] / samples, samples / max(time.perf_counter() - start, 1e-9))
        finally:
            bar.close()
        if not samples:
            raise ValueError(f"fit: train_loader yielded no batches in epoch {epoch} (is the dataset empty?)")
        seconds = time.perf_counter() - start
        row = {"epoch": epoch}
        row.update({f"train_{name}": total / samples for name, total in totals.items()})
        if val_loader is not None:
            row.update({f"val_{name}": value for name, value in evaluate(model, loss_fn, val_loader, metrics).items()})
        row.update({"lr": rate, "seconds": seconds, "samples_per_second": samples / seconds})
        norms, flags = monitor.summary(epoch)
        row.update({GRADIENT_NORM + name: norm for name, norm in norms.items()})
        history.rows.append(row)
        history.gradient_health.extend(flags)
        if scheduler is not None and scheduler_interval == "epoch":
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(row["val_loss" if val_loader is not None else "train_loss"])
            else:
                scheduler.step()
        if early_stopping is not None:
            stopped = early_stopping.update(row, model)
            history.best_epoch, history.stopped_early = early_stopping.best_epoch, stopped
        if checkpoint_path is not None:
            checkpoints.write(checkpoint_path, epoch=epoch, model=model, optimizer=optimizer, scheduler=scheduler,
                              loader=train_loader, early_stopping=early_stopping, history=history, stopped=stopped)
        if history_path is not None:
            history.write(history_path)
        say(_summary(row, epochs), flush=True)
        for flag in flags:
            say(f"gradient health: {flag}", flush=True)
        if stopped:
            say(f"early stopping: {early_stopping.monitor} has not improved for {early_stopping.bad_epochs} epochs "
                f"(best {early_stopping.best:.4g} at epoch {early_stopping.best_epoch})", flush=True)
    if early_stopping is not None and early_stopping.restore(model):
        say(f"restored the weights of epoch {early_stopping.best_epoch} (best {early_stopping.monitor})", flush=True)
    return history


def _summary(row, epochs):
    """One epoch's line: its losses and accuracies, learning rate, time and throughput."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        if name in row:
            parts.append(f"{name.replace('_', ' ')} {row[name]:.4f}")
    if math.isfinite(row["lr"]):
        parts.append(f"lr {row['lr']:.3g}")
    parts.append(f"{row['seconds']:.2f} s ({row['samples_per_second']:,.0f} samples/s)")
    return "  ".join(parts)
