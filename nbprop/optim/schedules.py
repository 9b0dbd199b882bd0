"""Learning-rate schedules as plain functions `step -> learning rate` (optax style), equal to PyTorch's schedulers.

Each factory checks its arguments once and returns a small closure over precomputed constants: calling it
costs a few arithmetic operations in Python (no arrays, no allocation). `step` is the number of optimizer
steps already taken, starting at 0 (an int; the warm-restart schedule also takes fractional steps). Where
PyTorch has a scheduler for the same curve the docstring names it, and the values equal the learning rates
that scheduler sets at epochs 0, 1, 2, ... (its closed form; PyTorch's own recursive updates agree with it to
rounding). A schedule can be any optimizer group's `lr=`, or the factor of `lr_scheduler.LambdaLR` when its
initial value is 1.
"""

import math
from bisect import bisect_right


def _check_nonnegative_int(value, name, schedule):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{schedule}: {name} must be a non-negative int, got {value!r}")


def _check_positive_int(value, name, schedule):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{schedule}: {name} must be a positive int, got {value!r}")


def constant_schedule(value):
    """`step -> value` for every step."""
    value = float(value)

    def schedule(step):
        return value

    return schedule


def linear_schedule(init_value, end_value, transition_steps, transition_begin=0):
    """`init_value` until `transition_begin`, then a straight line reaching `end_value` after `transition_steps`
    more steps, then `end_value`.

    PyTorch: `LinearLR(start_factor, end_factor, total_iters)` over a base rate `lr` is
    `linear_schedule(lr * start_factor, lr * end_factor, total_iters)`. With `transition_steps=0` the value
    is `init_value` before `transition_begin` and `end_value` from then on.
    """
    _check_nonnegative_int(transition_steps, "transition_steps", "linear_schedule")
    _check_nonnegative_int(transition_begin, "transition_begin", "linear_schedule")
    init_value, end_value = float(init_value), float(end_value)
    if transition_steps == 0:
        return lambda step: init_value if step < transition_begin else end_value
    change = end_value - init_value

    def schedule(step):
        progress = min(max(step - transition_begin, 0), transition_steps)
        return init_value + change * progress / transition_steps

    return schedule


def linear_warmup_schedule(init_value, peak_value, warmup_steps):
    """A linear ramp from `init_value` at step 0 to `peak_value` at `warmup_steps`, then `peak_value`.

    PyTorch: `LinearLR(start_factor=init_value / peak_value, end_factor=1.0, total_iters=warmup_steps)` over
    a base rate `peak_value`.
    """
    return linear_schedule(init_value, peak_value, warmup_steps)


def step_schedule(init_value, step_size, gamma=0.1):
    """`init_value * gamma ** (step // step_size)`: decay by `gamma` every `step_size` steps (PyTorch's StepLR)."""
    _check_positive_int(step_size, "step_size", "step_schedule")
    init_value, gamma = float(init_value), float(gamma)

    def schedule(step):
        return init_value * gamma ** (step // step_size)

    return schedule


def multistep_schedule(init_value, milestones, gamma=0.1):
    """`init_value * gamma ** (number of milestones <= step)` (PyTorch's MultiStepLR; a repeated milestone
    decays twice)."""
    milestones = sorted(milestones)
    for milestone in milestones:
        _check_nonnegative_int(milestone, "each milestone", "multistep_schedule")
    init_value, gamma = float(init_value), float(gamma)

    def schedule(step):
        return init_value * gamma ** bisect_right(milestones, step)

    return schedule


def exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0, staircase=False,
                      end_value=None):
    """`init_value * decay_rate ** ((step - transition_begin) / transition_steps)` after `transition_begin`
    (optax's exponential_decay), with the exponent floored if `staircase`, bounded by `end_value` if given.

    PyTorch: `ExponentialLR(gamma)` over a base rate `lr` is `exponential_decay(lr, 1, gamma)`.
    """
    _check_positive_int(transition_steps, "transition_steps", "exponential_decay")
    _check_nonnegative_int(transition_begin, "transition_begin", "exponential_decay")
    if decay_rate <= 0:
        raise ValueError(f"exponential_decay: decay_rate must be positive, got {decay_rate!r}")
    init_value, decay_rate = float(init_value), float(decay_rate)
    # A decaying schedule stops at end_value from above, a growing one from below.
    bound = None if end_value is None else (max if decay_rate < 1 else min)
    end_value = None if end_value is None else float(end_value)

    def schedule(step):
        exponent = max(step - transition_begin, 0) / transition_steps
        if staircase:
            exponent = math.floor(exponent)
        value = init_value * decay_rate ** exponent
        return value if bound is None else bound(value, end_value)

    return schedule


def polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0):
    """`(init_value - end_value) * (1 - t / transition_steps) ** power + end_value` with t the steps since
    `transition_begin`, clipped to [0, transition_steps] (optax's polynomial_schedule).

    PyTorch: `PolynomialLR(total_iters, power)` over a base rate `lr` is
    `polynomial_schedule(lr, 0.0, power, total_iters)`.
    """
    _check_positive_int(transition_steps, "transition_steps", "polynomial_schedule")
    _check_nonnegative_int(transition_begin, "transition_begin", "polynomial_schedule")
    init_value, end_value, power = float(init_value), float(end_value), float(power)
    height = init_value - end_value

    def schedule(step):
        progress = min(max(step - transition_begin, 0), transition_steps)
        return height * (1.0 - progress / transition_steps) ** power + end_value

    return schedule


