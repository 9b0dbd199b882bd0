"""The flat tape that scalar Values live on: pending Python lists, NumPy columns grown by doubling, epochs."""

import contextlib
import numbers

import numpy as np

from nbprop import backend


def _constant(number):
    """A Python number (int, float, bool, NumPy scalar) as a float, or None for anything else."""
    kind = number.__class__
    if kind is float or kind is int:
        return float(number)
    if isinstance(number, numbers.Real):
        return float(number)
    return None


class Tape:
    """The flat record of scalar operations that Values live on.

    Nodes recorded since the last kernel call wait in Python lists; they move into the NumPy columns
    (grown by doubling) when values are needed. `len(tape)` counts the nodes. A `with Tape() as tape:` block
    makes it the tape new leaves `Value(x)` go on. Between training steps, `with tape.scope():` (or
    `truncate(length)`) drops the step's nodes and keeps the parameters made before, so the tape's length
    and memory stay flat:

        with tape.scope():
            loss = ...; model.zero_grad(); loss.backward(); print(loss.data)
        for p in model.parameters(): p.data -= learning_rate * p.grad
    """

    def __init__(self, capacity=1024):
        capacity = max(int(capacity), 16)
        self._codes_array = np.zeros(capacity, np.int64)
        self._lefts_array = np.zeros(capacity, np.int64)
        self._rights_array = np.zeros(capacity, np.int64)
        self._constants_array = np.zeros(capacity, np.float64)
        self._values = np.zeros(capacity, np.float64)
        self._grads = np.zeros(capacity, np.float64)
        # All zero between backward calls; tape_backward marks and clears the nodes it reaches.
        self._reached = np.zeros(capacity, np.uint8)
        # Nodes recorded but not yet in the arrays: appending to lists is the cheapest Python can do.
        self._codes, self._lefts, self._rights, self._constants = [], [], [], []
        self._flushed = 0
        self._evaluated = 0
        # Each truncate starts an epoch; _marks[e] is the length epoch e was cut to, _floor the lowest.
        self._epoch = 0
        self._marks = []
        self._floor = None

    def __len__(self):
        return self._flushed + len(self._codes)

    def __repr__(self):
        return f"Tape(nodes={len(self)}, capacity={self.capacity})"

    @property
    def capacity(self):
        """How many nodes the arrays hold before they grow."""
        return self._codes_array.shape[0]

    def __enter__(self):
        _tapes.append(self)
        return self

    def __exit__(self, *exception):
        # The innermost entry: a tape entered twice must stay current until its outer block ends.
        del _tapes[len(_tapes) - 1 - _tapes[::-1].index(self)]

    def _reserve(self, size):
        """Grow the arrays (doubling) so that they hold `size` nodes."""
        capacity = self.capacity
        if size <= capacity:
            return
        while capacity < size:
            capacity *= 2
        for name in ("_codes_array", "_lefts_array", "_rights_array", "_constants_array", "_values", "_grads",
                     "_reached"):
            old = getattr(self, name)
            new = np.zeros(capacity, old.dtype)
            new[:self._flushed] = old[:self._flushed]
            setattr(self, name, new)

    def _flush(self):
        """Move the pending nodes into the arrays (their gradients start at zero)."""
        count = len(self._codes)
        if not count:
            return
        start = self._flushed
        stop = start + count
        self._reserve(stop)
        self._codes_array[start:stop] = np.fromiter(self._codes, np.int64, count)
        self._lefts_array[start:stop] = np.fromiter(self._lefts, np.int64, count)
        self._rights_array[start:stop] = np.fromiter(self._rights, np.int64, count)
        self._constants_array[start:stop] = np.fromiter(self._constants, np.float64, count)
        self._grads[start:stop] = 0.0
        self._codes.clear()
        self._lefts.clear()
        self._rights.clear()
        self._constants.clear()
        self._flushed = stop

    def _evaluate(self):
        """Compute the values of every node recorded so far (one kernel call for all new nodes)."""
        self._flush()
        if self._evaluated < self._flushed:
            _kernel("tape_forward")(self._codes_array, self._lefts_array, self._rights_array, self._constants_array,
                                    self._values, self._evaluated, self._flushed)
            self._evaluated = self._flushed

    def truncate(self, length):
        """Drop the nodes from index `length` on, keeping (and later reusing) the memory.

        Values made before stay valid; a Value of a dropped node raises RuntimeError when used.
        """
        size = len(self)
        if not isinstance(length, numbers.Integral) or not 0 <= length <= size:
            raise ValueError(f"Tape.truncate: length must be an integer in [0, {size}], got {length!r}")
        length = int(length)
        if length >= self._flushed:
            keep = length - self._flushed
            del self._codes[keep:], self._lefts[keep:], self._rights[keep:], self._constants[keep:]
        else:
            del self._codes[:], self._lefts[:], self._rights[:], self._constants[:]
            self._flushed = length
        self._evaluated = min(self._evaluated, length)
        self._marks.append(length)
        self._floor = length if self._floor is None else min(self._floor, length)
        self._epoch += 1

    def reset(self):
        """Drop every node (`truncate(0)`)."""
        self.truncate(0)

    @contextlib.contextmanager
    def scope(self):
        """A block whose nodes are dropped at its end: `with tape.scope(): loss = ...; loss.backward()`.

        The tape is made current inside the block. Read what you need (`loss.data`) inside it.
        """
        length = len(self)
        with self:
            try:
                yield self
            finally:
                self.truncate(length)

    def _alive(self, value):
        """Whether `value`'s node survived every truncate since it was made."""
        index = value._index
        if self._floor is None or index < self._floor:
            return True
        return index < min(self._marks[value._epoch:])

    def _check(self, value, op):
        """Raise if `value` (made in an older epoch) was dropped by a truncate."""
        if not self._alive(value):
            raise RuntimeError(
                f"Value.{op}: this Value (node {value._index}) was dropped by Tape.truncate; a Value made "
                f"inside `with tape.scope():` is not valid after the block"
            )


_tapes = [Tape()]


def current_tape():
    """The tape new leaves go on: the innermost `with tape:` block's, else the default tape."""
    return _tapes[-1]


def _kernel(name):
    return backend.cpu.kernel(name)
