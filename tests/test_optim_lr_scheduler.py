"""lr_scheduler: every scheduler's rates (and cycled momenta) over 300 steps equal torch.optim.lr_scheduler's."""

import copy
import math
import warnings

import numpy as np
import pytest

from nbprop.optim import lr_scheduler

STEPS = 300


class StandIn:
    """A minimal optimizer: what schedulers need (param_groups, defaults) and nothing else."""

    def __init__(self, groups, defaults):
        self.param_groups = [dict(group) for group in groups]
        self.defaults = dict(defaults)


SGD_GROUPS = [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.8}]
ADAM_GROUPS = [{"lr": 0.01, "betas": (0.9, 0.999)}, {"lr": 0.002, "betas": (0.8, 0.99)}]


def _metric(step):
    # Plateaus of 15 steps with small wiggles, then a rise: exercises patience, cooldown and thresholds.
    return 1.0 / (1 + step // 15) + 1e-5 * ((step * 7) % 5) + (0.5 if step > 250 else 0.0)


CASES = {
    "StepLR": lambda m, o: m.StepLR(o, 7, 0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, [10, 50, 50, 120], 0.3),
    "ConstantLR": lambda m, o: m.ConstantLR(o, 0.25, 40),
    "LinearLR": lambda m, o: m.LinearLR(o, 0.1, 0.9, 100),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, 0.98),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, 120, 2.0),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, 37, 0.001),
    "CosineAnnealingLR-zero-min": lambda m, o: m.CosineAnnealingLR(o, 100),
    "WarmRestarts-mult2": lambda m, o: m.CosineAnnealingWarmRestarts(o, 10, 2, 0.01),
    "WarmRestarts-mult1": lambda m, o: m.CosineAnnealingWarmRestarts(o, 13),
    "CyclicLR-triangular": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=20, step_size_down=13),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, [0.01, 0.001], [0.1, 0.05], 25, mode="triangular2"),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 15, mode="exp_range", gamma=0.99,
                                                   base_momentum=0.7, max_momentum=[0.95, 0.9]),
    "CyclicLR-scale_fn": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 17, scale_fn=lambda x: 0.5 + 0.5 * math.cos(x / 40),
                                                  scale_mode="iterations", cycle_momentum=False),
    "OneCycleLR-cos": lambda m, o: m.OneCycleLR(o, [0.5, 0.2], total_steps=STEPS),
    "OneCycleLR-linear": lambda m, o: m.OneCycleLR(o, 0.3, epochs=30, steps_per_epoch=10, pct_start=0.25,
                                                   anneal_strategy="linear", div_factor=10.0),
    "OneCycleLR-three-phase": lambda m, o: m.OneCycleLR(o, 0.4, total_steps=STEPS + 20, three_phase=True,
                                                        base_momentum=0.8, max_momentum=0.92),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(o, 0.4, total_steps=STEPS, cycle_momentum=False),
    "LambdaLR": lambda m, o: m.LambdaLR(o, [lambda e: 0.97 ** e, lambda e: 1 / (1 + e)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.99 if e % 3 else 1.01),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, 1.0, 50), m.CosineAnnealingLR(o, 250, 1e-4)],
                                                [50]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, 0.5, 20), m.ExponentialLR(o, 0.97), m.StepLR(o, 30, 0.5)], [40, 120]),
    "chained-by-hand": lambda m, o: [m.ExponentialLR(o, 0.99), m.StepLR(o, 25, 0.5), m.LinearLR(o, 0.5, 1.0, 60)],
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.CosineAnnealingLR(o, 60), m.MultiStepLR(o, [30, 90])]),
    "ReduceLROnPlateau": lambda m, o: m.ReduceLROnPlateau(o, patience=3, factor=0.5),
    "ReduceLROnPlateau-max-abs": lambda m, o: m.ReduceLROnPlateau(o, "max", 0.3, 2, 1e-3, "abs", cooldown=4,
                                                                  min_lr=[1e-3, 1e-4]),
    "ReduceLROnPlateau-rel-cooldown": lambda m, o: m.ReduceLROnPlateau(o, threshold=0.05, patience=1, cooldown=2,
                                                                       min_lr=0.004, eps=1e-3),
}
ADAM_CASES = {"CyclicLR-triangular", "CyclicLR-exp_range", "OneCycleLR-cos", "OneCycleLR-three-phase"}


