"""Train a three-layer ReLU network on two interleaved spirals with plain tensors and SGD; prints the loss falling."""

import math
import sys
import time

import numpy as np
from numba.core import event

import nbprop


class CompileNotice(event.Listener):
    """Counts Numba's compilations (loading a kernel from the on-disk cache is not one) and says once, on stderr,
    that kernels are compiling: a first run spends its first seconds there."""

    def __init__(self):
        self.count = 0

    def on_start(self, compile_event):
        if not self.count:
            print("nbprop: compiling kernels, about 15 s on a first run (later runs load them from the cache)",
                  file=sys.stderr, flush=True)
        self.count += 1

    def on_end(self, compile_event):
        pass


def spirals(points_per_class, generator):
    """Two interleaved spirals in the plane, labelled 0 and 1."""
    radius = np.linspace(0.2, 1.0, points_per_class)
    features, labels = [], []
    for label in (0, 1):
        angle = np.linspace(0, 2 * math.pi, points_per_class) + label * math.pi
        angle += generator.normal(0, 0.15, points_per_class)
        features.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(points_per_class, label))
    return np.concatenate(features).astype(np.float32), np.concatenate(labels)


def main(steps=600, hidden=64, learning_rate=0.5):
    notice = CompileNotice()
    with event.install_listener("numba:compile", notice):
        return train(steps, hidden, learning_rate, notice)


def train(steps, hidden, learning_rate, notice):
    nbprop.manual_seed(0)
    features, labels = spirals(200, np.random.default_rng(0))
    inputs, targets = nbprop.tensor(features), nbprop.tensor(labels)
    rows = nbprop.arange(len(labels))

    # PyTorch's default init of nn.Linear: uniform in +-1/sqrt(fan_in).
    def layer(fan_in, fan_out):
        bound = 1 / math.sqrt(fan_in)
        weight = (nbprop.rand(fan_in, fan_out) * 2 - 1) * bound
        bias = (nbprop.rand(fan_out) * 2 - 1) * bound
        return weight.requires_grad_(), bias.requires_grad_()

    first_weight, first_bias = layer(2, hidden)
    second_weight, second_bias = layer(hidden, hidden)
    third_weight, third_bias = layer(hidden, 2)
    parameters = [first_weight, first_bias, second_weight, second_bias, third_weight, third_bias]

    start, compiled_before = time.perf_counter(), notice.count
    for step in range(steps + 1):
        hidden_one = (inputs @ first_weight + first_bias).relu()
        hidden_two = (hidden_one @ second_weight + second_bias).relu()
        logits = hidden_two @ third_weight + third_bias
        loss = -logits.log_softmax(dim=1)[rows, targets].mean()  # cross-entropy
        for parameter in parameters:
            parameter.grad = None
        loss.backward()
        with nbprop.no_grad():
            for parameter in parameters:
                parameter -= learning_rate * parameter.grad
        if step % 100 == 0:
            accuracy = (logits.argmax(dim=1) == targets).float().mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")
    elapsed = time.perf_counter() - start
    print(f"trained in {elapsed:.2f} s" + (" (including compilation)" if notice.count > compiled_before else ""))
    return loss.item(), accuracy


if __name__ == "__main__":
    main()
