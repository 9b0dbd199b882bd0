"""torch.nn.functional's forms of the ops nbprop has: activations, softmax family and pad."""

from nbprop.ops.elementwise import relu, sigmoid, tanh
from nbprop.ops.padding import pad
from nbprop.ops.softmax import log_softmax, logsumexp, softmax

__all__ = ["log_softmax", "logsumexp", "pad", "relu", "sigmoid", "softmax", "tanh"]
