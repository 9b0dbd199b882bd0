"""einsum: Einstein summation over any number of operands, built from differentiable ops (permute, diagonal by
index, sum, broadcast mul, matmul), so that contractions run on BLAS and the gradient is those ops' gradients.

As PyTorch without opt_einsum: operands are contracted pairwise from left to right. Each pair becomes one
(batch, rows, contracted) @ (batch, contracted, columns) matmul; a pair that shares no summed label is a
broadcast mul. A label is summed away as soon as no later operand and not the output names it.
"""

import math
import numbers

import numpy as np

from nbprop.backend import DEVICES
from nbprop.ops import indexing, matmul, movement, reduce
from nbprop.ops.elementwise import mul
from nbprop.tensor import Tensor

# Internal labels of the dimensions an ellipsis covers, counted from the last one (right-aligned broadcasting).
_ELLIPSIS_LABEL = "..."


def _ellipsis_labels(count, total):
    """The labels of the last `count` of `total` ellipsis dimensions."""
    return [(_ELLIPSIS_LABEL, total - index) for index in range(total - count, total)]


def _parse_term(term, start, operand, output):
    """(labels, ellipsis position or None) of one subscript term; `start` is its offset in the equation."""
    labels, ellipsis, position = [], None, 0
    where = f"for operand {operand}" if not output else "in the output"
    while position < len(term):
        character = term[position]
        if character == " ":
            position += 1
            continue
        if character == ".":
            if ellipsis is not None:
                raise RuntimeError(f"einsum(): found '.' {where} for which an ellipsis was already found")
            if term[position:position + 3] != "...":
                raise RuntimeError(f"einsum(): found '.' {where} that is not part of any ellipsis")
            ellipsis = len(labels)
            position += 3
            continue
        if not ("a" <= character <= "z" or "A" <= character <= "Z"):
            raise RuntimeError(f"einsum(): invalid subscript given at index {start + position} in the equation "
                               "string, subscripts must be in [a-zA-Z]")
        labels.append(character)
        position += 1
    return labels, ellipsis


