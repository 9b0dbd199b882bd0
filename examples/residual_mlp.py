"""Train a residual MLP built from nbprop.nn modules on two spirals; checkpoint it with nbprop.save / load.

The residual block is composed by the user, as in PyTorch: x + f(x), with f = Linear, LayerNorm, ReLU,
Linear. Prints the loss falling and the accuracy, then reloads the checkpoint into a fresh model.
"""

import math
import pathlib
import tempfile

import numpy as np

import nbprop
import nbprop.nn.functional as F
from nbprop import nn


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.first = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.second = nn.Linear(width, width)

    def forward(self, x):
        return x + self.second(F.relu(self.norm(self.first(x))))


class ResidualMLP(nn.Module):
    def __init__(self, inputs, width, blocks, classes):
        super().__init__()
        self.stem = nn.Linear(inputs, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(F.relu(self.blocks(self.stem(x))))


def spirals(points_per_class, generator, turns=1.0):
    """Two interleaved spirals in the plane, labelled 0 and 1."""
    radius = np.linspace(0.2, 1.0, points_per_class)
    features, labels = [], []
    for label in (0, 1):
        angle = np.linspace(0, turns * 2 * math.pi, points_per_class) + label * math.pi
        angle += generator.normal(0, 0.1, points_per_class)
        features.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(points_per_class, label))
    return np.concatenate(features).astype(np.float32), np.concatenate(labels)


def main(steps=300, learning_rate=0.1):
    nbprop.manual_seed(0)
    features, labels = spirals(200, np.random.default_rng(0))
    inputs, targets = nbprop.tensor(features), nbprop.tensor(labels)
    model = ResidualMLP(2, 64, blocks=2, classes=2)
    print(model)

    for step in range(steps + 1):
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        model.zero_grad()
        loss.backward()
        with nbprop.no_grad():
            for parameter in model.parameters():
                parameter.sub_(parameter.grad, alpha=learning_rate)
        if step % 50 == 0:
            accuracy = (logits.argmax(dim=1) == targets).float().mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")

    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "residual_mlp.safetensors"
        nbprop.save(model.state_dict(), path)
        restored = ResidualMLP(2, 64, blocks=2, classes=2)
        restored.load_state_dict(nbprop.load(path))
    model.eval()
    restored.eval()
    with nbprop.no_grad():
        same = np.array_equal(model(inputs).numpy(), restored(inputs).numpy())
    print(f"checkpoint reloaded: identical outputs {same}")
    return loss.item(), accuracy, same


if __name__ == "__main__":
    main()
