"""Scalar engine: a micrograd-style `Value` whose graph is a flat tape that compiled kernels walk.

Every operation on Values appends one node to a `Tape` (an op code, the indices of its operands and a
constant), so building a graph costs a few list appends and no closure. Values are computed lazily, in
one kernel call, when some `.data` is read (or `backward()` runs); `backward()` is one compiled reverse
sweep. A `Value` is a small handle: its tape and its node index.

Gradient semantics are micrograd's: `v.backward()` sets `v.grad = 1`, and every Value that v depends on
receives d v / d itself. Leaves (`Value(number)`: parameters, inputs) accumulate across backward calls
until zeroed (`p.grad = 0`, `module.zero_grad()`); the gradient of an interior node is recomputed by each
backward that reaches it (micrograd would add it to the previous one and so count old paths twice).

Memory: `Tape.truncate(length)` / `with tape.scope():` drop the nodes of a step and reuse their storage;
parameters created before stay. `compile(fn, n_inputs)` records fn once and replays it without Python.
"""

from nbprop.kernels.value import (
    ADD,
    ADD_CONSTANT,
    CONSTANT_DIV,
    CONSTANT_POW,
    CONSTANT_SUB,
    DIV,
    DIV_CONSTANT,
    EXP,
    LEAF,
    LOG,
    MUL,
    MUL_CONSTANT,
    NEG,
    POW,
    POW_CONSTANT,
    RELU,
    SIGMOID,
    SUB,
    TANH,
)
from nbprop.scalar.tape import Tape, _constant, _kernel, _tapes

_OP_NAMES = {
    LEAF: "", ADD: "+", SUB: "-", MUL: "*", DIV: "/", POW: "**", ADD_CONSTANT: "+", CONSTANT_SUB: "-",
    MUL_CONSTANT: "*", DIV_CONSTANT: "/", CONSTANT_DIV: "/", POW_CONSTANT: "**", CONSTANT_POW: "**",
    NEG: "neg", EXP: "exp", LOG: "log", TANH: "tanh", SIGMOID: "sigmoid", RELU: "ReLU",
}
_new = object.__new__


def _record(tape, code, left, right, constant):
    """Append one node to `tape` and return its Value."""
    codes = tape._codes
    index = tape._flushed + len(codes)
    codes.append(code)
    tape._lefts.append(left)
    tape._rights.append(right)
    tape._constants.append(constant)
    result = _new(Value)
    result._tape = tape
    result._index = index
    result._epoch = tape._epoch
    return result


def _binary(first, second, code, constant_code, op):
    """first <op> second for a Value `first` and a Value or number `second`."""
    tape = first._tape
    if first._epoch != tape._epoch:
        tape._check(first, op)
    if second.__class__ is Value:
        if second._tape is not tape:
            raise ValueError(f"Value.{op}: the operands live on different tapes")
        if second._epoch != tape._epoch:
            tape._check(second, op)
        return _record(tape, code, first._index, second._index, 0.0)
    constant = _constant(second)
    if constant is None:
        return NotImplemented
    if code == SUB:
        constant = -constant  # a - c is a + (-c), bit for bit
    return _record(tape, constant_code, first._index, first._index, constant)


def _reflected(first, number, constant_code, op):
    """number <op> first for a Value `first`."""
    tape = first._tape
    if first._epoch != tape._epoch:
        tape._check(first, op)
    constant = _constant(number)
    if constant is None:
        return NotImplemented
    return _record(tape, constant_code, first._index, first._index, constant)


def _unary(value, code, op):
    tape = value._tape
    if value._epoch != tape._epoch:
        tape._check(value, op)
    return _record(tape, code, value._index, value._index, 0.0)


def _data_of(other):
    if other.__class__ is Value:
        return other.data
    return _constant(other)


