"""The tape (nbprop.autograd, as torch.autograd): Function and Context, backward() and grad(), grad modes,
anomaly detection; nbprop.autograd.functional (jacobian, hessian, vjp, jvp, hvp, vhp) is imported by nbprop."""

from nbprop.anomaly_mode import detect_anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled, set_detect_anomaly
from nbprop.autograd.function import Context, Function
from nbprop.backward_pass import backward, grad
from nbprop.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = [
    "Function", "Context", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "is_anomaly_check_nan_enabled",
]
