"""Train a small character-level Transformer language model on Python's own LICENSE text (offline): causal
self-attention through the fused scaled_dot_product_attention, AdamW with linear warmup and cosine decay, gradient
clipping; prints the loss falling and text sampled from the model."""

import argparse
import time

import numpy as np

import nbprop
from nbprop import nn
from nbprop.data import python_license_text
from nbprop.nn.utils import clip_grad_norm_
from nbprop.ops.loss import cross_entropy
from nbprop.optim import AdamW
from nbprop.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR


class CharTransformer(nn.Module):
    """Embedding + learned positions -> pre-norm causal Transformer encoder -> LayerNorm -> vocabulary head."""

    def __init__(self, vocabulary, context, d_model=64, heads=4, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, d_model)
        self.positions = nn.LearnedPositionalEncoding(context, d_model, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocabulary)

    def forward(self, indices):
        length = indices.shape[1]
        # The mask is what PyTorch requires beside the is_causal hint; the hint sends the fused kernel its own
        # causal rule, so the mask is never read.
        causal = nbprop.tensor(np.triu(np.ones((length, length), dtype=bool), 1))
        hidden = self.encoder(self.positions(self.embedding(indices)), mask=causal, is_causal=True)
        return self.head(hidden)


def sample(model, alphabet, prompt, length, context, generator, temperature=0.8):
    """Continue `prompt` by `length` characters drawn from the model's softmax at the given temperature."""
    lookup = {character: index for index, character in enumerate(alphabet)}
    codes = [lookup[character] for character in prompt]
    with nbprop.no_grad():
        for _ in range(length):
            logits = model(nbprop.tensor(np.array([codes[-context:]])))
            scores = logits[0, -1].numpy().astype(np.float64) / temperature
            probabilities = np.exp(scores - scores.max())
            probabilities /= probabilities.sum()
            codes.append(int(generator.choice(len(alphabet), p=probabilities)))
    return "".join(alphabet[code] for code in codes)


def main(steps=400, sequence=64, batch=32, learning_rate=3e-3, print_every=100):
    nbprop.manual_seed(0)
    generator = np.random.default_rng(0)
    source, text = python_license_text()
    alphabet = sorted(set(text))
    codes = np.array([alphabet.index(character) for character in text], dtype=np.int64)
    print(f"text: {source}, {len(text)} characters, {len(alphabet)} distinct")
    model = CharTransformer(len(alphabet), sequence)
    optimizer = AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, min(50, steps // 10))
    schedule = SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.05, total_iters=warmup),
                                        CosineAnnealingLR(optimizer, T_max=max(steps - warmup, 1),
                                                          eta_min=learning_rate / 20)], milestones=[warmup])
    start = time.perf_counter()
    losses = []
    for step in range(1, steps + 1):
        starts = generator.integers(0, len(codes) - sequence - 1, batch)
        windows = np.stack([codes[begin:begin + sequence + 1] for begin in starts])
        inputs, targets = nbprop.tensor(windows[:, :-1]), nbprop.tensor(windows[:, 1:])
        loss = cross_entropy(model(inputs).reshape(-1, len(alphabet)), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step == 1 or step % print_every == 0 or step == steps:
            recent = np.mean(losses[-print_every:])
            print(f"step {step:4d}  loss {recent:.4f}  lr {schedule.get_last_lr()[0]:.5f}  "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    model.eval()
    text_sample = sample(model, alphabet, "The ", 200, sequence, generator)
    print("sample:", text_sample.replace("\n", " "))
    return losses[0], float(np.mean(losses[-max(1, min(print_every, steps // 4)):])), text_sample


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    main(steps=parser.parse_args().steps)
