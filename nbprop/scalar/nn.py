"""Scalar neural networks on Values: micrograd's Module, Neuron, Layer and MLP, with its shapes and init."""

import numbers
import random

from nbprop.scalar.value import Value


class Module:
    """Something with parameters (Values) whose gradients can be zeroed."""

    def zero_grad(self):
        """Set every parameter's `.grad` to 0 (backward accumulates into leaves)."""
        for parameter in self.parameters():
            parameter.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    """relu(w . x + b) (or linear with `nonlin=False`); w uniform in [-1, 1) from Python's `random`, b = 0.

    The same draws as micrograd's Neuron, so that `random.seed(s)` gives both the same weights.
    """

    def __init__(self, nin, nonlin=True):
        if not isinstance(nin, numbers.Integral) or nin < 0:
            raise ValueError(f"Neuron: nin must be a non-negative integer, got {nin!r}")
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        if len(x) != len(self.w):
            raise ValueError(f"Neuron: expected {len(self.w)} inputs, got {len(x)}")
        activation = sum((weight * input for weight, input in zip(self.w, x)), self.b)
        return activation.relu() if self.nonlin else activation

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """`nout` Neurons of `nin` inputs each; calling it returns a list of Values (one Value if nout == 1)."""

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [neuron(x) for neuron in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [parameter for neuron in self.neurons for parameter in neuron.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(neuron) for neuron in self.neurons)}]"


class MLP(Module):
    """`MLP(nin, [16, 16, 1])`: ReLU layers, a linear last layer."""

    def __init__(self, nin, nouts):
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [parameter for layer in self.layers for parameter in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
