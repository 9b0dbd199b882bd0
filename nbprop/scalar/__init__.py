"""The scalar engine: micrograd's `Value` on a flat compiled tape, `compile` (trace once, replay many), nn."""

from nbprop.scalar.nn import MLP, Layer, Module, Neuron
from nbprop.scalar.program import Program, compile
from nbprop.scalar.tape import Tape, current_tape
from nbprop.scalar.value import Value

__all__ = ["MLP", "Layer", "Module", "Neuron", "Program", "Tape", "Value", "compile", "current_tape"]
