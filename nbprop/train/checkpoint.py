"""Training checkpoints: everything a run needs to continue exactly as if uninterrupted, in one nbprop.save file."""

import os

from nbprop import io
from nbprop import random as nbprop_random

__all__ = ["FORMAT", "loader_generators", "read", "write"]

FORMAT = "nbprop.train.checkpoint/1"


def loader_generators(loader):
    """The nbprop.Generators that decide a loader's order (its own, its sampler's, its batch sampler's sampler's),
    each once, in a fixed order: their states go into checkpoints."""
    found = []
    candidates = [loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
    for owner in candidates:
        generator = getattr(owner, "generator", None)
        if isinstance(generator, nbprop_random.Generator) and all(generator is not other for other in found):
            found.append(generator)
    return found


def write(path, *, epoch, model, optimizer, scheduler, loader, early_stopping, history, stopped):
    """Save the state after `epoch` (counted from 1) to `path`, atomically (nbprop.save)."""
    io.save({
        "format": FORMAT,
        "epoch": epoch,
        "stopped": stopped,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "random": {"default": nbprop_random.get_rng_state(),
                   "loader": [generator.get_state() for generator in loader_generators(loader)]},
        "early_stopping": None if early_stopping is None else early_stopping.state_dict(),
        "history": history.state_dict(),
    }, path)


def read(path, *, model, optimizer, scheduler, loader, early_stopping):
    """Restore a state `write` saved into the given objects (built as for the interrupted run); returns the
    checkpoint (its "epoch", "stopped" and "history" entries)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"fit: cannot resume: no checkpoint at {path!r}")
    checkpoint = io.load(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"fit: cannot resume from {path!r}: it is not a checkpoint written by nbprop.train.fit "
                         f"(expected format {FORMAT!r})")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if (scheduler is None) != (checkpoint["scheduler"] is None):
        raise ValueError(f"fit: cannot resume from {path!r}: it was written "
                         f"{'without' if checkpoint['scheduler'] is None else 'with'} a scheduler, and this run "
                         f"has {'none' if scheduler is None else 'one'}")
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    generators = loader_generators(loader)
    if len(generators) != len(checkpoint["random"]["loader"]):
        raise ValueError(f"fit: cannot resume from {path!r}: it holds {len(checkpoint['random']['loader'])} data "
                         f"loader generator state(s), the train loader has {len(generators)} generator(s)")
    for generator, state in zip(generators, checkpoint["random"]["loader"]):
        generator.set_state(state)
    nbprop_random.set_rng_state(checkpoint["random"]["default"])
    if early_stopping is not None and checkpoint["early_stopping"] is not None:
        early_stopping.load_state_dict(checkpoint["early_stopping"])
    return checkpoint
