"""torch.nn.functional's forms: activations, softmax family, linear layers, dropout, norms, losses, pad."""

from nbprop.data.preprocessing import one_hot
from nbprop.ops.activation import elu, gelu, hardtanh, leaky_relu, relu, selu, silu, softplus
from nbprop.ops.attention import scaled_dot_product_attention
from nbprop.ops.batch_norm import batch_norm
from nbprop.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from nbprop.ops.embedding import embedding
from nbprop.ops.feature_dropout import dropout2d
from nbprop.ops.interpolate import interpolate
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
from nbprop.ops.norm import group_norm, layer_norm, rms_norm
from nbprop.ops.padding import pad
from nbprop.ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from nbprop.ops.softmax import log_softmax, logsumexp, softmax
from nbprop.ops.unary import logsigmoid, sigmoid, tanh

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "avg_pool1d",
    "avg_pool2d", "batch_norm", "bilinear", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "conv1d", "conv2d",
    "conv_transpose1d", "conv_transpose2d", "cross_entropy",
    "dropout", "dropout2d", "elu", "embedding", "gelu", "group_norm", "hardtanh", "huber_loss",
    "interpolate", "kl_div", "l1_loss",
    "layer_norm", "leaky_relu", "linear", "log_softmax", "logsigmoid", "logsumexp", "max_pool1d", "max_pool2d",
    "mse_loss", "nll_loss", "one_hot", "pad",
    "relu", "rms_norm", "scaled_dot_product_attention",
    "selu", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh",
]
