"""Feature scaling in scikit-learn's names (StandardScaler, MinMaxScaler: fit on the training split, then
transform any split) and one_hot with PyTorch's semantics.

The scalers take tensors of shape (samples, ...) and keep one statistic per feature (the shape after dimension
0), computed in float64 as scikit-learn does; transform returns the input's dtype on its device. Their state
goes into a checkpoint through state_dict() (tensors and numbers, scikit-learn's attribute names).
"""

import numbers

import numpy as np

from nbprop import dtypes
from nbprop.creation import ones, zeros
from nbprop.creation import tensor as make_tensor
from nbprop.grad_mode import no_grad
from nbprop.tensor import Tensor

__all__ = ["MinMaxScaler", "NotFittedError", "StandardScaler", "one_hot"]

# scikit-learn's _handle_zeros_in_scale: a spread below this (a constant feature) scales by 1, not by ~0.
_TINY_SCALE = 10 * np.finfo(np.float64).eps


class NotFittedError(ValueError, AttributeError):
    """transform or inverse_transform before fit (scikit-learn's class of the same name and bases)."""


def _checked_input(data, op):
    if not isinstance(data, Tensor):
        raise TypeError(f"{op}: expects a Tensor of shape (samples, features...), got {type(data).__name__}")
    if data.ndim == 0:
        raise ValueError(f"{op}: expects a Tensor of shape (samples, features...), got a 0-d tensor")
    if data.dtype.kind != "f":
        raise TypeError(f"{op}: expects a floating tensor, got {data.dtype} (convert with .float())")
    return data


def _nonzero_scale(scale):
    """The spread with constant features' (below _TINY_SCALE) set to 1, so that they pass through unscaled."""
    return scale.masked_fill(scale < _TINY_SCALE, 1.0)


class _Scaler:
    _statistics = ()  # the names of the fitted tensors, in state_dict order

    def _check_fitted(self, op):
        if getattr(self, "n_samples_seen_", None) is None:
            raise NotFittedError(f"{op}: this {type(self).__name__} instance is not fitted yet; call fit with the "
                                 f"training data first")

    def _check_features(self, data, op):
        if tuple(data.shape[1:]) != tuple(self.n_features_shape_):
            raise ValueError(f"{op}: X has features of shape {tuple(data.shape[1:])}, but {type(self).__name__} was "
                             f"fitted on features of shape {tuple(self.n_features_shape_)}")

    def _fit_input(self, data, op):
        data = _checked_input(data, op)
        if data.shape[0] == 0:
            raise ValueError(f"{op}: found an array with 0 samples (shape {tuple(data.shape)}), while a minimum "
                             f"of 1 is required")
        self.n_features_shape_ = tuple(data.shape[1:])
        self.n_samples_seen_ = data.shape[0]
        return data.detach().to(dtypes.float64)

    def _statistic(self, name, like):
        """A fitted float64 statistic in like's dtype and on its device."""
        return getattr(self, name).to(device=like.device).to(like.dtype)

    def fit_transform(self, data):
        """fit(data), then transform(data)."""
        return self.fit(data).transform(data)

    def state_dict(self):
        """The fitted statistics (float64 tensors) and settings, for nbprop.save; load_state_dict restores them."""
        self._check_fitted(f"{type(self).__name__}.state_dict")
        state = {name: getattr(self, name) for name in self._statistics}
        state.update(n_samples_seen_=self.n_samples_seen_, n_features_shape_=list(self.n_features_shape_))
        state.update(self._settings())
        return state

    def load_state_dict(self, state_dict):
        expected = set(self._statistics) | {"n_samples_seen_", "n_features_shape_"} | set(self._settings())
        if set(state_dict) != expected:
            raise KeyError(f"{type(self).__name__}.load_state_dict: expected the keys {sorted(expected)}, got "
                           f"{sorted(state_dict)}")
        for name in self._statistics:
            value = state_dict[name]
            value = value.detach().to(dtypes.float64) if isinstance(value, Tensor) else make_tensor(
                value, dtype=dtypes.float64)
            setattr(self, name, value)
        self.n_samples_seen_ = int(state_dict["n_samples_seen_"])
        self.n_features_shape_ = tuple(int(size) for size in state_dict["n_features_shape_"])
        self._load_settings(state_dict)
        return self