class Value:
    """A scalar that records how it was computed, micrograd's interface on a compiled tape.

    `Value(data)` makes a leaf on the current tape (`tape=` picks another). Operators `+ - * / **`
    (a number or a Value exponent) and unary `-` mix Values with Python numbers; `exp log tanh sigmoid
    relu`; `< <= > >=` compare `.data` and return bools (`==` is identity, as in micrograd, so Values hash).
    Arithmetic follows IEEE float64: `log(0) = -inf`, `log(-1)` and `0/0` are NaN, `exp(1000) = inf`;
    nothing raises. `.data` and `.grad` read and write the tape.
    """

    __slots__ = ("_epoch", "_index", "_tape")

    def __init__(self, data, tape=None):
        constant = _constant(data)
        if constant is None:
            raise TypeError(f"Value: data must be a real number, got {type(data).__name__}")
        tape = _tapes[-1] if tape is None else tape
        if tape.__class__ is not Tape:
            raise TypeError(f"Value: tape must be a Tape, got {type(tape).__name__}")
        index = len(tape)
        tape._codes.append(LEAF)
        tape._lefts.append(index)
        tape._rights.append(index)
        tape._constants.append(constant)
        self._tape = tape
        self._index = index
        self._epoch = tape._epoch

    # ------------------------------------------------------------------------------------- the tape

    @property
    def tape(self):
        """The Tape this Value's node is on."""
        return self._tape

    @property
    def index(self):
        """This Value's node index on its tape."""
        return self._index

    @property
    def data(self):
        """The value (a float); reading it computes the pending nodes of the tape."""
        tape = self._tape
        if self._epoch != tape._epoch:
            tape._check(self, "data")
        if self._index >= tape._evaluated:
            tape._evaluate()
        return tape._values.item(self._index)

    @data.setter
    def data(self, number):
        constant = _constant(number)
        if constant is None:
            raise TypeError(f"Value.data: must be a real number, got {type(number).__name__}")
        tape = self._tape
        if self._epoch != tape._epoch:
            tape._check(self, "data")
        # Nodes recorded so far are computed first, from the old value, as micrograd computes eagerly.
        if tape._evaluated < len(tape):
            tape._evaluate()
        tape._values[self._index] = constant

    @property
    def grad(self):
        """d root / d self after `root.backward()` (leaves accumulate); 0.0 before any backward."""
        tape = self._tape
        if self._epoch != tape._epoch:
            tape._check(self, "grad")
        if self._index >= tape._flushed:
            return 0.0
        return tape._grads.item(self._index)

    @grad.setter
    def grad(self, number):
        constant = _constant(number)
        if constant is None:
            raise TypeError(f"Value.grad: must be a real number, got {type(number).__name__}")
        tape = self._tape
        if self._epoch != tape._epoch:
            tape._check(self, "grad")
        if self._index >= tape._flushed:
            tape._flush()
        tape._grads[self._index] = constant

    def backward(self):
        """Backpropagate from this Value in one compiled reverse sweep (see the module for the semantics)."""
        tape = self._tape
        if self._epoch != tape._epoch:
            tape._check(self, "backward")
        tape._evaluate()
        _kernel("tape_backward")(tape._codes_array, tape._lefts_array, tape._rights_array, tape._constants_array,
                                 tape._values, tape._grads, tape._reached, self._index)

    # ------------------------------------------------------------------------------------ operators

    def __add__(self, other):
        return _binary(self, other, ADD, ADD_CONSTANT, "__add__")

    def __radd__(self, other):
        return _reflected(self, other, ADD_CONSTANT, "__radd__")

    def __sub__(self, other):
        return _binary(self, other, SUB, ADD_CONSTANT, "__sub__")

    def __rsub__(self, other):
        return _reflected(self, other, CONSTANT_SUB, "__rsub__")

    def __mul__(self, other):
        return _binary(self, other, MUL, MUL_CONSTANT, "__mul__")

    def __rmul__(self, other):
        return _reflected(self, other, MUL_CONSTANT, "__rmul__")

    def __truediv__(self, other):
        return _binary(self, other, DIV, DIV_CONSTANT, "__truediv__")

    def __rtruediv__(self, other):
        return _reflected(self, other, CONSTANT_DIV, "__rtruediv__")

    def __pow__(self, exponent, modulo=None):
        if modulo is not None:
            raise TypeError("Value.__pow__: a modulo is not supported")
        return _binary(self, exponent, POW, POW_CONSTANT, "__pow__")

    def __rpow__(self, base):
        return _reflected(self, base, CONSTANT_POW, "__rpow__")

    def __neg__(self):
        return _unary(self, NEG, "__neg__")

    def __pos__(self):
        return self

    def exp(self):
        return _unary(self, EXP, "exp")

    def log(self):
        return _unary(self, LOG, "log")

    def tanh(self):
        return _unary(self, TANH, "tanh")

    def sigmoid(self):
        return _unary(self, SIGMOID, "sigmoid")

    def relu(self):
        return _unary(self, RELU, "relu")

    def __lt__(self, other):
        other = _data_of(other)
        return NotImplemented if other is None else self.data < other

    def __le__(self, other):
        other = _data_of(other)
        return NotImplemented if other is None else self.data <= other

    def __gt__(self, other):
        other = _data_of(other)
        return NotImplemented if other is None else self.data > other

    def __ge__(self, other):
        other = _data_of(other)
        return NotImplemented if other is None else self.data >= other

    def __float__(self):
        return self.data

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # ------------------------------------------------------------------ micrograd's graph attributes

    @property
    def _op(self):
        """The op that made this Value ('' for a leaf), as micrograd names it."""
        tape = self._tape
        tape._flush()
        return _OP_NAMES[int(tape._codes_array[self._index])]

    @property
    def _prev(self):
        """The Values this one was computed from (a set, as micrograd's)."""
        tape = self._tape
        tape._flush()
        index = self._index
        code = int(tape._codes_array[index])
        if code == LEAF:
            return set()
        operands = {int(tape._lefts_array[index]), int(tape._rights_array[index])}
        result = set()
        for operand in operands:
            value = _new(Value)
            value._tape, value._index, value._epoch = tape, operand, tape._epoch
            result.add(value)
        return result
