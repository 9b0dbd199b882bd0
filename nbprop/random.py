"""The global random generator behind randn, rand, dropout and initialisers; `manual_seed` resets it."""

import numpy as np

_state = {"generator": np.random.default_rng(0), "seed": 0}


def manual_seed(seed):
    """Seed the generator: the same seed gives the same tensors (and bit-identical training)."""
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: expects an integer seed, got {type(seed).__name__}")
    _state["generator"] = np.random.default_rng(int(seed))
    _state["seed"] = int(seed)
    return _state["generator"]


def initial_seed():
    return _state["seed"]


def generator():
    """The NumPy Generator in use."""
    return _state["generator"]
