"""The main job's models: an MLP, a small CNN (convolution, batch norm, ReLU, max pooling, a residual block) and
an LSTM classifier, for images (N, C, H, W) or signals (N, C, L)."""

import math

from nbprop import nn

__all__ = ["ResidualBlock", "SequenceClassifier", "cnn", "lstm", "mlp"]


def mlp(sample_shape, classes, hidden=128):
    """Flatten, then two hidden ReLU layers of `hidden` units and a linear output of `classes` scores."""
    features = math.prod(sample_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def _layers(dimensions):
    """The convolution, batch norm and max pooling classes of 1-D or 2-D data."""
    if dimensions == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d


class ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU: two 3-wide convolutions that keep the shape (He et al. 2016)."""

    def __init__(self, channels, dimensions=2):
        super().__init__()
        convolution, norm, _ = _layers(dimensions)
        self.conv1 = convolution(channels, channels, 3, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = convolution(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def cnn(sample_shape, classes, channels=32):
    """For samples (C, H, W) or (C, L): a 3-wide convolution to `channels`, batch norm, ReLU, 2-wide max pooling,
    a residual block, max pooling again, and a linear layer to `classes` scores. The spatial sizes must be at
    least 4 (each pooling halves them, rounding down)."""
    if len(sample_shape) not in (2, 3):
        raise ValueError(f"cnn: expects samples of shape (channels, height, width) or (channels, length), got "
                         f"{tuple(sample_shape)}")
    dimensions = len(sample_shape) - 1
    if min(sample_shape[1:]) < 4:
        raise ValueError(f"cnn: the spatial size {tuple(sample_shape[1:])} is below 4, too small for two poolings")
    convolution, norm, pool = _layers(dimensions)
    pooled = math.prod(size // 4 for size in sample_shape[1:])
    return nn.Sequential(
        convolution(sample_shape[0], channels, 3, padding=1, bias=False), norm(channels), nn.ReLU(), pool(2),
        ResidualBlock(channels, dimensions), pool(2),
        nn.Flatten(), nn.Linear(channels * pooled, classes))


class SequenceClassifier(nn.Module):
    """An LSTM reading an image row by row (N, C, H, W -> H steps of C * W values) or a signal step by step
    (N, C, L -> L steps of C values); a linear layer maps its last hidden state to class scores."""

    def __init__(self, step_features, classes, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(step_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        if x.ndim == 4:
            x = x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3])
        else:
            x = x.transpose(1, 2)
        _, (hidden, _) = self.lstm(x)
        return self.head(hidden[-1])


def lstm(sample_shape, classes, hidden=64):
    """A SequenceClassifier for samples (C, H, W) or (C, L)."""
    if len(sample_shape) not in (2, 3):
        raise ValueError(f"lstm: expects samples of shape (channels, height, width) or (channels, length), got "
                         f"{tuple(sample_shape)}")
    step_features = sample_shape[0] * (sample_shape[2] if len(sample_shape) == 3 else 1)
    return SequenceClassifier(step_features, classes, hidden)
