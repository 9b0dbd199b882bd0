"""Schedules `step -> learning rate`: values equal PyTorch's schedulers' sequences, and optax's formulas."""

import math
import warnings

import numpy as np
import pytest

from nbprop.optim import schedules

STEPS = 300
LR = 0.1


def _torch_rates(make_scheduler, steps=STEPS, lr=LR, momentum=False):
    """The rates (or momenta) a torch scheduler sets at epochs 0..steps on a one-group SGD."""
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)
    m = torch.optim.lr_scheduler
    key = "momentum" if momentum else "lr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make_scheduler(m, optimizer)
        rates = [optimizer.param_groups[0][key]]
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
            rates.append(optimizer.param_groups[0][key])
    return np.array(rates, np.float64)


def _values(schedule, steps=STEPS):
    return np.array([schedule(step) for step in range(steps + 1)], np.float64)


PAIRS = {
    "constant": (schedules.constant_schedule(LR), lambda m, o: m.ConstantLR(o, 1.0)),
    "linear": (schedules.linear_schedule(LR * 0.2, LR * 0.9, 100), lambda m, o: m.LinearLR(o, 0.2, 0.9, 100)),
    "linear-down": (schedules.linear_schedule(LR, LR * 0.05, 77), lambda m, o: m.LinearLR(o, 1.0, 0.05, 77)),
    "linear_warmup": (schedules.linear_warmup_schedule(0.01, LR, 50), lambda m, o: m.LinearLR(o, 0.1, 1.0, 50)),
    "step": (schedules.step_schedule(LR, 7, 0.5), lambda m, o: m.StepLR(o, 7, 0.5)),
    "multistep": (schedules.multistep_schedule(LR, [120, 10, 50, 50], 0.3),
                  lambda m, o: m.MultiStepLR(o, [10, 50, 50, 120], 0.3)),
    "exponential": (schedules.exponential_decay(LR, 1, 0.98), lambda m, o: m.ExponentialLR(o, 0.98)),
    "polynomial": (schedules.polynomial_schedule(LR, 0.0, 2.0, 120), lambda m, o: m.PolynomialLR(o, 120, 2.0)),
    "polynomial-linear": (schedules.polynomial_schedule(LR, 0.0, 1.0, 300), lambda m, o: m.PolynomialLR(o, 300)),
    "cosine_annealing": (schedules.cosine_annealing_schedule(LR, 37, 0.001),
                         lambda m, o: m.CosineAnnealingLR(o, 37, 0.001)),
    "warm_restarts": (schedules.cosine_warm_restarts_schedule(LR, 10, 2, 0.01),
                      lambda m, o: m.CosineAnnealingWarmRestarts(o, 10, 2, 0.01)),
    "warm_restarts-mult1": (schedules.cosine_warm_restarts_schedule(LR, 13),
                            lambda m, o: m.CosineAnnealingWarmRestarts(o, 13)),
    "warmup_cosine": (schedules.warmup_cosine_decay_schedule(0.01, LR, 50, 300, 1e-4),
                      lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, 1.0, 50), m.CosineAnnealingLR(o, 250, 1e-4)],
                                                  [50])),
    "warmup_cosine-no-warmup": (schedules.warmup_cosine_decay_schedule(0.0, LR, 0, 300),
                                lambda m, o: m.CosineAnnealingLR(o, 300)),
    "cosine_decay": (schedules.cosine_decay_schedule(LR, 300, 0.01), lambda m, o: m.CosineAnnealingLR(o, 300, 0.001)),
    "cyclic-triangular": (schedules.cyclic_schedule(0.01, LR, 20, 13),
                          lambda m, o: m.CyclicLR(o, 0.01, LR, 20, 13, cycle_momentum=False)),
    "cyclic-triangular2": (schedules.cyclic_schedule(0.01, LR, 25, mode="triangular2"),
                           lambda m, o: m.CyclicLR(o, 0.01, LR, 25, mode="triangular2", cycle_momentum=False)),
    "cyclic-exp_range": (schedules.cyclic_schedule(0.01, LR, 15, mode="exp_range", gamma=0.99),
                         lambda m, o: m.CyclicLR(o, 0.01, LR, 15, mode="exp_range", gamma=0.99,
                                                 cycle_momentum=False)),
    "cyclic-scale_fn": (schedules.cyclic_schedule(0.01, LR, 9, 30, scale_fn=lambda cycle: 1 / cycle),
                        lambda m, o: m.CyclicLR(o, 0.01, LR, 9, 30, scale_fn=lambda cycle: 1 / cycle,
                                                cycle_momentum=False)),
    "one_cycle-cos": (schedules.one_cycle_schedule(0.5, STEPS), lambda m, o: m.OneCycleLR(o, 0.5, STEPS)),
    "one_cycle-linear": (schedules.one_cycle_schedule(0.3, STEPS, 0.25, "linear", 10.0, 100.0),
                         lambda m, o: m.OneCycleLR(o, 0.3, STEPS, pct_start=0.25, anneal_strategy="linear",
                                                   div_factor=10.0, final_div_factor=100.0)),
    "one_cycle-three_phase": (schedules.one_cycle_schedule(0.4, STEPS + 20, three_phase=True),
                              lambda m, o: m.OneCycleLR(o, 0.4, STEPS + 20, three_phase=True)),
    "join": (schedules.join_schedules([schedules.exponential_decay(LR, 1, 0.9), schedules.step_schedule(LR, 10, 0.5),
                                       schedules.linear_schedule(LR, 0.0, 100)], [30, 150]),
             lambda m, o: m.SequentialLR(
                 o, [m.ExponentialLR(o, 0.9), m.StepLR(o, 10, 0.5), m.LinearLR(o, 1.0, 0.0, 100)], [30, 150])),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_schedule_equals_torch_scheduler(name):
    schedule, make_scheduler = PAIRS[name]
    np.testing.assert_allclose(_values(schedule), _torch_rates(make_scheduler), rtol=1e-12, atol=1e-17)


