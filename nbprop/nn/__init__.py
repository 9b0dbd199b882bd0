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
from nbprop.nn.container import ModuleDict, ModuleList, Sequential
from nbprop.nn.dropout import Dropout
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
from nbprop.nn.regularization import l1_penalty, l2_penalty

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Bilinear", "CrossEntropyLoss", "Dropout", "ELU",
    "Embedding", "Flatten", "GELU", "GroupNorm", "Hardtanh", "HuberLoss", "Identity", "KLDivLoss", "L1Loss",
    "LayerNorm", "LeakyReLU", "Linear", "LogSigmoid", "LogSoftmax", "MSELoss", "Module", "ModuleDict", "ModuleList",
    "NLLLoss", "Parameter", "RMSNorm", "ReLU", "SELU", "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax",
    "Softplus",
    "Tanh", "functional", "init", "l1_penalty", "l2_penalty", "utils",
]
