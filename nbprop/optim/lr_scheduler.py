"""Learning-rate schedulers with torch.optim.lr_scheduler's names, arguments, semantics and state dicts.

They drive any object with `param_groups` (nbprop's optimizers or a stand-in): read and write each group's
'lr', keep its starting value as 'initial_lr', and step once per epoch (CyclicLR and OneCycleLR: per batch).
For the same curves as plain functions `step -> learning rate`, see `nbprop.optim.schedules`.
"""

from nbprop.optim.scheduler_base import LambdaLR, LRScheduler, MultiplicativeLR
from nbprop.optim.scheduler_combine import ChainedScheduler, ReduceLROnPlateau, SequentialLR
from nbprop.optim.scheduler_cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from nbprop.optim.scheduler_decay import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)

__all__ = [
    "ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR",
    "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR", "MultiplicativeLR", "OneCycleLR",
    "PolynomialLR", "ReduceLROnPlateau", "SequentialLR", "StepLR",
]