def _as_list(schedulers):
    return schedulers if isinstance(schedulers, list) else [schedulers]


def _record(optimizer):
    row = []
    for group in optimizer.param_groups:
        row.append(float(group["lr"]))
        if "betas" in group:
            row.append(float(group["betas"][0]))
        if "momentum" in group:
            row.append(float(group["momentum"]))
    return row


def _step(schedulers, epoch):
    for scheduler in schedulers:
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau) or type(scheduler).__name__ == "ReduceLROnPlateau":
            scheduler.step(_metric(epoch))
        else:
            scheduler.step()


def _torch_sequence(name, groups_kind):
    import torch

    groups = ADAM_GROUPS if groups_kind == "adam" else SGD_GROUPS
    parameter_groups = [dict(group, params=[torch.nn.Parameter(torch.zeros(1))]) for group in groups]
    optimizer = torch.optim.Adam(parameter_groups) if groups_kind == "adam" else \
        torch.optim.SGD(parameter_groups, lr=0.1, momentum=0.9)
    schedulers = _as_list(CASES[name](torch.optim.lr_scheduler, optimizer))
    rows, last = [_record(optimizer)], []
    for epoch in range(STEPS):
        optimizer.step()
        _step(schedulers, epoch)
        rows.append(_record(optimizer))
        last.append([float(value) for value in schedulers[-1].get_last_lr()])
    return np.array(rows), np.array(last)


def _stand_in(groups_kind):
    if groups_kind == "adam":
        return StandIn(ADAM_GROUPS, {"lr": 0.001, "betas": (0.9, 0.999)})
    return StandIn(SGD_GROUPS, {"lr": 0.1, "momentum": 0.9})


def _our_sequence(name, groups_kind, resume_at=None):
    optimizer = _stand_in(groups_kind)
    schedulers = _as_list(CASES[name](lr_scheduler, optimizer))
    rows, last = [_record(optimizer)], []
    for epoch in range(STEPS):
        if epoch == resume_at:
            # Save as a checkpoint would (deep copies), rebuild everything fresh, and load.
            saved_groups = copy.deepcopy(optimizer.param_groups)
            saved_states = copy.deepcopy([scheduler.state_dict() for scheduler in schedulers])
            optimizer = _stand_in(groups_kind)
            schedulers = _as_list(CASES[name](lr_scheduler, optimizer))
            for group, saved in zip(optimizer.param_groups, saved_groups, strict=True):
                group.clear()
                group.update(saved)
            for scheduler, state in zip(schedulers, saved_states, strict=True):
                scheduler.load_state_dict(state)
        _step(schedulers, epoch)
        rows.append(_record(optimizer))
        last.append(list(schedulers[-1].get_last_lr()))
    return np.array(rows), np.array(last)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("resume_at", [None, 137])
def test_sequence_equals_torch(name, resume_at):
    kinds = ["sgd", "adam"] if name in ADAM_CASES else ["sgd"]
    for kind in kinds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected_rows, expected_last = _torch_sequence(name, kind)
        rows, last = _our_sequence(name, kind, resume_at)
        assert rows.shape == expected_rows.shape
        np.testing.assert_allclose(rows, expected_rows, rtol=1e-12, atol=0)
        np.testing.assert_allclose(last, expected_last, rtol=1e-12, atol=0)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                                  "CosineAnnealingLR", "LambdaLR"])
