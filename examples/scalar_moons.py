"""Train micrograd's 2-16-16-1 MLP of scalar Values on two moons with the compiled replay; prints loss and accuracy.

The model is `nbprop.value.MLP`, micrograd's own; the training loop does not rebuild its graph every step
as micrograd does: `nbprop.value.compile` records the per-sample loss once, and each step replays it for
all samples in one Numba call (parallel over samples), the parameters' `.grad` accumulating the gradient.
"""

import math
import random
import time

import numpy as np

from nbprop import value


def two_moons(samples, noise, generator):
    """Two interleaving half circles (scikit-learn's make_moons), labels -1 and +1, shuffled."""
    outer = samples // 2
    inner = samples - outer
    outer_angle = np.linspace(0, math.pi, outer)
    inner_angle = np.linspace(0, math.pi, inner)
    features = np.concatenate([
        np.stack([np.cos(outer_angle), np.sin(outer_angle)], axis=1),
        np.stack([1 - np.cos(inner_angle), 0.5 - np.sin(inner_angle)], axis=1),
    ])
    features += generator.normal(0.0, noise, features.shape)
    labels = np.concatenate([-np.ones(outer), np.ones(inner)])
    order = generator.permutation(samples)
    return features[order], labels[order]


def main(steps=100, samples=100, alpha=1e-4, seed=1337):
    random.seed(seed)  # Neuron draws its weights from Python's random, as micrograd's does
    features, labels = two_moons(samples, 0.1, np.random.default_rng(seed))
    model = value.MLP(2, [16, 16, 1])
    parameters = model.parameters()
    print(f"{model}\nparameters: {len(parameters)}")

    # Recorded once: the SVM max-margin loss of one sample (and its score, for the accuracy), and the L2
    # penalty of the parameters, which the programs capture and read afresh at every replay.
    def sample_loss(x0, x1, label):
        score = model([x0, x1])
        return [(1 + -label * score).relu(), score]

    per_sample = value.compile(sample_loss, 3)
    penalty = value.compile(lambda: alpha * sum(p * p for p in parameters), 0)
    rows = np.column_stack([features, labels])
    # d loss / d (sample loss) = 1 / samples (the mean); the score does not enter the loss.
    seeds = np.column_stack([np.full(samples, 1.0 / samples), np.zeros(samples)])

    start = time.perf_counter()
    for step in range(steps):
        model.zero_grad()
        outputs, _ = per_sample.value_and_grad(rows, seeds)
        regularisation, _ = penalty.value_and_grad(np.empty(0))
        loss = outputs[:, 0].mean() + regularisation
        accuracy = float(np.mean((outputs[:, 1] > 0) == (labels > 0)))
        learning_rate = 1.0 - 0.9 * step / steps
        for parameter in parameters:
            parameter.data -= learning_rate * parameter.grad
        if step % 10 == 0 or step == steps - 1:
            print(f"step {step:3d}  loss {loss:.4f}  accuracy {accuracy:.0%}")
    outputs = per_sample.forward(rows)
    loss = outputs[:, 0].mean() + penalty.forward(np.empty(0))
    accuracy = float(np.mean((outputs[:, 1] > 0) == (labels > 0)))
    elapsed = time.perf_counter() - start
    print(f"final  loss {loss:.4f}  accuracy {accuracy:.0%}  ({steps} steps in {elapsed:.2f} s, "
          f"{len(per_sample)} nodes per sample replayed)")
    return loss, accuracy


if __name__ == "__main__":
    main()
