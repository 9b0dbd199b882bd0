"""torch.autograd.functional's forms: vjp, jvp, vhp, hvp, jacobian and hessian of a function of tensors, built
on autograd.grad (forward-mode products by the double-vjp trick)."""

from nbprop.backend import DEVICES
from nbprop.backward_pass import grad
from nbprop.grad_mode import enable_grad
from nbprop.ops import movement
from nbprop.tensor import Tensor

__all__ = ["vjp", "jvp", "vhp", "hvp", "jacobian", "hessian"]


def _as_tuple(value, name, where):
    """(tuple of tensors, whether `value` was a tuple or list)."""
    is_tuple = isinstance(value, (tuple, list))
    values = tuple(value) if is_tuple else (value,)
    for index, item in enumerate(values):
        if not isinstance(item, Tensor):
            raise TypeError(f"{where}: {name} must be a Tensor or a tuple of Tensors, got {type(item).__name__}"
                            + (f" at index {index}" if is_tuple else ""))
    return values, is_tuple


def _unpacked(values, is_tuple):
    return values if is_tuple else values[0]


def _prepared_inputs(inputs, create_graph):
    """The inputs as the function will see them: fresh leaves that require grad; with create_graph, views
    that keep the inputs' own graph, so the results can be differentiated with respect to the inputs."""
    return tuple(
        movement.view(value, value.shape) if create_graph and value.requires_grad
        else value.detach().requires_grad_(True) for value in inputs
    )


def _outputs(function, inputs, where):
    outputs = function(*inputs)
    values, is_tuple = _as_tuple(outputs, "the function's output", where)
    return values, is_tuple


def _checked_vectors(vectors, references, what, where):
    vectors, _ = _as_tuple(vectors, what, where)
    if len(vectors) != len(references):
        raise RuntimeError(f"{where}: {what} has {len(vectors)} tensors, expected {len(references)}")
    for index, (vector, reference) in enumerate(zip(vectors, references)):
        if vector.shape != reference.shape:
            raise RuntimeError(f"{where}: entry {index} of {what} has shape {tuple(vector.shape)}, expected "
                               f"{tuple(reference.shape)}")
    return vectors


def _default_vectors(references, kind, where):
    """v may be omitted only where every reference (each output, or each input) has one element: v = 1."""
    for reference in references:
        if reference.numel() != 1:
            raise RuntimeError(f"{where}: v is required unless every {kind} has a single element; got an {kind} "
                               f"of shape {tuple(reference.shape)}")
    return tuple(_filled(reference, 1) for reference in references)


def _filled(reference, value):
    device = DEVICES[reference.device]
    return Tensor._make(device.full(reference.shape, value, reference.dtype), None, reference.device)


def _gradients(outputs, inputs, vectors, create_graph, strict, where, what="output"):
    """autograd.grad that gives zeros for inputs the outputs do not reach (or raises, with `strict`)."""
    differentiable = [index for index, output in enumerate(outputs) if output.requires_grad]
    if strict and len(differentiable) != len(outputs):
        index = next(i for i in range(len(outputs)) if i not in differentiable)
        raise RuntimeError(f"{where}: {what} {index} of the function does not require grad: it is independent of "
                           "the inputs, which strict=True forbids")
    results = (None,) * len(inputs)
    if differentiable:
        results = grad([outputs[i] for i in differentiable], inputs, [vectors[i] for i in differentiable],
                       retain_graph=True, create_graph=create_graph, allow_unused=True)
    gradients = []
    for index, (result, value) in enumerate(zip(results, inputs)):
        if result is None:
            if strict:
                raise RuntimeError(f"{where}: the outputs are independent of input {index}, which strict=True "
                                   "forbids")
            result = _filled(value, 0)
        gradients.append(result)
    return tuple(gradients)


def _finished(values, create_graph):
    """Results keep their graph only with create_graph (as PyTorch's _grad_postprocess)."""
    return tuple(value if create_graph else value.detach() for value in values)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), v^T J): the vector-Jacobian product at `inputs`; v may be omitted for a one-element output."""
    inputs, inputs_tuple = _as_tuple(inputs, "inputs", "vjp")
    with enable_grad():
        prepared = _prepared_inputs(inputs, create_graph)
        outputs, outputs_tuple = _outputs(func, prepared, "vjp")
        vectors = (_default_vectors(outputs, "output", "vjp") if v is None
                   else _checked_vectors(v, outputs, "v", "vjp"))
        products = _gradients(outputs, prepared, vectors, create_graph, strict, "vjp")
    return (_unpacked(_finished(outputs, create_graph), outputs_tuple),
            _unpacked(_finished(products, create_graph), inputs_tuple))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), J v): the Jacobian-vector product, by differentiating u -> u^T J (linear in u) along v."""
    inputs, inputs_tuple = _as_tuple(inputs, "inputs", "jvp")
    with enable_grad():
        prepared = _prepared_inputs(inputs, create_graph)
        vectors = (_default_vectors(prepared, "input", "jvp") if v is None
                   else _checked_vectors(v, prepared, "v", "jvp"))
        outputs, outputs_tuple = _outputs(func, prepared, "jvp")
        dummies = tuple(_filled(output, 0).requires_grad_(True) for output in outputs)
        transposed = _gradients(outputs, prepared, dummies, True, strict, "jvp")
        products = _gradients(transposed, dummies, vectors, create_graph, strict, "jvp", "gradient")
    return (_unpacked(_finished(outputs, create_graph), outputs_tuple),
            _unpacked(_finished(products, create_graph), outputs_tuple))


