"""Train a character-level LSTM on Python's own LICENSE text (offline), with gradient clipping and a cosine
learning-rate schedule; prints the loss falling and text sampled from the model."""

import argparse
import time

import numpy as np

import nbprop
from nbprop import nn
from nbprop.data import python_license_text
from nbprop.nn.utils import clip_grad_norm_
from nbprop.ops.loss import cross_entropy
from nbprop.optim import Adam
from nbprop.optim.lr_scheduler import CosineAnnealingLR


class CharModel(nn.Module):
    """Embedding -> LSTM -> linear head over the vocabulary."""

    def __init__(self, vocabulary, embedding=32, hidden=128):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocabulary)

    def forward(self, indices, state=None):
        output, state = self.lstm(self.embedding(indices), state)
        return self.head(output), state


def sample(model, alphabet, prompt, length, generator, temperature=0.8):
    """Continue `prompt` by `length` characters drawn from the model's softmax at the given temperature."""
    lookup = {character: index for index, character in enumerate(alphabet)}
    state = None
    text = prompt
    inputs = nbprop.tensor(np.array([[lookup[character] for character in prompt]]))
    with nbprop.no_grad():
        for _ in range(length):
            logits, state = model(inputs, state)
            scores = logits[0, -1].numpy().astype(np.float64) / temperature
            probabilities = np.exp(scores - scores.max())
            probabilities /= probabilities.sum()
            choice = int(generator.choice(len(alphabet), p=probabilities))
            text += alphabet[choice]
            inputs = nbprop.tensor(np.array([[choice]]))
    return text


def main(steps=300, sequence=64, batch=32, learning_rate=3e-3, print_every=100, compile=False):  # noqa: A002
    nbprop.manual_seed(0)
    generator = np.random.default_rng(0)
    source, text = python_license_text()
    alphabet = sorted(set(text))
    codes = np.array([alphabet.index(character) for character in text], dtype=np.int64)
    print(f"text: {source}, {len(text)} characters, {len(alphabet)} distinct")
    model = CharModel(len(alphabet))
    optimizer = Adam(model.parameters(), lr=learning_rate)
    schedule = CosineAnnealingLR(optimizer, T_max=max(steps, 1), eta_min=learning_rate / 10)

    def train_step(inputs, targets):
        logits, _ = model(inputs)
        loss = cross_entropy(logits.reshape(-1, len(alphabet)), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        return loss

    # --compile: the step is captured once and replayed with no Python per op (clipping and the schedule rerun).
    train = nbprop.compile(train_step) if compile else train_step
    start = time.perf_counter()
    losses = []
    for step in range(1, steps + 1):
        starts = generator.integers(0, len(codes) - sequence - 1, batch)
        windows = np.stack([codes[begin:begin + sequence + 1] for begin in starts])
        losses.append(train(nbprop.tensor(windows[:, :-1]), nbprop.tensor(windows[:, 1:])).item())
        if step == 1 or step % print_every == 0 or step == steps:
            recent = np.mean(losses[-print_every:])
            print(f"step {step:4d}  loss {recent:.4f}  lr {schedule.get_last_lr()[0]:.5f}  "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    model.eval()
    text_sample = sample(model, alphabet, "The ", 200, generator)
    print("sample:", text_sample.replace("\n", " "))
    return losses[0], float(np.mean(losses[-max(1, min(print_every, steps // 4)):])), text_sample


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--compile", action="store_true", help="capture the training step and replay it")
    options = parser.parse_args()
    main(steps=options.steps, compile=options.compile)
