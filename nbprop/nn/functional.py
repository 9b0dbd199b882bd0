"""torch.nn.functional's forms: activations, softmax family, linear layers, dropout, norms, losses, pad."""

from nbprop.ops.activation import elu, gelu, hardtanh, leaky_relu, relu, selu, silu, softplus
from nbprop.ops.embedding import embedding
from nbprop.ops.linear import bilinear, dropout, linear
from nbprop.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from nbprop.ops.norm import batch_norm, group_norm, layer_norm, rms_norm
from nbprop.ops.padding import pad
from nbprop.ops.softmax import log_softmax, logsumexp, softmax
from nbprop.ops.unary import logsigmoid, sigmoid, tanh

__all__ = [
    "batch_norm", "bilinear", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
    "dropout", "elu", "embedding", "gelu", "group_norm", "hardtanh", "huber_loss", "kl_div", "l1_loss",
    "layer_norm", "leaky_relu", "linear", "log_softmax", "logsigmoid", "logsumexp", "mse_loss", "nll_loss", "pad",
    "relu", "rms_norm", "selu", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh",
]
