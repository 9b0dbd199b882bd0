"""Neural-network building blocks with torch.nn's names, signatures, defaults and state-dict keys."""

from nbprop.nn import functional, init, utils
from nbprop.nn.activation import (
    ELU,
    GELU,
    SELU,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from nbprop.nn.attention import LearnedPositionalEncoding, MultiheadAttention, SinusoidalPositionalEncoding
from nbprop.nn.container import ModuleDict, ModuleList, Sequential
from nbprop.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from nbprop.nn.dropout import Dropout, Dropout2d
from nbprop.nn.embedding import Embedding
from nbprop.nn.linear import Bilinear, Flatten, Identity, Linear
from nbprop.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from nbprop.nn.module import Module
from nbprop.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from nbprop.nn.parameter import Parameter
from nbprop.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
    Upsample,
)
from nbprop.nn.regularization import l1_penalty, l2_penalty
from nbprop.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from nbprop.nn.transformer import (
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d", "AvgPool2d",
    "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Bilinear", "Conv1d", "Conv2d", "ConvTranspose1d",
    "ConvTranspose2d", "CrossEntropyLoss", "Dropout",
    "Dropout2d", "ELU",
    "Embedding", "Flatten", "GELU", "GRU", "GRUCell", "GroupNorm",
    "Hardtanh", "HuberLoss", "Identity", "KLDivLoss", "L1Loss",
    "LSTM", "LSTMCell",
    "LayerNorm", "LearnedPositionalEncoding",
    "LeakyReLU", "Linear", "LogSigmoid", "LogSoftmax", "MSELoss", "MaxPool1d", "MaxPool2d",
    "Module", "ModuleDict", "ModuleList", "MultiheadAttention",
    "NLLLoss", "Parameter", "RMSNorm", "RNN", "RNNCell",
    "ReLU", "SELU", "Sequential", "SiLU", "Sigmoid", "SinusoidalPositionalEncoding", "SmoothL1Loss",
    "Softmax",
    "Softplus",
    "Tanh", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer",
    "Upsample", "functional", "init", "l1_penalty", "l2_penalty", "utils",
]
