"""Random generators: `Generator` (a seeded stream of its own, as torch.Generator) and the default generator
behind randn, rand, dropout and initialisers, which `manual_seed` reseeds.

A Generator draws with NumPy's PCG64 in host memory; the draws reach a tensor's device through the device's
`asarray`. The streams are not PyTorch's: the same seed gives the same numbers in nbprop, not the numbers
PyTorch gives.
"""

import numbers
import os

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.backend import get as get_device
from nbprop.capture import state as capture
from nbprop.tensor import Tensor

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state"]

# get_state's bytes: PCG64's 128-bit state and increment, its buffered 32-bit half (flag and value), the seed.
_STATE_LAYOUT = ((16, "state"), (16, "inc"), (1, "has_uint32"), (4, "uinteger"), (8, "seed"))
STATE_SIZE = sum(length for length, _ in _STATE_LAYOUT)


def _checked_seed(seed, op):
    """PyTorch's seed rule: an integer in [-2**63, 2**64); a negative one counts from 2**64."""
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(f"{op}: expects an integer seed, got {type(seed).__name__}")
    seed = int(seed)
    if not -2**63 <= seed < 2**64:
        raise ValueError(f"{op}: the seed {seed} is outside [-2**63, 2**64)")
    return seed % 2**64


class Generator:
    """A random number stream: `Generator(device='cpu')`, seeded by `manual_seed(seed)`, passed as
    `generator=` to randn, rand, randint, randperm, multinomial, bernoulli and nn.init's initialisers.

    Its draws are independent of the default generator's (`nbprop.manual_seed`), so that a seeded shuffle
    does not move the initialisation stream and the other way round. A new Generator is seeded with
    67280421310721, PyTorch's default seed. `device` is the device of the tensors it fills (the draws
    themselves are made in host memory and copied there).
    """

    def __init__(self, device=None):
        device = HOST if device is None else str(device)
        get_device(device, "Generator")
        self.device = device
        self.manual_seed(67280421310721)

    def manual_seed(self, seed):
        """Restart the stream from `seed` (an integer); returns the generator."""
        self._seed = _checked_seed(seed, "Generator.manual_seed")
        self._numpy = np.random.default_rng(self._seed)
        return self

    def seed(self):
        """Reseed from the operating system's entropy; returns the new seed."""
        new_seed = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(new_seed)
        return new_seed

    def initial_seed(self):
        """The seed of the current stream."""
        return self._seed

    def get_state(self):
        """The stream's position as a 1-D int64 tensor of STATE_SIZE byte values (PyTorch gives a uint8
        tensor; nbprop holds bytes as int64), for `set_state` and for saving in a checkpoint."""
        state = self._numpy.bit_generator.state
        values = {"state": state["state"]["state"], "inc": state["state"]["inc"],
                  "has_uint32": state["has_uint32"], "uinteger": state["uinteger"], "seed": self._seed}
        raw = b"".join(int(values[name]).to_bytes(length, "little") for length, name in _STATE_LAYOUT)
        return Tensor._make(np.frombuffer(raw, dtype=np.uint8).astype(np.int64), None, HOST)

    def set_state(self, new_state):
        """Continue from a state that `get_state` returned; returns the generator."""
        if not isinstance(new_state, Tensor):
            raise TypeError(f"Generator.set_state: expects a Tensor from get_state(), got {type(new_state).__name__}")
        if tuple(new_state.shape) != (STATE_SIZE,) or new_state.dtype.kind not in "iu":
            raise RuntimeError(f"Generator.set_state: expects the 1-D integer tensor of {STATE_SIZE} bytes that "
                               f"get_state() returns, got shape {tuple(new_state.shape)} and dtype {new_state.dtype}")
        values = DEVICES[new_state.device].to_numpy(new_state._data)
        if values.min() < 0 or values.max() > 255:
            raise RuntimeError("Generator.set_state: the state holds values outside [0, 255]; it is not a state "
                               "from get_state()")
        raw, fields, start = bytes(values.astype(np.uint8)), {}, 0
        for length, name in _STATE_LAYOUT:
            fields[name] = int.from_bytes(raw[start:start + length], "little")
            start += length
        if fields["has_uint32"] > 1:
            raise RuntimeError("Generator.set_state: the state is malformed (its buffered-half flag is not 0 or 1)")
        bit_generator = np.random.PCG64()
        bit_generator.state = {"bit_generator": "PCG64", "state": {"state": fields["state"], "inc": fields["inc"]},
                               "has_uint32": fields["has_uint32"], "uinteger": fields["uinteger"]}
        self._numpy = np.random.Generator(bit_generator)
        self._seed = fields["seed"]
        return self