def cosine_annealing_schedule(init_value, T_max, eta_min=0.0):  # noqa: N803 (PyTorch's argument name)
    """`eta_min + (init_value - eta_min) * (1 + cos(pi * step / T_max)) / 2` (PyTorch's CosineAnnealingLR).

    As in PyTorch the curve is not clipped: after `T_max` it rises again, with period `2 * T_max`. For a
    decay that stays at its end value use `cosine_decay_schedule`.
    """
    _check_positive_int(T_max, "T_max", "cosine_annealing_schedule")
    init_value, eta_min = float(init_value), float(eta_min)
    half_height = (init_value - eta_min) / 2
    angle_per_step = math.pi / T_max

    def schedule(step):
        return eta_min + half_height * (1 + math.cos(angle_per_step * step))

    return schedule


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    """A half cosine from `init_value` down to `alpha * init_value` over `decay_steps`, then constant (optax's
    cosine_decay_schedule): `init_value * ((1 - alpha) * c ** exponent + alpha)` with
    `c = (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2`.
    """
    _check_positive_int(decay_steps, "decay_steps", "cosine_decay_schedule")
    init_value, alpha, exponent = float(init_value), float(alpha), float(exponent)

    def schedule(step):
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
        return init_value * ((1 - alpha) * cosine ** exponent + alpha)

    return schedule


def cosine_warm_restarts_schedule(init_value, T_0, T_mult=1, eta_min=0.0):  # noqa: N803 (PyTorch's names)
    """Cosine annealing restarted every cycle, cycles `T_0, T_0 * T_mult, ...` steps long (SGDR; PyTorch's
    CosineAnnealingWarmRestarts). `step` may be fractional (epoch + batch / batches_per_epoch), as PyTorch's
    `scheduler.step(epoch)` allows.
    """
    _check_positive_int(T_0, "T_0", "cosine_warm_restarts_schedule")
    if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
        raise ValueError(f"cosine_warm_restarts_schedule: T_mult must be an int >= 1, got {T_mult!r}")
    init_value, eta_min = float(init_value), float(eta_min)
    half_height = (init_value - eta_min) / 2

    def schedule(step):
        if step < 0:
            raise ValueError(f"cosine_warm_restarts_schedule: expected a non-negative step, got {step!r}")
        # PyTorch's closed form for the position in the current cycle.
        if step < T_0:
            position, length = step, T_0
        elif T_mult == 1:
            position, length = step % T_0, T_0
        else:
            cycle = int(math.log(step / T_0 * (T_mult - 1) + 1, T_mult))
            position = step - T_0 * (T_mult ** cycle - 1) / (T_mult - 1)
            length = T_0 * T_mult ** cycle
        return eta_min + half_height * (1 + math.cos(math.pi * position / length))

    return schedule


def warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0):
    """A linear warmup from `init_value` to `peak_value` over `warmup_steps`, then a cosine decay to `end_value`
    reached at `decay_steps` (counted from step 0, warmup included), then `end_value` (optax's
    warmup_cosine_decay_schedule).

    PyTorch: `SequentialLR([LinearLR(init_value / peak_value, 1.0, warmup_steps), CosineAnnealingLR(
    decay_steps - warmup_steps, end_value)], milestones=[warmup_steps])` over a base rate `peak_value`, up to
    step `decay_steps`.
    """
    _check_nonnegative_int(warmup_steps, "warmup_steps", "warmup_cosine_decay_schedule")
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps <= warmup_steps:
        raise ValueError(f"warmup_cosine_decay_schedule: decay_steps must be an int greater than warmup_steps "
                         f"({warmup_steps}), got {decay_steps!r}")
    peak_value, end_value = float(peak_value), float(end_value)
    alpha = end_value / peak_value if peak_value != 0 else 0.0
    cosine = cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)
    if warmup_steps == 0:
        return cosine
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps), cosine], [warmup_steps])


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def cyclic_schedule(base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular", gamma=1.0,
                    scale_fn=None, scale_mode="cycle"):
    """A cyclical learning rate between `base_lr` and `max_lr` (PyTorch's CyclicLR, Smith 2017).

    Each cycle rises over `step_size_up` steps and falls over `step_size_down` (default: the same). The
    amplitude is scaled by `scale_fn(cycle)` (cycle counted from 1) or `scale_fn(step)` per `scale_mode`;
    the modes set it: 'triangular' 1, 'triangular2' halves each cycle, 'exp_range' `gamma ** step`.
    """
    if scale_fn is None:
        if mode == "triangular":
            scale_fn, scale_mode = (lambda x: 1.0), "cycle"
        elif mode == "triangular2":
            scale_fn, scale_mode = (lambda x: 1 / (2.0 ** (x - 1))), "cycle"
        elif mode == "exp_range":
            scale_fn, scale_mode = (lambda x: gamma ** x), "iterations"
        else:
            raise ValueError(f"cyclic_schedule: mode must be one of {_CYCLIC_MODES} when scale_fn is None, "
                             f"got {mode!r}")
    elif scale_mode not in ("cycle", "iterations"):
        raise ValueError(f"cyclic_schedule: scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
    step_size_up = float(step_size_up)
    step_size_down = step_size_up if step_size_down is None else float(step_size_down)
    if step_size_up < 0 or step_size_down < 0 or step_size_up + step_size_down <= 0:
        raise ValueError(f"cyclic_schedule: step sizes must be non-negative with a positive sum, got "
                         f"{step_size_up} up and {step_size_down} down")
    total_size = step_size_up + step_size_down
    step_ratio = step_size_up / total_size
    base_lr, height = float(base_lr), float(max_lr) - float(base_lr)
    by_cycle = scale_mode == "cycle"

    def schedule(step):
        cycle = math.floor(1 + step / total_size)
        position = 1.0 + step / total_size - cycle
        if position <= step_ratio:
            scale_factor = position / step_ratio
        else:
            scale_factor = (position - 1) / (step_ratio - 1)
        return base_lr + height * scale_factor * scale_fn(cycle if by_cycle else step)

    return schedule


def _annealing_cos(start, end, fraction):
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)