def test_step_with_epoch_uses_closed_form_like_torch(name):
    import torch

    epochs = [3, 17, 5, 60, 61, 130, 200, 0, 299]
    parameter_groups = [dict(group, params=[torch.nn.Parameter(torch.zeros(1))]) for group in SGD_GROUPS]
    torch_optimizer = torch.optim.SGD(parameter_groups, lr=0.1)
    optimizer = _stand_in("sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_scheduler = CASES[name](torch.optim.lr_scheduler, torch_optimizer)
        scheduler = CASES[name](lr_scheduler, optimizer)
        for epoch in epochs:
            torch_optimizer.step()
            torch_scheduler.step(epoch)
            scheduler.step(epoch)
            np.testing.assert_allclose(scheduler.get_last_lr(), torch_scheduler.get_last_lr(), rtol=1e-12, atol=0)
    with pytest.warns(UserWarning, match="deprecated"):
        scheduler.step(4)


@pytest.mark.torch
@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_fractional_epochs_equal_torch(t_mult):
    import torch

    torch_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    torch_scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(torch_optimizer, 7, t_mult, 1e-3)
    optimizer = StandIn([{"lr": 0.1}], {"lr": 0.1})
    scheduler = lr_scheduler.CosineAnnealingWarmRestarts(optimizer, 7, t_mult, 1e-3)
    batches = 6
    for epoch in range(40):
        for batch in range(batches):
            torch_optimizer.step()
            torch_scheduler.step(epoch + batch / batches)
            scheduler.step(epoch + batch / batches)
            np.testing.assert_allclose(optimizer.param_groups[0]["lr"], torch_optimizer.param_groups[0]["lr"],
                                       rtol=1e-12, atol=0)
    assert scheduler.last_epoch == torch_scheduler.last_epoch
    with pytest.raises(ValueError, match="non-negative epoch"):
        scheduler.step(-1)


def test_initial_lr_convention_and_state_dict_keys():
    optimizer = StandIn([{"lr": 0.1}, {"lr": 0.2, "initial_lr": 0.3}], {"lr": 0.1})
    scheduler = lr_scheduler.StepLR(optimizer, 2, 0.5)
    assert [group["initial_lr"] for group in optimizer.param_groups] == [0.1, 0.3]
    assert scheduler.base_lrs == [0.1, 0.3]
    state = scheduler.state_dict()
    assert "optimizer" not in state
    assert {"last_epoch", "base_lrs", "_step_count", "_last_lr", "step_size", "gamma"} <= set(state)
    fresh = StandIn([{"lr": 0.1}], {"lr": 0.1})
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(fresh, 2, last_epoch=5)


def test_bad_inputs_raise_clear_errors():
    optimizer = _stand_in("sgd")
    with pytest.raises(TypeError, match="param_groups"):
        lr_scheduler.StepLR(object(), 3)
    with pytest.raises(TypeError, match="schedule"):
        lr_scheduler.ExponentialLR(StandIn([{"lr": lambda step: 0.1}], {}), 0.9)
    with pytest.raises(ValueError, match="step_size"):
        lr_scheduler.StepLR(optimizer, 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        lr_scheduler.ConstantLR(optimizer, 1.5)
    with pytest.raises(ValueError, match="T_0"):
        lr_scheduler.CosineAnnealingWarmRestarts(optimizer, 0)
    with pytest.raises(ValueError, match="mode is invalid"):
        lr_scheduler.CyclicLR(optimizer, 0.01, 0.1, mode="sawtooth")
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.CyclicLR(StandIn([{"lr": 0.1}], {"lr": 0.1}), 0.01, 0.1)
    with pytest.raises(ValueError, match="same length"):
        lr_scheduler.OneCycleLR(optimizer, [0.1, 0.2, 0.3], total_steps=10)
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(optimizer, 0.1)
    with pytest.raises(ValueError, match="Factor should be"):
        lr_scheduler.ReduceLROnPlateau(optimizer, factor=1.5)
    with pytest.raises(ValueError, match="unknown"):
        lr_scheduler.ReduceLROnPlateau(optimizer, mode="best")
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        lr_scheduler.LambdaLR(optimizer, [lambda e: 1.0])
    plateau = lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(optimizer, [lr_scheduler.StepLR(optimizer, 2), plateau], [3])
    with pytest.raises(ValueError, match="one more"):
        lr_scheduler.SequentialLR(optimizer, [lr_scheduler.StepLR(optimizer, 2)], [3])
    other = _stand_in("sgd")
    with pytest.raises(ValueError, match="same optimizer"):
        lr_scheduler.SequentialLR(optimizer, [lr_scheduler.StepLR(other, 2), lr_scheduler.StepLR(optimizer, 2)], [3])
    one_cycle = lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=3)
    for _ in range(3):
        one_cycle.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        one_cycle.step()


def test_get_lr_outside_step_warns():
    scheduler = lr_scheduler.ExponentialLR(_stand_in("sgd"), 0.9)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()


def test_schedule_as_lambda_factor():
    from nbprop.optim.schedules import linear_warmup_schedule

    optimizer = _stand_in("sgd")
    scheduler = lr_scheduler.LambdaLR(optimizer, linear_warmup_schedule(0.1, 1.0, 10))
    rates = [scheduler.get_last_lr()[0]]
    for _ in range(12):
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    np.testing.assert_allclose(rates, [0.1 * (0.1 + 0.09 * min(step, 10)) for step in range(13)], rtol=1e-12)