# nbprop's default stream starts from seed 0 (PyTorch's starts from 67280421310721), so that runs that never
# call manual_seed repeat too.
default_generator = Generator().manual_seed(0)


def manual_seed(seed):
    """Seed the default generator: the same seed gives the same tensors (and bit-identical training).
    Returns the default generator."""
    return default_generator.manual_seed(_checked_seed(seed, "manual_seed"))


def seed():
    """Reseed the default generator from the operating system's entropy; returns the seed."""
    return default_generator.seed()


def initial_seed():
    """The default generator's seed."""
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state (see Generator.get_state)."""
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restore the default generator's state from get_rng_state()."""
    default_generator.set_state(new_state)


def generator():
    """The NumPy Generator of the default generator."""
    return default_generator._numpy


def numpy_generator(generator, device, op):
    """The NumPy Generator to draw from for a tensor on `device`: the default one when `generator` is None.

    A NumPy Generator passes through (nbprop's initialisers once took one)."""
    capture.note_host_read(f"{op} drawing random numbers in Python")
    if generator is None:
        return default_generator._numpy
    if isinstance(generator, Generator):
        if device is not None and generator.device != device:
            raise RuntimeError(f"{op}: expected a generator on device {device!r} (the tensor's), got one on "
                               f"{generator.device!r}")
        return generator._numpy
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"{op}: generator must be an nbprop.Generator, got {type(generator).__name__}")


# ---------------------------------------------------------------------------- draws on host arrays


def categories(rng, weights, num_samples, replacement, op):
    """Category indices, int64 (rows, num_samples), drawn from each row of the host array `weights` (rows,
    categories) in proportion to the weights; weights must be finite, non-negative, with a positive sum."""
    weights = weights.astype(np.float64)
    if weights.size:
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise RuntimeError(f"{op}: probability tensor contains either `inf`, `nan` or element < 0")
        if (weights.sum(axis=1) <= 0).any():
            raise RuntimeError(f"{op}: invalid multinomial distribution (sum of probabilities <= 0)")
    if replacement:
        # Inverse CDF: the first category whose running total exceeds u * total. A zero weight never wins,
        # since its running total equals its predecessor's; the clip guards u * total rounding up to total.
        totals = np.cumsum(weights, axis=1)
        samples = np.empty((weights.shape[0], num_samples), dtype=np.int64)
        for row, running in enumerate(totals):
            draws = rng.random(num_samples) * running[-1]
            last = np.flatnonzero(weights[row])[-1]
            samples[row] = np.minimum(np.searchsorted(running, draws, side="right"), last)
        return samples
    # Without replacement: the num_samples largest keys w / E with E ~ Exp(1) are a draw of num_samples
    # categories one after another, each in proportion to the weights left (Efraimidis and Spirakis). Zero
    # weights have key 0 and come last, in random order, as in PyTorch.
    keys = weights / rng.standard_exponential(weights.shape)
    ties = rng.random(weights.shape)  # orders the zero keys at random
    order = np.lexsort((-ties, -keys), axis=1)
    return np.ascontiguousarray(order[:, :num_samples], dtype=np.int64)


def coin_flips(rng, probability, shape, dtype, op):
    """0/1 draws of `shape` in `dtype` (a host array), each 1 with `probability`: a number, or a host array
    that broadcasts to `shape`; probabilities outside [0, 1] (or NaN) raise."""
    if isinstance(probability, np.ndarray):
        if not ((probability >= 0) & (probability <= 1)).all():  # NaN fails both
            raise RuntimeError(f"{op}: expected probabilities in [0, 1], got values outside it (or NaN)")
        try:
            probability = np.broadcast_to(probability, shape)
        except ValueError:
            raise RuntimeError(f"{op}: the probabilities of shape {probability.shape} do not broadcast to the "
                               f"tensor's shape {tuple(shape)}") from None
    return (rng.random(shape) < probability).astype(dtype)
