"""Dropout and Dropout2d: zero elements or whole channels at random in training, identity in eval."""

import numbers

from nbprop.nn.module import Module
from nbprop.ops.feature_dropout import dropout2d
from nbprop.ops.linear import dropout


class Dropout(Module):
    """In training, zeroes each element with probability p and scales the others by 1 / (1 - p), so the
    expected output equals the input; in eval mode returns the input unchanged."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Module):
    """In training, zeroes each whole channel input[n, c] of (N, C, H, W) with probability p and scales the
    others by 1 / (1 - p); in eval mode returns the input unchanged (see nbprop.nn.functional.dropout2d)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return dropout2d(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
