"""LRScheduler, PyTorch's base of learning-rate schedulers, with LambdaLR and MultiplicativeLR.

A scheduler drives any object with `param_groups` (a list of dicts with an 'lr'): nbprop's optimizers,
or a stand-in. As in PyTorch it records each group's starting rate as 'initial_lr' (kept if already there),
sets the rates of epoch 0 on construction, and `step()` moves to the next epoch; `get_last_lr()` gives the
rates last set. Most schedulers are chainable: each step multiplies the group's current 'lr', so two of them
on one optimizer compose. `state_dict()` holds every attribute but the optimizer (PyTorch's layout, so the
state dicts of the two libraries carry the same keys).
"""

import types
import warnings

from nbprop.capture.state import host_step


def _check_optimizer(optimizer, name):
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        raise TypeError(f"{name}: expects an optimizer with a `param_groups` list of dicts, got "
                        f"{type(optimizer).__name__}")
    for index, group in enumerate(groups):
        if "lr" not in group:
            raise KeyError(f"{name}: param_groups[{index}] has no 'lr'")
        if callable(group["lr"]):
            raise TypeError(f"{name}: param_groups[{index}]['lr'] is a schedule (a callable); a scheduler sets "
                            "float learning rates, so give the group a float lr or drop the scheduler")


def _format_param(name, optimizer, value):
    """One value per param group: a list/tuple of that length, or one value repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(value)} values, param_groups has {len(optimizer.param_groups)}.")
        return list(value)
    return [value] * len(optimizer.param_groups)


def _group_values(optimizer, key):
    return [group[key] for group in optimizer.param_groups]


def _supports_momentum(optimizer):
    """Whether the optimizer has a 'betas' (True) or 'momentum' (False) hyperparameter; None if neither."""
    defaults = getattr(optimizer, "defaults", None)
    keys = defaults if isinstance(defaults, dict) else (optimizer.param_groups[0] if optimizer.param_groups else {})
    if "betas" in keys:
        return True
    return False if "momentum" in keys else None


def _set_momentum(group, momentum, use_beta1):
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class LRScheduler:
    """Base class: subclasses give `get_lr()`, the rates at `self.last_epoch` (chainable: from the groups'
    current rates), and may give `_get_closed_form_lr()`, used when `step(epoch)` jumps to an epoch.

    `last_epoch=-1` starts fresh; a larger value resumes, and then every group must already hold 'initial_lr'.
    """

    _get_lr_called_within_step = False
    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{index}] when resuming "
                                   "scheduler with last_epoch >= 0; load the optimizer's state first")
        self.base_lrs = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Set the rates of the first epoch."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self):
        """Every attribute but the optimizer."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore the attributes from `state_dict()` (the optimizer's own state is loaded separately)."""
        self.__dict__.update(state_dict)

    def get_last_lr(self):
        """The learning rates, one per param group, that the last step set."""
        return self._last_lr

    def get_lr(self):
        """The rates at `self.last_epoch`; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr()")

    def __init_subclass__(cls, **keywords):
        # A captured step (nbprop.compile) reruns schedulers in Python: the rates they set change every step.
        super().__init_subclass__(**keywords)
        if "step" in cls.__dict__:
            cls.step = host_step(cls.__dict__["step"])

    @host_step
    def step(self, epoch=None):
        """Advance one epoch (or, deprecated as in PyTorch, jump to `epoch`) and set the groups' rates."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn("The epoch parameter in `scheduler.step()` is deprecated, as in PyTorch; where "
                          "available the closed form is used instead of the chainable form.", UserWarning,
                          stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = _group_values(self.optimizer, "lr")

    def _warn_if_outside_step(self):
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=3)


def _lambdas(optimizer, lr_lambda, name):
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != len(optimizer.param_groups):
            raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
        lambdas = list(lr_lambda)
    else:
        lambdas = [lr_lambda] * len(optimizer.param_groups)
    for function in lambdas:
        if not callable(function):
            raise TypeError(f"{name}: lr_lambda should be a function, but got {type(function).__name__}")
    return lambdas


class _LambdaState:
    """state_dict for schedulers holding functions: plain functions are dropped, callable objects keep their
    attributes (PyTorch's rule)."""

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(function, types.FunctionType) else function.__dict__.copy()
                               for function in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        lambdas = state_dict.pop("lr_lambdas")
        self.__dict__.update(state_dict)
        for function, attributes in zip(self.lr_lambdas, lambdas, strict=True):
            if attributes is not None:
                function.__dict__.update(attributes)


class LambdaLR(_LambdaState, LRScheduler):
    """lr = initial_lr * lr_lambda(epoch), one function or one per param group. Any schedule of
    `nbprop.optim.schedules` with initial value 1 is such a factor."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer, "LambdaLR")
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda, "LambdaLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_if_outside_step()
        return [base_lr * function(self.last_epoch)
                for function, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaState, LRScheduler):
    """Each step multiplies the rate by lr_lambda(epoch) (the first epoch keeps it)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer, "MultiplicativeLR")
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda, "MultiplicativeLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_if_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * function(self.last_epoch)
                for function, group in zip(self.lr_lambdas, self.optimizer.param_groups, strict=True)]
