"""Central-difference gradient check in float64, for the tests and for authors of custom Functions."""

import numpy as np

from nbprop import autograd
from nbprop.backend import HOST
from nbprop.tensor import Tensor


class GradcheckError(RuntimeError):
    """The analytical and numerical Jacobians disagree."""


def _outputs_of(function, inputs):
    outputs = function(*inputs)
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    return [output for output in outputs if output.dtype.kind == "f"]


def _numerical_jacobian(function, inputs, input_index, output_sizes, eps):
    """d outputs / d inputs[input_index] by central differences: one column per input element."""
    if inputs[input_index].device != HOST:
        raise ValueError(f"gradcheck: input {input_index} is on device {inputs[input_index].device!r}; central "
                         f"differences perturb host memory: pass tensors on {HOST!r}")
    array = inputs[input_index]._data
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"gradcheck: input {input_index} must be a contiguous, writeable tensor (its elements "
                         "are perturbed in place); pass x.contiguous() or a clone")
    flat = array.reshape(-1)  # a view, since the array is contiguous
    columns = []
    for element in range(flat.size):
        original = flat[element]
        flat[element] = original + eps
        with autograd.no_grad():
            plus = [output._data.reshape(-1).copy() for output in _outputs_of(function, inputs)]
        flat[element] = original - eps
        with autograd.no_grad():
            minus = [output._data.reshape(-1).copy() for output in _outputs_of(function, inputs)]
        flat[element] = original
        columns.append(np.concatenate([(p - m) / (2 * eps) for p, m in zip(plus, minus)]))
    total = sum(output_sizes)
    return np.stack(columns, axis=1) if columns else np.zeros((total, 0))


def _analytical_jacobians(function, inputs, differentiable):
    """One row per output element: backward of a one-hot gradient through a freshly recorded graph."""
    outputs = _outputs_of(function, inputs)
    sizes = [output.numel() for output in outputs]
    rows = {index: [] for index in differentiable}
    for output_index, output in enumerate(outputs):
        for element in range(output.numel()):
            if not output.requires_grad:
                for index in differentiable:
                    rows[index].append(np.zeros(inputs[index].numel()))
                continue
            one_hot = np.zeros(output.numel(), dtype=output.dtype)
            one_hot[element] = 1
            gradients = autograd.grad(
                outputs[output_index], [inputs[index] for index in differentiable],
                grad_outputs=Tensor._make(one_hot.reshape(output.shape), None, HOST), retain_graph=True,
                allow_unused=True,
            )
            for index, gradient in zip(differentiable, gradients):
                row = np.zeros(inputs[index].numel()) if gradient is None else gradient._data.reshape(-1)
                rows[index].append(np.asarray(row, dtype=np.float64))
    return sizes, {
        index: np.stack(rows[index]) if rows[index] else np.zeros((0, inputs[index].numel()))
        for index in differentiable
    }


def gradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Check the gradients of `function(*inputs)` against central differences.

    Every input tensor that requires grad must be float64. The Jacobian of every floating output with
    respect to every such input is computed both ways; they must agree within `atol + rtol * |numerical|`.
    Returns True, or raises GradcheckError describing the worst element (returns False if
    `raise_exception=False`).
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    differentiable = [index for index, value in enumerate(inputs) if isinstance(value, Tensor) and value.requires_grad]
    if not differentiable:
        raise ValueError("gradcheck: no input requires grad")
    for index in differentiable:
        if inputs[index].dtype != np.float64:
            raise ValueError(f"gradcheck: input {index} is {inputs[index].dtype}; central differences need "
                             "float64 inputs")
    sizes, analytical = _analytical_jacobians(function, inputs, differentiable)
    for index in differentiable:
        numerical = _numerical_jacobian(function, inputs, index, sizes, eps)
        error = np.abs(analytical[index] - numerical) - (atol + rtol * np.abs(numerical))
        bad = ~(error <= 0) & ~(np.isnan(numerical) & np.isnan(analytical[index]))
        if bad.any():
            worst = np.unravel_index(np.nanargmax(np.where(bad, np.nan_to_num(error, nan=np.inf), -np.inf)),
                                     error.shape)
            output_element, input_element = (int(i) for i in worst)
            message = (
                f"gradcheck: Jacobian mismatch for input {index} (shape {tuple(inputs[index].shape)}), "
                f"{int(bad.sum())} of {bad.size} entries off; worst at output element {output_element}, "
                f"input element {input_element}: analytical {analytical[index][worst]!r}, numerical "
                f"{numerical[worst]!r} (atol={atol}, rtol={rtol})"
            )
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def gradgradcheck(function, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Check second derivatives: gradcheck of the gradients of `function(*inputs)` (computed with
    create_graph=True) as a function of the inputs and of the output gradients, as PyTorch's gradgradcheck.

    `grad_outputs`: float64 tensors that require grad, one per floating output that requires grad; random
    (seeded) when None.
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    differentiable = [index for index, value in enumerate(inputs) if isinstance(value, Tensor) and value.requires_grad]
    if not differentiable:
        raise ValueError("gradgradcheck: no input requires grad")
    if grad_outputs is None:
        generator = np.random.default_rng(0)
        grad_outputs = [
            Tensor._make(generator.standard_normal(output.shape), None, HOST).requires_grad_()
            for output in _outputs_of(function, inputs) if output.requires_grad
        ]
    grad_outputs = (grad_outputs,) if isinstance(grad_outputs, Tensor) else tuple(grad_outputs)

    def first_gradients(*values):
        # Recorded even when gradcheck evaluates it under no_grad for central differences: the first
        # gradients are its values.
        with autograd.enable_grad():
            wanted = [output for output in _outputs_of(function, values[:len(inputs)]) if output.requires_grad]
            return autograd.grad(wanted, [values[index] for index in differentiable], values[len(inputs):],
                                 create_graph=True, materialize_grads=True)

    return gradcheck(first_gradients, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