def _split(equation, count):
    """The parsed input terms and output term (None when implicit) of `equation`; spaces are ignored."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): the equation must be a string, got {type(equation).__name__}")
    arrow = equation.find("->")
    left = equation if arrow < 0 else equation[:arrow]
    terms, start = [], 0
    for index, term in enumerate(left.split(",")):
        if index == count:
            raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
        terms.append(_parse_term(term, start, index, False))
        start += len(term) + 1
    if len(terms) < count:
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    output = None
    if arrow >= 0:
        output = _parse_term(equation[arrow + 2:], arrow + 2, None, True)
    return terms, output


def _sublist_equation(arguments):
    """PyTorch's sublist form einsum(op0, [0, 1], op1, [1, 2], [0, 2]) as (equation, operands): integers 0-25
    are the labels A-Z, 26-51 a-z, and Ellipsis is '...'."""
    def subscripts(sublist):
        letters = []
        for item in sublist:
            if item is Ellipsis:
                letters.append("...")
            elif isinstance(item, numbers.Integral) and 0 <= item < 52:
                letters.append(chr(ord("A") + item) if item < 26 else chr(ord("a") + item - 26))
            else:
                raise ValueError(f"einsum(): expected a subscript in [0, 52) or Ellipsis in a sublist, got {item!r}")
        return "".join(letters)

    operands = list(arguments[0::2][:len(arguments) // 2])
    sublists = list(arguments[1::2][:len(arguments) // 2])
    equation = ",".join(subscripts(sublist) for sublist in sublists)
    if len(arguments) % 2:
        equation += "->" + subscripts(arguments[-1])
    return equation, operands


def _checked_operands(operands):
    for index, operand in enumerate(operands):
        if not isinstance(operand, Tensor):
            raise TypeError(f"einsum(): expected a Tensor as operand {index}, got {type(operand).__name__}")
    first = operands[0]
    for index, operand in enumerate(operands[1:], 1):
        if operand.device != first.device:
            raise RuntimeError(f"einsum(): operands on different devices, {first.device} (operand 0) and "
                               f"{operand.device} (operand {index})")
        if operand.dtype != first.dtype:
            raise RuntimeError(f"einsum(): expected all operands to have the same dtype, got {first.dtype} "
                               f"(operand 0) and {operand.dtype} (operand {index}); convert one with .to()")
    if first.dtype.kind == "b":
        raise NotImplementedError("einsum(): not implemented for bool operands; convert them with .float() or "
                                  ".long() first")


def _operand_labels(terms, operands):
    """Each operand's label per dimension (ellipsis dimensions get internal labels) and the number of
    dimensions the ellipsis covers in the broadcast result."""
    covered = []
    for index, ((labels, ellipsis), operand) in enumerate(zip(terms, operands)):
        if ellipsis is None and len(labels) != operand.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(labels)}) does not match "
                               f"the number of dimensions ({operand.ndim}) for operand {index} (shape "
                               f"{tuple(operand.shape)}) and no ellipsis was given")
        if ellipsis is not None and len(labels) > operand.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(labels)}) is more than "
                               f"the number of dimensions ({operand.ndim}) for operand {index} (shape "
                               f"{tuple(operand.shape)})")
        covered.append(0 if ellipsis is None else operand.ndim - len(labels))
    total = max(covered)
    result = []
    for (labels, ellipsis), count in zip(terms, covered):
        if ellipsis is None:
            result.append(list(labels))
        else:
            result.append(labels[:ellipsis] + _ellipsis_labels(count, total) + labels[ellipsis:])
    return result, total


def _sizes(labelled, operands):
    """The broadcast size of every label, checked: a label repeated in one operand has one size, and the
    sizes of a label in different operands are equal or 1."""
    sizes = {}
    for index, (labels, operand) in enumerate(zip(labelled, operands)):
        own = {}
        for label, size in zip(labels, operand.shape):
            if label in own and own[label] != size:
                raise RuntimeError(f"einsum(): subscript {label} is repeated for operand {index} but the sizes "
                                   f"don't match, {own[label]} != {size}")
            own[label] = size
        for label, size in own.items():
            seen = sizes.get(label)
            if seen is not None and size != seen and size != 1 and seen != 1:
                if isinstance(label, tuple):
                    raise RuntimeError(f"einsum(): dimension {label[1]} from the end covered by the ellipsis in "
                                       f"operand {index} (shape {tuple(operand.shape)}) has size {size}, which "
                                       f"does not broadcast with the size {seen} seen before for that dimension")
                raise RuntimeError(f"einsum(): subscript {label} has size {size} for operand {index} (shape "
                                   f"{tuple(operand.shape)}) which does not broadcast with previously seen size "
                                   f"{seen}")
            sizes[label] = size if seen is None or seen == 1 else seen
    return sizes


def _output_labels(terms, output, labelled, total):
    """The output's labels: as written after '->', or (implicit) the ellipsis dimensions then the letters
    that occur exactly once, in alphabetical order (upper case first)."""
    ellipsis_labels = _ellipsis_labels(total, total)
    if output is None:
        counts = {}
        for labels, _ in terms:
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        return ellipsis_labels + sorted(label for label, count in counts.items() if count == 1)
    labels, ellipsis = output
    known = {label for operand in labelled for label in operand}
    seen = set()
    for label in labels:
        if label not in known:
            raise RuntimeError(f"einsum(): output subscript {label} does not appear in the equation for any input "
                               "operand")
        if label in seen:
            raise RuntimeError(f"einsum(): output subscript {label} appears more than once in the output")
        seen.add(label)
    if ellipsis is None:
        return list(labels)  # the ellipsis dimensions, if any, are summed
    return labels[:ellipsis] + ellipsis_labels + labels[ellipsis:]


# ------------------------------------------------------------------------------------------ the steps


def _diagonals(operand, labels):
    """The operand with each repeated label reduced to its diagonal (a gather by index, exact, differentiable):
    (tensor, labels without repeats)."""
    while len(set(labels)) < len(labels):
        label = next(label for label in labels if labels.count(label) > 1)
        positions = [dim for dim, other in enumerate(labels) if other == label]
        rest = [dim for dim in range(len(labels)) if dim not in positions]
        operand = movement.permute(operand, positions + rest)
        device = DEVICES[operand.device]
        size = operand.shape[0]
        index = Tensor._make(device.arange(0, size, 1, np.int64), None, operand.device)
        operand = indexing.getitem(operand, (index,) * len(positions))
        labels = [label] + [labels[dim] for dim in rest]
    return operand, labels


def _sum_labels(operand, labels, summed):
    """The operand summed over the dimensions whose labels are in `summed`: (tensor, remaining labels)."""
    dims = tuple(dim for dim, label in enumerate(labels) if label in summed)
    if not dims:
        return operand, labels
    return reduce.sum(operand, dims), [label for label in labels if label not in summed]


def _arranged(operand, labels, order):
    """The operand permuted to `order`, with a size-1 dimension for each label of `order` it lacks."""
    dims = [labels.index(label) for label in order if label in labels]
    shape = tuple(operand.shape[labels.index(label)] if label in labels else 1 for label in order)
    if dims != list(range(len(dims))):
        operand = movement.permute(operand, dims)
    return operand if tuple(operand.shape) == shape else movement.reshape(operand, shape)


def _contract(left, left_labels, right, right_labels, keep):
    """left and right combined over their shared labels, summing those not in `keep`: (tensor, labels)."""
    left, left_labels = _sum_labels(left, left_labels, set(left_labels) - set(right_labels) - keep)
    right, right_labels = _sum_labels(right, right_labels, set(right_labels) - set(left_labels) - keep)
    shared = [label for label in left_labels if label in right_labels]
    batch = [label for label in shared if label in keep]
    summed = [label for label in shared if label not in keep]
    rows = [label for label in left_labels if label not in right_labels]
    columns = [label for label in right_labels if label not in left_labels]
    if not summed:
        # Nothing to sum: a broadcast product, in the order batch, rows, columns.
        order = batch + rows + columns
        return mul(_arranged(left, left_labels, order), _arranged(right, right_labels, order)), order
    # A summed label of size 1 on one side broadcasts: the other side is summed over it first.
    for label in summed:
        left_size = left.shape[left_labels.index(label)]
        right_size = right.shape[right_labels.index(label)]
        if left_size == 1 and right_size != 1:
            right = reduce.sum(right, right_labels.index(label), keepdim=True)
        elif right_size == 1 and left_size != 1:
            left = reduce.sum(left, left_labels.index(label), keepdim=True)

    def size(tensor, labels, label):
        return tensor.shape[labels.index(label)]

    left_batch = tuple(size(left, left_labels, label) for label in batch)
    right_batch = tuple(size(right, right_labels, label) for label in batch)
    row_sizes = [size(left, left_labels, label) for label in rows]
    column_sizes = [size(right, right_labels, label) for label in columns]
    inner = math.prod(size(left, left_labels, label) for label in summed)
    left = movement.reshape(_arranged(left, left_labels, batch + rows + summed),
                            left_batch + (math.prod(row_sizes), inner))
    right = movement.reshape(_arranged(right, right_labels, batch + summed + columns),
                             right_batch + (inner, math.prod(column_sizes)))
    product = matmul.matmul(left, right)
    shape = tuple(product.shape[:len(batch)]) + tuple(row_sizes) + tuple(column_sizes)
    return movement.reshape(product, shape), batch + rows + columns


def einsum(*arguments):
    """torch.einsum(equation, *operands): the sum over the labels the output does not name of the product of
    the operands' elements, each dimension labelled by a letter of `equation` ('ij,jk->ik' is a matrix
    product). Also einsum(equation, [operands]) and the sublist form einsum(op0, [0, 1], op1, [1, 2], [0, 2]).

    '->' gives the output's labels; without it, the output has the labels that occur once, alphabetically.
    '...' stands for dimensions that broadcast across operands (right-aligned); ellipsis dimensions missing
    from an explicit output are summed. A label repeated within an operand takes its diagonal ('ii->i'); a
    label of size 1 broadcasts against the same label elsewhere. Contractions are matmuls, left to right.
    """
    if not arguments:
        raise ValueError("einsum(): must specify the equation string and at least one operand, or at least one "
                         "operand and its subscripts list")
    if isinstance(arguments[0], str):
        equation, operands = arguments[0], list(arguments[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
    else:
        equation, operands = _sublist_equation(arguments)
    if not operands:
        raise ValueError("einsum(): must specify the equation string and at least one operand, or at least one "
                         "operand and its subscripts list")
    _checked_operands(operands)
    terms, output = _split(equation, len(operands))
    labelled, total = _operand_labels(terms, operands)
    _sizes(labelled, operands)
    output_labels = _output_labels(terms, output, labelled, total)

    # Diagonals first, then each label that only its own operand names (and the output does not) is summed.
    prepared = [_diagonals(operand, labels) for operand, labels in zip(operands, labelled)]
    needed = set(output_labels)
    counts = {}
    for _, labels in prepared:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    prepared = [_sum_labels(operand, labels, {label for label in labels if counts[label] == 1} - needed)
                for operand, labels in prepared]

    result, labels = prepared[0]
    for position in range(1, len(prepared)):
        keep = set(needed)
        for _, later in prepared[position + 1:]:
            keep.update(later)
        result, labels = _contract(result, labels, *prepared[position], keep)
    result, labels = _sum_labels(result, labels, set(labels) - needed)
    dims = [labels.index(label) for label in output_labels]
    if dims != list(range(len(dims))):
        result = movement.permute(result, dims)
    if result is operands[0]:
        result = movement.view(result, tuple(result.shape))  # an equation like 'ij' gives a new tensor (a view)
    return result