def _annealing_linear(start, end, fraction):
    return (end - start) * fraction + start


def _one_cycle(total_steps, pct_start, anneal_strategy, three_phase, phase_values, name):
    """A schedule through phase_values (start value of each phase, then the final value) in PyTorch's phases."""
    _check_positive_int(total_steps, "total_steps", name)
    if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
        raise ValueError(f"{name}: pct_start must be a float in [0, 1], got {pct_start!r}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    anneal = _annealing_cos if anneal_strategy == "cos" else _annealing_linear
    if three_phase:
        ends = [float(pct_start * total_steps) - 1, float(2 * pct_start * total_steps) - 2, total_steps - 1]
    else:
        ends = [float(pct_start * total_steps) - 1, total_steps - 1]
    starts = [0.0] + ends[:-1]
    phases = list(zip(starts, ends, phase_values[:-1], phase_values[1:], strict=True))
    last = len(phases) - 1

    def schedule(step):
        if step > total_steps:
            raise ValueError(f"{name}: step {step} is past total_steps={total_steps}")
        for index, (start_step, end_step, start_value, end_value) in enumerate(phases):
            if step <= end_step or index == last:
                return anneal(start_value, end_value, (step - start_step) / (end_step - start_step))
        raise AssertionError("unreachable: the last phase always matches")

    return schedule


def one_cycle_schedule(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", div_factor=25.0,
                       final_div_factor=1e4, three_phase=False):
    """The 1cycle policy (PyTorch's OneCycleLR learning rates): from `max_lr / div_factor` up to `max_lr` over
    `pct_start * total_steps` steps, then down to `max_lr / div_factor / final_div_factor` at step
    `total_steps - 1`, annealing by cosine ('cos') or straight lines ('linear'). With `three_phase` it comes
    back down to the initial rate symmetrically before the final annihilation phase. Steps past
    `total_steps` raise ValueError, as PyTorch does.
    """
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    values = [initial, max_lr, initial, minimum] if three_phase else [initial, max_lr, minimum]
    return _one_cycle(total_steps, pct_start, anneal_strategy, three_phase, values, "one_cycle_schedule")


def one_cycle_momentum_schedule(total_steps, pct_start=0.3, anneal_strategy="cos", base_momentum=0.85,
                                max_momentum=0.95, three_phase=False):
    """The momentum (or Adam's beta1) that OneCycleLR cycles opposite to the learning rate: from `max_momentum`
    down to `base_momentum` while the rate rises, back up while it falls."""
    values = [max_momentum, base_momentum, max_momentum, max_momentum] if three_phase \
        else [max_momentum, base_momentum, max_momentum]
    return _one_cycle(total_steps, pct_start, anneal_strategy, three_phase, values, "one_cycle_momentum_schedule")


def join_schedules(schedules, boundaries):
    """One schedule from several (optax's join_schedules): `schedules[0](step)` before `boundaries[0]`, then
    `schedules[i](step - boundaries[i - 1])` from `boundaries[i - 1]` on, each restarting its count at 0.

    PyTorch: `SequentialLR(schedulers, milestones=boundaries)`.
    """
    schedules, boundaries = list(schedules), list(boundaries)
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(f"join_schedules: needs one more schedule than boundaries, got {len(schedules)} "
                         f"schedules and {len(boundaries)} boundaries")
    if any(not callable(schedule) for schedule in schedules):
        raise TypeError("join_schedules: every schedule must be callable (step -> learning rate)")
    if boundaries != sorted(boundaries):
        raise ValueError(f"join_schedules: boundaries must be non-decreasing, got {boundaries}")
    offsets = [0, *boundaries]

    def schedule(step):
        index = bisect_right(boundaries, step)
        return schedules[index](step - offsets[index])

    return schedule
