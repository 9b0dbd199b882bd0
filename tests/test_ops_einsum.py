"""einsum against torch.einsum: values and gradients over many equations (and hypothesis-drawn ones), the
operand forms, broadcasting, errors, contractions through matmul, gradcheck, and the opaque device."""

import numpy as np
import pytest
from helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import nbprop
from nbprop.ops import einsum as einsum_module

# (equation, operand shapes)
EQUATIONS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij->ji", [(2, 3)]),
    ("ij", [(2, 3)]),
    ("ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("iji->ij", [(3, 2, 3)]),
    ("iii->i", [(3, 3, 3)]),
    ("iijj->ij", [(2, 2, 3, 3)]),
    ("i,i->", [(4,), (4,)]),
    ("i,i->i", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,j", [(3,), (4,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("bij,bkj->bik", [(5, 2, 3), (5, 4, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ijk,ikl->", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("abc,cd,de,a->be", [(2, 3, 4), (4, 5), (5, 6), (2,)]),
    ("ij,kl->ijkl", [(2, 3), (1, 2)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("ij,ji->", [(3, 4), (4, 3)]),
    ("...ij,...jk->...ik", [(5, 1, 2, 3), (4, 3, 2)]),
    ("...ij->ij", [(5, 2, 3)]),
    ("...ij->...ji", [(5, 4, 2, 3)]),
    ("b...,b...", [(2, 3), (2, 3)]),
    ("...,...->...", [(2, 1), (3,)]),
    ("i...->...", [(2, 3, 4)]),
    ("ij->...ij", [(2, 3)]),
    ("a...a->...a", [(3, 2, 3)]),
    ("i,i->i", [(1,), (3,)]),
    ("i,i", [(1,), (3,)]),
    ("ij,jk->ik", [(2, 1), (3, 4)]),
    ("bij,bjk->bik", [(1, 2, 3), (4, 3, 2)]),
    ("", [()]),
    (",->", [(), ()]),
    (",i->i", [(), (3,)]),
    ("Ba", [(2, 3)]),
    ("aB,Bc->ac", [(2, 3), (3, 2)]),
    (" i j , j k -> i k ", [(2, 3), (3, 4)]),
    ("ij,ij->", [(0, 3), (0, 3)]),
    ("ij,jk", [(2, 0), (0, 4)]),
    ("ij,jk->ik", [(0, 3), (3, 4)]),
]


def _compare(equation, shapes, dtype=np.float64, seed=0, tolerance=1e-10):
    import torch

    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    ours = [nbprop.tensor(array, requires_grad=True) for array in arrays]
    theirs = [torch.tensor(array, requires_grad=True) for array in arrays]
    result = nbprop.einsum(equation, *ours)
    expected = torch.einsum(equation, *theirs)
    assert tuple(result.shape) == tuple(expected.shape)
    assert result.dtype == dtype
    assert_close(result, expected.detach().numpy(), rtol=tolerance, atol=tolerance)
    gradient = rng.standard_normal(tuple(expected.shape)).astype(dtype)
    result.backward(nbprop.tensor(gradient))
    expected.backward(torch.tensor(gradient))
    for mine, torch_leaf in zip(ours, theirs):
        assert_close(mine.grad, torch_leaf.grad.numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.torch
@pytest.mark.parametrize(("equation", "shapes"), EQUATIONS, ids=[equation or "scalar" for equation, _ in EQUATIONS])
def test_einsum_matches_torch_values_and_gradients(equation, shapes):
    _compare(equation, shapes)


@pytest.mark.torch
@pytest.mark.parametrize(("equation", "shapes"), [EQUATIONS[0], EQUATIONS[8], EQUATIONS[20], EQUATIONS[28]])
def test_einsum_float32_matches_torch(equation, shapes):
    _compare(equation, shapes, dtype=np.float32, tolerance=1e-5)


@pytest.mark.torch
def test_einsum_integer_operands_match_torch():
    import torch

    rng = np.random.default_rng(1)
    a, b = rng.integers(-5, 5, (2, 3, 4)), rng.integers(-5, 5, (2, 4, 3))
    for equation, operands in (("bij,bjk->bik", (a, b)), ("bij,bji->b", (a, b)), ("bij,bkl->ijkl", (a, b)),
                               ("bii->bi", (a[:, :, :3],))):
        result = nbprop.einsum(equation, *[nbprop.tensor(operand) for operand in operands])
        expected = torch.einsum(equation, *[torch.tensor(operand) for operand in operands])
        assert result.dtype == nbprop.int64
        np.testing.assert_array_equal(result.numpy(), expected.numpy())


@pytest.mark.torch
def test_einsum_operand_list_and_sublist_forms():
    import torch

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    expected = torch.einsum("ij,jk->ik", torch.tensor(a), torch.tensor(b)).numpy()
    x, y = nbprop.tensor(a), nbprop.tensor(b)
    assert_close(nbprop.einsum("ij,jk->ik", [x, y]), expected)
    assert_close(nbprop.einsum("ij,jk->ik", (x, y)), expected)
    assert_close(nbprop.einsum(x, [0, 1], y, [1, 2], [0, 2]), expected)
    assert_close(nbprop.einsum(x, [0, 1], y, [1, 2]), expected)
    batched = rng.standard_normal((5, 2, 3))
    theirs = torch.einsum(torch.tensor(batched), [Ellipsis, 0, 1], torch.tensor(b), [1, 2], [Ellipsis, 0, 2])
    assert_close(nbprop.einsum(nbprop.tensor(batched), [Ellipsis, 0, 1], y, [1, 2], [Ellipsis, 0, 2]), theirs.numpy())


@st.composite
def einsum_cases(draw):
    """(equation, shapes): 1-3 operands over labels a-d with repeats, size-1 broadcasting and ellipses."""
    sizes = {label: draw(st.integers(1, 3)) for label in "abcd"}
    count = draw(st.integers(1, 3))
    use_ellipsis = draw(st.booleans())
    ellipsis_shape = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    terms, shapes = [], []
    for _ in range(count):
        labels = draw(st.lists(st.sampled_from("abcd"), min_size=0, max_size=3))
        shape = [1 if draw(st.integers(0, 4)) == 0 and labels.count(label) == 1 else sizes[label] for label in labels]
        term = "".join(labels)
        if use_ellipsis and draw(st.booleans()):
            position = draw(st.integers(0, len(labels)))
            covered = ellipsis_shape[len(ellipsis_shape) - draw(st.integers(0, len(ellipsis_shape))):]
            # a covered dimension may be 1 in one operand and broadcast against the others
            covered = [1 if draw(st.integers(0, 3)) == 0 else size for size in covered]
            term = term[:position] + "..." + term[position:]
            shape = shape[:position] + covered + shape[position:]
        terms.append(term)
        shapes.append(tuple(shape))
    equation = ",".join(terms)
    if draw(st.booleans()):
        present = sorted({label for term in terms for label in term if label != "."})
        output = draw(st.permutations(present))
        output = "".join(output[:draw(st.integers(0, len(output)))])
        if any("..." in term for term in terms) and draw(st.booleans()):
            position = draw(st.integers(0, len(output)))
            output = output[:position] + "..." + output[position:]
        equation += "->" + output
    return equation, shapes


@pytest.mark.torch
@settings(max_examples=60, deadline=None)
@given(einsum_cases(), st.integers(0, 2**16))
def test_einsum_hypothesis_equations_match_torch(case, seed):
    import torch

    equation, shapes = case
    try:
        torch.einsum(equation, *[torch.zeros(shape) for shape in shapes])
    except RuntimeError as error:
        # Sizes that do not broadcast (a label drawn 1 in one operand is fine, two different sizes are not):
        # nbprop refuses the same equation.
        with pytest.raises(RuntimeError, match="einsum"):
            nbprop.einsum(equation, *[nbprop.zeros(shape) for shape in shapes])
        assert "einsum" in str(error)
        return
    _compare(equation, shapes, seed=seed)


def test_einsum_gradcheck():
    rng = np.random.default_rng(3)
    cases = [("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("ii,ij->j", [(3, 3), (3, 2)]),
             ("...i,i...->...", [(2, 3), (3, 2)]), ("i,j,k->ijk", [(2,), (3,), (2,)])]
    for equation, shapes in cases:
        leaves = [nbprop.tensor(rng.standard_normal(shape), requires_grad=True) for shape in shapes]
        assert nbprop.gradcheck(lambda *operands, equation=equation: nbprop.einsum(equation, *operands), leaves)


def test_einsum_gradgradcheck():
    """Built from differentiable ops, einsum is twice differentiable."""
    rng = np.random.default_rng(4)
    cases = [("ij,jk->ik", [(2, 3), (3, 2)]), ("ii,ij->j", [(3, 3), (3, 2)]), ("i,i->i", [(1,), (3,)]),
             ("bij,bjk->bik", [(2, 2, 3), (1, 3, 2)])]
    for equation, shapes in cases:
        leaves = [nbprop.tensor(rng.standard_normal(shape), requires_grad=True) for shape in shapes]
        assert nbprop.gradgradcheck(lambda *operands, equation=equation: nbprop.einsum(equation, *operands), leaves)


def test_einsum_contracts_through_matmul_and_multiplies_without_sums(monkeypatch):
    calls = []
    original = einsum_module.matmul.matmul

    def counting(a, b):
        calls.append((tuple(a.shape), tuple(b.shape)))
        return original(a, b)

    monkeypatch.setattr(einsum_module.matmul, "matmul", counting)
    a, b, c = nbprop.ones(2, 3), nbprop.ones(3, 4), nbprop.ones(4, 5)
    nbprop.einsum("ij,jk,kl->il", a, b, c)
    assert calls == [((2, 3), (3, 4)), ((2, 4), (4, 5))]  # left to right, one BLAS product per pair
    calls.clear()
    nbprop.einsum("bhqd,bhkd->bhqk", nbprop.ones(2, 3, 4, 5), nbprop.ones(2, 3, 6, 5))
    assert calls == [((2, 3, 4, 5), (2, 3, 5, 6))]  # batch labels stay batch dimensions of one matmul
    calls.clear()
    nbprop.einsum("i,i->i", nbprop.ones(3), nbprop.ones(3))
    nbprop.einsum("i,j->ij", nbprop.ones(3), nbprop.ones(2))
    assert calls == []  # nothing summed: a broadcast product


def test_einsum_returns_a_new_tensor_for_the_identity_equation():
    x = nbprop.ones(2, 3, requires_grad=True)
    y = nbprop.einsum("ij", x)
    assert y is not x and tuple(y.shape) == (2, 3)
    y.sum().backward()
    assert x.grad.numpy().tolist() == [[1.0] * 3] * 2


ERRORS = [
    ("ij,jk", [(2, 3)], "fewer operands"),
    ("ij", [(2, 3), (3, 4)], "more operands"),
    ("ij,jk", [(2, 3), (2, 3)], "subscript j has size 2 for operand 1"),
    ("ijk,jk", [(2, 3), (3, 4)], r"number of subscripts in the equation \(3\) does not match"),
    ("i,jk", [(2, 3), (3, 4)], r"number of subscripts in the equation \(1\) does not match"),
    ("ij,jk->ii", [(2, 3), (3, 4)], "output subscript i appears more than once"),
    ("ij,jk->iz", [(2, 3), (3, 4)], "output subscript z does not appear"),
    ("...i...,jk", [(2, 3), (3, 4)], "ellipsis was already found"),
    ("i.j", [(2, 3)], "not part of any ellipsis"),
    ("i1,jk", [(2, 3), (3, 4)], "invalid subscript given at index 1"),
    ("ij->i->j", [(2, 3)], "invalid subscript given at index 5"),
    ("ii->i", [(2, 3)], "subscript i is repeated for operand 0 but the sizes don't match"),
    ("...i,...i", [(2, 3), (4, 3)], "ellipsis"),
    ("ijk...", [(2, 3)], "more than the number of dimensions"),
]


@pytest.mark.torch
@pytest.mark.parametrize(("equation", "shapes", "message"), ERRORS, ids=[case[2][:30] for case in ERRORS])
def test_einsum_errors_match_torch(equation, shapes, message):
    import torch

    with pytest.raises(RuntimeError):
        torch.einsum(equation, *[torch.zeros(shape) for shape in shapes])
    with pytest.raises(RuntimeError, match=f"einsum\\(\\): .*{message}"):
        nbprop.einsum(equation, *[nbprop.zeros(shape) for shape in shapes])


def test_einsum_argument_errors():
    with pytest.raises(ValueError, match="einsum"):
        nbprop.einsum("ij")
    with pytest.raises(ValueError, match="einsum"):
        nbprop.einsum()
    with pytest.raises(TypeError, match="einsum.*operand 1, got list"):
        nbprop.einsum("ij,jk", nbprop.ones(2, 3), [[1.0]])
    with pytest.raises(RuntimeError, match="einsum.*same dtype.*float32.*float64"):
        nbprop.einsum("ij,jk", nbprop.ones(2, 3), nbprop.ones(3, 4, dtype=nbprop.float64))
    with pytest.raises(NotImplementedError, match="einsum.*bool"):
        nbprop.einsum("ij,jk", nbprop.ones(2, 3) > 0, nbprop.ones(3, 4) > 0)
    with pytest.raises(ValueError, match="einsum.*sublist"):
        nbprop.einsum(nbprop.ones(2), [52])


def test_einsum_runs_on_the_opaque_device_bit_for_bit():
    """Diagonals, sums, broadcast products and matmuls reach array data only through the device."""
    import opaque_device

    opaque_device.install()
    rng = np.random.default_rng(5)
    a, b, c = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 4)), rng.standard_normal((4,))
    opaque_device.assert_same_on_opaque(lambda x, y, z: nbprop.einsum("bii,bij,j->bj", x, y, z), a, b, c)
    opaque_device.assert_same_on_opaque(lambda x, y: nbprop.einsum("...ij,...jk->...ik", x, y), b, b.swapaxes(1, 2))
    opaque_device.assert_same_on_opaque(lambda x, z: nbprop.einsum("bij,k->bijk", x, z), a, c)