class StandardScaler(_Scaler):
    """x -> (x - mean_) / scale_ per feature, mean_ and scale_ (the population standard deviation; 1 for a
    constant feature) fitted on the training data."""

    _statistics = ("mean_", "var_", "scale_")

    def __init__(self, *, copy=True, with_mean=True, with_std=True):
        self.copy, self.with_mean, self.with_std = copy, with_mean, with_std

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's argument name
        """Learn mean_, var_ and scale_ of the samples X (samples, features...); returns the scaler."""
        with no_grad():
            data = self._fit_input(X, "StandardScaler.fit")
            mean = data.mean(0)
            var = ((data - mean) ** 2).mean(0)
            self.mean_ = mean if self.with_mean else zeros(mean.shape, dtype=dtypes.float64, device=mean.device)
            self.var_ = var
            self.scale_ = _nonzero_scale(var.sqrt()) if self.with_std else ones(var.shape, dtype=dtypes.float64,
                                                                                 device=var.device)
        return self

    def transform(self, X):  # noqa: N803
        """(X - mean_) / scale_, in X's dtype."""
        self._check_fitted("StandardScaler.transform")
        data = _checked_input(X, "StandardScaler.transform")
        self._check_features(data, "StandardScaler.transform")
        return (data - self._statistic("mean_", data)) / self._statistic("scale_", data)

    def inverse_transform(self, X):  # noqa: N803
        """X * scale_ + mean_: the features back in the original units."""
        self._check_fitted("StandardScaler.inverse_transform")
        data = _checked_input(X, "StandardScaler.inverse_transform")
        self._check_features(data, "StandardScaler.inverse_transform")
        return data * self._statistic("scale_", data) + self._statistic("mean_", data)

    def _settings(self):
        return {"with_mean": self.with_mean, "with_std": self.with_std}

    def _load_settings(self, state_dict):
        self.with_mean, self.with_std = bool(state_dict["with_mean"]), bool(state_dict["with_std"])


class MinMaxScaler(_Scaler):
    """x -> x * scale_ + min_ per feature, mapping the training data's [data_min_, data_max_] onto
    feature_range (a constant feature maps to feature_range's low end plus its offset); clip=True clips the
    result to feature_range (for test data outside the training range)."""

    _statistics = ("data_min_", "data_max_", "data_range_", "scale_", "min_")

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False):
        low, high = feature_range
        if low >= high:
            raise ValueError(f"Minimum of desired feature range must be smaller than maximum. Got {feature_range}.")
        self.feature_range, self.copy, self.clip = (low, high), copy, clip

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's argument name
        """Learn data_min_, data_max_ and the affine map of the samples X (samples, features...)."""
        low, high = self.feature_range
        with no_grad():
            data = self._fit_input(X, "MinMaxScaler.fit")
            self.data_min_, self.data_max_ = data.amin(0), data.amax(0)
            self.data_range_ = self.data_max_ - self.data_min_
            self.scale_ = (high - low) / _nonzero_scale(self.data_range_)
            self.min_ = low - self.data_min_ * self.scale_
        return self

    def transform(self, X):  # noqa: N803
        """X * scale_ + min_ in X's dtype, clipped to feature_range if clip."""
        self._check_fitted("MinMaxScaler.transform")
        data = _checked_input(X, "MinMaxScaler.transform")
        self._check_features(data, "MinMaxScaler.transform")
        result = data * self._statistic("scale_", data) + self._statistic("min_", data)
        return result.clamp(*self.feature_range) if self.clip else result

    def inverse_transform(self, X):  # noqa: N803
        """(X - min_) / scale_: the features back in the original units."""
        self._check_fitted("MinMaxScaler.inverse_transform")
        data = _checked_input(X, "MinMaxScaler.inverse_transform")
        self._check_features(data, "MinMaxScaler.inverse_transform")
        return (data - self._statistic("min_", data)) / self._statistic("scale_", data)

    def _settings(self):
        return {"feature_range": list(self.feature_range), "clip": self.clip}

    def _load_settings(self, state_dict):
        self.feature_range, self.clip = tuple(state_dict["feature_range"]), bool(state_dict["clip"])


def one_hot(tensor, num_classes=-1):
    """torch.nn.functional.one_hot: int64 zeros of shape tensor.shape + (num_classes,) with a 1 at each class
    index. `tensor` holds int64 class indices in [0, num_classes); num_classes=-1 takes max + 1."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"one_hot(): argument 'input' (position 1) must be Tensor, not {type(tensor).__name__}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"one_hot(): argument 'num_classes' (position 2) must be int, not "
                        f"{type(num_classes).__name__}")
    if tensor.dtype != dtypes.int64:
        raise RuntimeError(f"one_hot is only applicable to index tensor of type LongTensor. (got {tensor.dtype})")
    num_classes = int(num_classes)
    if tensor.numel() == 0:
        if num_classes <= 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        return zeros(tuple(tensor.shape) + (num_classes,), dtype=dtypes.int64, device=tensor.device)
    lowest, highest = tensor.min().item(), tensor.max().item()
    if lowest < 0:
        raise RuntimeError(f"Class values must be non-negative. (got {lowest})")
    if num_classes == -1:
        num_classes = highest + 1
    elif highest >= num_classes:
        raise RuntimeError(f"Class values must be smaller than num_classes. (got {highest} with "
                           f"num_classes={num_classes})")
    out = zeros(tuple(tensor.shape) + (num_classes,), dtype=dtypes.int64, device=tensor.device)
    return out.scatter_(-1, tensor.detach().unsqueeze(-1), 1)