def _scalar_output(func, prepared, where):
    outputs, _ = _outputs(func, prepared, where)
    if len(outputs) != 1 or outputs[0].numel() != 1:
        raise RuntimeError(f"{where}: the function must return a single-element Tensor, got "
                           f"{[tuple(output.shape) for output in outputs]}")
    return outputs[0]


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), v^T H): the vector-Hessian product of a scalar function."""
    return _hessian_product(func, inputs, v, create_graph, strict, "vhp")


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), H v): the Hessian-vector product of a scalar function (H is symmetric, so it equals vhp
    for twice continuously differentiable functions; computed the same way)."""
    return _hessian_product(func, inputs, v, create_graph, strict, "hvp")


def _hessian_product(func, inputs, v, create_graph, strict, where):
    inputs, inputs_tuple = _as_tuple(inputs, "inputs", where)
    with enable_grad():
        prepared = _prepared_inputs(inputs, create_graph)
        output = _scalar_output(func, prepared, where)
        vectors = (_default_vectors(prepared, "input", where) if v is None
                   else _checked_vectors(v, prepared, "v", where))
        first = _gradients((output,), prepared, (_filled(output, 1),), True, strict, where)
        products = _gradients(first, prepared, vectors, create_graph, strict, where, "gradient")
    return _finished((output,), create_graph)[0], _unpacked(_finished(products, create_graph), inputs_tuple)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """d func(*inputs) / d inputs: for one output and one input a tensor of shape output.shape + input.shape;
    a tuple over inputs, over outputs, or a tuple (per output) of tuples (per input) when they are tuples.

    Computed row by row with reverse mode. `vectorize` changes only how PyTorch computes it, not the values,
    so both settings compute the same rows here; strategy="forward-mode" needs vectorize=True, as in PyTorch.
    """
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f'jacobian: expected strategy to be either "forward-mode" or "reverse-mode", got '
                         f"{strategy!r}")
    if strategy == "forward-mode" and not vectorize:
        raise NotImplementedError("jacobian: computing the Jacobian in forward mode needs vectorize=True (as in "
                                  "PyTorch)")
    if strategy == "forward-mode" and create_graph:
        raise NotImplementedError("jacobian: create_graph=True with forward mode is not supported (as in PyTorch)")
    inputs, inputs_tuple = _as_tuple(inputs, "inputs", "jacobian")
    with enable_grad():
        prepared = _prepared_inputs(inputs, create_graph)
        outputs, outputs_tuple = _outputs(func, prepared, "jacobian")
        blocks = tuple(_jacobian_blocks(output, index, prepared, create_graph, strict)
                       for index, output in enumerate(outputs))
    blocks = tuple(_finished(row, create_graph) for row in blocks)
    if not outputs_tuple:
        return _unpacked(blocks[0], inputs_tuple)
    return tuple(_unpacked(row, inputs_tuple) for row in blocks)


def _jacobian_blocks(output, output_index, inputs, create_graph, strict):
    """For one output, per input, the block of shape output.shape + input.shape: one backward per element."""
    rows = [[] for _ in inputs]
    for element in range(output.numel()):
        device = DEVICES[output.device]
        one_hot = device.zeros((output.numel(),), output.dtype)
        device.write_region(one_hot, (element,), 1)
        vector = Tensor._make(device.reshape(one_hot, output.shape), None, output.device)
        if strict and not output.requires_grad:
            raise RuntimeError(f"jacobian: output {output_index} of the function is independent of the inputs, "
                               "which strict=True forbids")
        gradients = _gradients((output,), inputs, (vector,), create_graph, strict, "jacobian")
        for row, gradient in zip(rows, gradients):
            row.append(gradient)
    blocks = []
    for value, row in zip(inputs, rows):
        if row:
            block = movement.reshape(movement.stack(row), output.shape + value.shape)
        else:  # an empty output: an empty Jacobian
            block = Tensor._make(DEVICES[value.device].zeros(output.shape + value.shape, value.dtype), None,
                                 value.device)
        blocks.append(block)
    return tuple(blocks)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar function: for one input a tensor of shape input.shape + input.shape; for a tuple
    of inputs a tuple (per input) of tuples (per input) of blocks."""
    if outer_jacobian_strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f'hessian: expected outer_jacobian_strategy to be either "forward-mode" or "reverse-mode", '
                         f"got {outer_jacobian_strategy!r}")
    inputs, inputs_tuple = _as_tuple(inputs, "inputs", "hessian")

    def gradient_of(*values):
        output = _scalar_output(func, values, "hessian")
        return _gradients((output,), values, (_filled(output, 1),), True, strict, "hessian")

    result = jacobian(gradient_of, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize,
                      strategy=outer_jacobian_strategy)
    # The Jacobian of a tuple-valued function of a tuple: per gradient (one per input), per input.
    return result if inputs_tuple else result[0][0]