@pytest.mark.torch
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
def test_one_cycle_momentum_equals_torch(three_phase, anneal_strategy):
    schedule = schedules.one_cycle_momentum_schedule(STEPS, 0.3, anneal_strategy, 0.8, 0.93, three_phase)
    expected = _torch_rates(lambda m, o: m.OneCycleLR(o, 0.5, STEPS, anneal_strategy=anneal_strategy,
                                                      base_momentum=0.8, max_momentum=0.93, three_phase=three_phase),
                            momentum=True)
    np.testing.assert_allclose(_values(schedule), expected, rtol=1e-12, atol=0)


@pytest.mark.torch
@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_fractional_steps_equal_torch(t_mult):
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, 7, t_mult, 1e-3)
    schedule = schedules.cosine_warm_restarts_schedule(LR, 7, t_mult, 1e-3)
    for step in np.arange(0, 60, 0.3):
        scheduler.step(float(step))
        assert math.isclose(schedule(float(step)), optimizer.param_groups[0]["lr"], rel_tol=1e-12)


def test_formulas_beyond_pytorch():
    decay = schedules.exponential_decay(1.0, 10, 0.5, transition_begin=5, staircase=True, end_value=0.2)
    assert [decay(step) for step in (0, 5, 14, 15, 25, 35, 1000)] == [1.0, 1.0, 1.0, 0.5, 0.25, 0.2, 0.2]
    growth = schedules.exponential_decay(1.0, 1, 2.0, end_value=5.0)
    assert [growth(step) for step in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    linear = schedules.linear_schedule(1.0, 3.0, 4, transition_begin=2)
    assert [linear(step) for step in range(8)] == [1.0, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
    jump = schedules.linear_schedule(1.0, 3.0, 0, transition_begin=2)
    assert [jump(step) for step in range(4)] == [1.0, 1.0, 3.0, 3.0]
    cosine = schedules.cosine_decay_schedule(2.0, 10, alpha=0.1, exponent=2.0)
    expected = [2.0 * (0.9 * (0.5 * (1 + math.cos(math.pi * min(step, 10) / 10))) ** 2 + 0.1) for step in range(15)]
    np.testing.assert_allclose([cosine(step) for step in range(15)], expected, rtol=1e-15)
    polynomial = schedules.polynomial_schedule(1.0, 0.5, 3.0, 10, transition_begin=5)
    assert polynomial(0) == 1.0 and polynomial(100) == 0.5
    assert math.isclose(polynomial(10), 0.5 * 0.5 ** 3 + 0.5)
    assert schedules.cosine_annealing_schedule(1.0, 10)(20) == pytest.approx(1.0)  # PyTorch's curve rises again
    assert schedules.warmup_cosine_decay_schedule(0.0, 1.0, 10, 20, 0.1)(1000) == pytest.approx(0.1)


def test_returns_python_floats():
    for schedule, _ in PAIRS.values():
        assert type(schedule(3)) is float


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        schedules.step_schedule(0.1, 0)
    with pytest.raises(ValueError, match="transition_steps"):
        schedules.linear_schedule(0.1, 0.0, -3)
    with pytest.raises(ValueError, match="decay_rate must be positive"):
        schedules.exponential_decay(0.1, 1, 0.0)
    with pytest.raises(ValueError, match="T_mult"):
        schedules.cosine_warm_restarts_schedule(0.1, 10, 0)
    with pytest.raises(ValueError, match="non-negative step"):
        schedules.cosine_warm_restarts_schedule(0.1, 10)(-1)
    with pytest.raises(ValueError, match="decay_steps must be an int greater"):
        schedules.warmup_cosine_decay_schedule(0.0, 0.1, 10, 10)
    with pytest.raises(ValueError, match="mode must be one of"):
        schedules.cyclic_schedule(0.01, 0.1, mode="saw")
    with pytest.raises(ValueError, match="pct_start"):
        schedules.one_cycle_schedule(0.1, 100, pct_start=2.0)
    with pytest.raises(ValueError, match="anneal_strategy"):
        schedules.one_cycle_schedule(0.1, 100, anneal_strategy="step")
    with pytest.raises(ValueError, match="past total_steps"):
        schedules.one_cycle_schedule(0.1, 100)(101)
    with pytest.raises(ValueError, match="one more schedule"):
        schedules.join_schedules([schedules.constant_schedule(1.0)], [3])
    with pytest.raises(ValueError, match="non-decreasing"):
        schedules.join_schedules([schedules.constant_schedule(1.0)] * 3, [5, 3])
    with pytest.raises(TypeError, match="callable"):
        schedules.join_schedules([1.0, schedules.constant_schedule(1.0)], [3])
