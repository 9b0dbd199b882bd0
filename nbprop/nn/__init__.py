"""Neural-network building blocks under PyTorch's names (`nbprop.nn.functional` so far)."""

from nbprop.nn import functional

__all__ = ["functional"]
