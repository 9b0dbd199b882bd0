"""Optimizers under torch.optim's names, built on composable transforms; schedules and LR schedulers."""

from nbprop.optim import lr_scheduler, schedules, transforms
from nbprop.optim.adadelta import Adadelta
from nbprop.optim.adafactor import OptaxAdafactor
from nbprop.optim.adafactor_torch import Adafactor
from nbprop.optim.adagrad import Adagrad
from nbprop.optim.adam import Adam, AdamW
from nbprop.optim.adamax import Adamax
from nbprop.optim.asgd import ASGD
from nbprop.optim.from_transform import TransformOptimizer, from_transform
from nbprop.optim.lamb import LAMB
from nbprop.optim.lion import Lion
from nbprop.optim.nadam import NAdam
from nbprop.optim.optimizer import Optimizer
from nbprop.optim.radam import RAdam
from nbprop.optim.rmsprop import RMSprop
from nbprop.optim.rprop import Rprop
from nbprop.optim.schedules import (
    constant_schedule,
    cosine_annealing_schedule,
    cosine_decay_schedule,
    cosine_warm_restarts_schedule,
    cyclic_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    linear_warmup_schedule,
    multistep_schedule,
    one_cycle_momentum_schedule,
    one_cycle_schedule,
    polynomial_schedule,
    step_schedule,
    warmup_cosine_decay_schedule,
)
from nbprop.optim.sgd import SGD
from nbprop.optim.transforms import (
    Transform,
    adaptive_grad_clip,
    add_decayed_weights,
    apply_if_finite,
    chain,
    clip_by_global_norm,
    clip_by_value,
    multi_steps,
    scale,
    scale_by_adam,
    scale_by_rms,
    scale_by_schedule,
    trace,
    zero_nans,
)

__all__ = [
    "Adadelta", "Adafactor", "Adamax", "NAdam", "RAdam",
    "ASGD", "LAMB", "Lion", "OptaxAdafactor", "Rprop",
    "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "Transform", "TransformOptimizer",
    "adaptive_grad_clip", "add_decayed_weights", "apply_if_finite", "chain", "clip_by_global_norm",
    "clip_by_value", "constant_schedule", "cosine_annealing_schedule", "cosine_decay_schedule",
    "cosine_warm_restarts_schedule", "cyclic_schedule", "exponential_decay", "from_transform", "join_schedules",
    "linear_schedule", "linear_warmup_schedule", "lr_scheduler", "multi_steps", "multistep_schedule",
    "one_cycle_momentum_schedule", "one_cycle_schedule", "polynomial_schedule", "scale", "scale_by_adam",
    "scale_by_rms", "scale_by_schedule", "schedules", "step_schedule", "trace", "transforms",
    "warmup_cosine_decay_schedule", "zero_nans",
]
