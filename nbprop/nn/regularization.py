"""L1 and L2 penalties over parameters, differentiable, to add to a loss (weight decay is the optimizers')."""

from nbprop.tensor import Tensor


def _parameters(parameters, op):
    if isinstance(parameters, Tensor):
        return [parameters]
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        raise TypeError(f"{op}: pass model.parameters(), not the model itself")
    tensors = list(parameters)
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{op}: element {index} of parameters is a {type(tensor).__name__}, not a Tensor")
        if tensor.dtype.kind != "f":
            raise TypeError(f"{op}: element {index} of parameters is {tensor.dtype}, not floating point")
    return tensors


def _total(terms):
    if not terms:
        from nbprop.creation import zeros

        return zeros(())
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def l1_penalty(parameters):
    """sum over the given tensors of sum |p|: a 0-d tensor whose gradient is sign(p) (0 at p = 0).

    `parameters`: a Tensor or an iterable of them (e.g. `model.parameters()`); an empty one gives 0. Add
    `l1_strength * l1_penalty(model.parameters())` to the loss for lasso-style sparsity.
    """
    return _total([tensor.abs().sum() for tensor in _parameters(parameters, "l1_penalty")])


def l2_penalty(parameters):
    """sum over the given tensors of sum p^2 (no factor 1/2): a 0-d tensor whose gradient is 2 p.

    `parameters`: a Tensor or an iterable of them; an empty one gives 0. Adding `(weight_decay / 2) *
    l2_penalty(...)` to the loss gives SGD's coupled weight decay; decoupled decay (AdamW) belongs in the
    optimizer.
    """
    return _total([(tensor * tensor).sum() for tensor in _parameters(parameters, "l2_penalty")])
