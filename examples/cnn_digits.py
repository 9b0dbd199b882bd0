"""Classify scikit-learn's 8x8 handwritten digits with a small CNN (batch norm, one residual block); prints the
training loss per epoch and the test accuracy it reached (about 98-99%).

    python examples/cnn_digits.py [--epochs N]
"""

import argparse
import contextlib
import time

import nbprop
import nbprop.nn.functional as F
from nbprop import nn, optim
from nbprop.data import DataLoader, TensorDataset, datasets, train_test_split


def convolution(in_channels, out_channels):
    """3x3 convolution keeping the size, then batch norm (which makes the convolution's bias redundant)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))


class ResidualBlock(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))), as in ResNet, composed by the user as in PyTorch."""

    def __init__(self, channels):
        super().__init__()
        self.first = convolution(channels, channels)
        self.second = convolution(channels, channels)

    def forward(self, x):
        return F.relu(x + self.second(F.relu(self.first(x))))


def model(width=32, classes=10):
    """1x8x8 -> width x8x8 -> residual block -> max pool 4x4 -> 2*width x4x4 -> max pool 2x2 -> linear."""
    return nn.Sequential(
        convolution(1, width), nn.ReLU(),
        ResidualBlock(width),
        nn.MaxPool2d(2),
        convolution(width, 2 * width), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(2 * width * 2 * 2, classes),
    )


def accuracy(network, loader):
    network.eval()
    correct = total = 0
    with nbprop.no_grad():
        for images, labels in loader:
            correct += (network(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    return correct / total


def blas_threads(count):
    """Limit BLAS's threads while training: OpenBLAS threads spin-waiting on busy shared cores made this
    example's small products 5x slower at 2 threads than at 1 (4.6 s against 0.9 s an epoch, load 4 on 2
    cores). threadpoolctl and SciPy come with scikit-learn, which the data set needs anyway."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401 - the BLAS of Numba's np.dot: loaded so that it is limited
        import threadpoolctl
    except ImportError:
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(count, user_api="blas")


def main(epochs=8, seed=0, batch_size=32, learning_rate=3e-3, threads=1, compile=False):  # noqa: A002
    with blas_threads(threads):
        return train(epochs, seed, batch_size, learning_rate, compile)


def train(epochs, seed, batch_size, learning_rate, compile):  # noqa: A002 - the flag's name
    nbprop.manual_seed(seed)
    features, labels = datasets.load_digits()  # (1797, 64) pixel counts 0..16, labels 0..9
    images = (features / 16.0).reshape(-1, 1, 8, 8)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=0.2, stratify=labels,
                                                        random_state=seed)
    shuffle = nbprop.Generator().manual_seed(seed)
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=batch_size, shuffle=True,
                              generator=shuffle)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=512)

    network = model()
    optimizer = optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=1e-4)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, epochs=epochs,
                                              steps_per_epoch=len(train_loader))

    def train_step(batch_images, batch_labels):
        loss = F.cross_entropy(network(batch_images), batch_labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        return loss

    # --compile: the step is captured once per batch shape and replayed with no Python per op.
    step = nbprop.compile(train_step) if compile else train_step
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        network.train()
        total_loss = 0.0
        for batch_images, batch_labels in train_loader:
            total_loss += step(batch_images, batch_labels).item() * len(batch_labels)
        print(f"epoch {epoch:2d}  loss {total_loss / len(train_y):.4f}  ({time.perf_counter() - start:.1f} s)")
    test_accuracy = accuracy(network, test_loader)
    print(f"test accuracy {test_accuracy:.2%} on {len(test_y)} images after {epochs} epochs "
          f"({time.perf_counter() - start:.1f} s)")
    return test_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training images (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and shuffling")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1: the products are small)")
    parser.add_argument("--compile", action="store_true", help="capture the training step and replay it")
    options = parser.parse_args()
    main(epochs=options.epochs, seed=options.seed, threads=options.threads, compile=options.compile)
