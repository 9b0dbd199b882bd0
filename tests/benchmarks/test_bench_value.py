"""The scalar engine against micrograd: a 2-16-16-1 MLP over 100 samples, SVM loss + L2, forward + backward.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_value.py --benchmark-enable --benchmark-only
One group holds micrograd, the eager `Value` (graph rebuilt each step, as micrograd) and the compiled
replay (`nbprop.value.compile`, recorded once); extra_info gives each one's nodes per step, so nodes per
second = nodes / median time. The goals (eager 10x, compiled 100x faster than micrograd) are read off the
group's medians, not asserted: timings on a shared machine are too noisy for a test.
"""

import random

import numpy as np
import pytest

from nbprop import value

SAMPLES = 100
ALPHA = 1e-4
GROUP = "MLP 2-16-16-1, 100 samples, SVM loss + L2, forward + backward"


def _data():
    generator = np.random.default_rng(0)
    features = generator.normal(size=(SAMPLES, 2))
    labels = np.where(features[:, 0] * features[:, 1] > 0, 1.0, -1.0)
    return features, labels


def _loss(model, features, labels):
    """micrograd's demo loss, written once for both engines' Values."""
    scores = [model(row) for row in features.tolist()]
    losses = [(1 + -label * score).relu() for label, score in zip(labels.tolist(), scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    return data_loss + ALPHA * sum(p * p for p in model.parameters())


def micrograd_step():
    from micrograd import nn

    random.seed(0)
    model = nn.MLP(2, [16, 16, 1])
    features, labels = _data()

    def step():
        model.zero_grad()
        loss = _loss(model, features, labels)
        loss.backward()
        return loss

    return step


def eager_step():
    random.seed(0)
    tape = value.Tape()
    with tape:
        model = value.MLP(2, [16, 16, 1])
    features, labels = _data()

    def step():
        with tape.scope():  # the step's nodes are dropped at the end, the parameters stay
            model.zero_grad()
            loss = _loss(model, features, labels)
            loss.backward()
            step.nodes = len(tape)
            return loss.data

    return step


def compiled_step():
    random.seed(0)
    model = value.MLP(2, [16, 16, 1])
    parameters = model.parameters()
    features, labels = _data()
    hinge = value.compile(lambda x0, x1, label: (1 + -label * model([x0, x1])).relu(), 3)
    penalty = value.compile(lambda: ALPHA * sum(p * p for p in parameters), 0)
    rows = np.column_stack([features, labels])
    seeds = np.full(SAMPLES, 1.0 / SAMPLES)
    empty = np.empty(0)

    def step():
        model.zero_grad()
        losses, _ = hinge.value_and_grad(rows, seeds)
        regularisation, _ = penalty.value_and_grad(empty)
        return losses.mean() + regularisation

    step.nodes = SAMPLES * len(hinge) + len(penalty)
    step.parameters = parameters
    return step


def _micrograd_nodes(loss):
    seen, stack = {id(loss)}, [loss]
    while stack:
        for child in stack.pop()._prev:
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return len(seen)


@pytest.mark.benchmark(group=GROUP)
def test_micrograd(benchmark):
    step = micrograd_step()
    loss = benchmark.pedantic(step, rounds=3, iterations=1)
    benchmark.extra_info["nodes"] = _micrograd_nodes(loss)
    assert loss.data > 0


@pytest.mark.benchmark(group=GROUP)
def test_eager_value(benchmark):
    step = eager_step()
    step()
    loss = benchmark.pedantic(step, rounds=15, iterations=1)
    benchmark.extra_info["nodes"] = step.nodes
    assert abs(loss - micrograd_step()().data) < 1e-12


@pytest.mark.benchmark(group=GROUP)
def test_compiled_replay(benchmark):
    step = compiled_step()
    step()
    loss = benchmark.pedantic(step, rounds=100, iterations=1)
    benchmark.extra_info["nodes"] = step.nodes
    assert abs(loss - eager_step()()) < 1e-12
