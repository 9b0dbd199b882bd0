"""Ops that index memory by data values, against changed and hostile indices: no crash, PyTorch's error class.

Every case runs in a child process, since a kernel reading or writing out of bounds kills the process (or
corrupts its heap) instead of failing an assertion. The hypothesis fuzz draws its cases in this process and runs
each batch in one child, which reports one JSON line per case: a crash shows as the case with no line.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.torch

# ------------------------------------------------------------------------------------ known crashes

# Each script runs the same code under PyTorch and nbprop (`lib`, `nn`, `F`) and exits 0 only when both raise
# the expected error class: before the fix, nbprop segfaulted, aborted or returned silently wrong gradients.
PRELUDE = """
import numpy as np
import torch
import nbprop
import nbprop.nn
import nbprop.nn.functional
LIBRARIES = ((torch, torch.nn, torch.nn.functional), (nbprop, nbprop.nn, nbprop.nn.functional))

def expect(error, function, library, match=""):
    try:
        function()
    except error as raised:
        assert match in str(raised), (library.__name__, str(raised))
    else:
        raise SystemExit(f"{library.__name__}: no {error.__name__}")
"""

KNOWN_CRASHES = {
    # Was a segfault: the forward kept a view of the indices, unchecked, and the scatter-add wrote at 10**9.
    "embedding indices += 10**9": """
        for lib, nn, F in LIBRARIES:
            emb = nn.Embedding(4, 3); idx = lib.tensor([0, 1]); out = emb(idx); idx += 10**9
            expect(RuntimeError, lambda: out.sum().backward(), lib, "modified by an in")
    """,
    # Was zero gradients and then glibc's heap-corruption abort.
    "embedding indices += 4": """
        for lib, nn, F in LIBRARIES:
            emb = nn.Embedding(4, 3); idx = lib.tensor([0, 1]); out = emb(idx); idx += 4
            expect(RuntimeError, lambda: out.sum().backward(), lib, "modified by an in")
    """,
    # Was silently wrong: both micro-batches got the gradient of the last batch's indices.
    "embedding index buffer reused with copy_": """
        for lib, nn, F in LIBRARIES:
            emb = nn.Embedding(4, 3); idx = lib.tensor([0, 1])
            first = emb(idx)
            idx.copy_(lib.tensor([2, 3]))
            second = emb(idx)
            expect(RuntimeError, lambda: (first.sum() + second.sum()).backward(), lib, "modified by an in")
    """,
    # Was a segfault: cross_entropy's backward read the class 10**9 of a target written through .numpy().
    "cross_entropy target written through numpy": """
        for lib, nn, F in LIBRARIES:
            x = lib.tensor(np.ones((3, 4)), requires_grad=True); t = lib.tensor([0, 1, 2])
            loss = F.cross_entropy(x, t); t.numpy()[1] = 10**9
            expect(IndexError, loss.backward, lib, "out of bounds")
    """,
    "nll_loss target written through numpy": """
        for lib, nn, F in LIBRARIES:
            x = lib.tensor(np.ones((3, 4)), requires_grad=True); t = lib.tensor([0, 1, 2])
            loss = F.nll_loss(x, t, reduction="sum"); t.numpy()[2] = -10**9
            expect(IndexError, loss.backward, lib, "out of bounds")
    """,
    "getitem and setitem indices written through numpy": """
        for lib, nn, F in LIBRARIES:
            x = lib.tensor(np.ones((4, 3)), requires_grad=True); i = lib.tensor([0, 1])
            y = x[i]; i.numpy()[1] = 2**62
            expect(IndexError, lambda: y.sum().backward(), lib, "out of bounds")
            value = lib.tensor(np.ones((2, 3)), requires_grad=True); i = lib.tensor([0, 1])
            y = x * 1; y[i] = value; i.numpy()[0] = -10**9
            expect(IndexError, lambda: y.sum().backward(), lib, "out of bounds")
    """,
    # PyTorch's embedding backward skips an index moved out of range (the gradient is silently lost);
    # nbprop raises IndexError instead of writing out of bounds or dropping the gradient.
    "embedding indices written through numpy; the scatter-add itself": """
        emb = nbprop.nn.Embedding(4, 3); idx = nbprop.tensor([0, 1]); out = emb(idx); idx.numpy()[0] = 10**9
        expect(IndexError, lambda: out.sum().backward(), nbprop, "index 1000000000 is out of bounds for 4 rows")
        from nbprop.ops.indexing import index_add
        for position in (-1, 2, 2**62, -2**63):
            expect(IndexError, lambda: index_add(nbprop.ones(3), np.array([0, position, 1]), (2,)), nbprop,
                   f"index {position} is out of bounds for 2 rows")
    """,
}


def _run(code, cases=None, threshold=None):
    environment = dict(os.environ)
    if threshold is not None:
        environment["NBPROP_PARALLEL_THRESHOLD"] = str(threshold)
    return subprocess.run([sys.executable, "-c", code], input=None if cases is None else json.dumps(cases),
                          capture_output=True, text=True, timeout=300, env=environment)


@pytest.mark.parametrize("name", list(KNOWN_CRASHES))
def test_known_crash_raises_pytorch_error(name):
    completed = _run(PRELUDE + textwrap.dedent(KNOWN_CRASHES[name]))
    assert completed.returncode == 0, (f"{name}: exit {completed.returncode} (a crash if negative)\n"
                                       f"{completed.stdout}{completed.stderr[-3000:]}")


# -------------------------------------------------------------------------------------------- fuzz

# Runs cases read as JSON from stdin under PyTorch and nbprop; prints per case a line
# `CASE {"torch": outcome, "nbprop": outcome, "gradients_match": bool or null}`, outcome "ok",
# "forward:<error class>" or "backward:<error class>".
CHILD = PRELUDE + '''
import json
import sys


def leaf(lib, array):
    return lib.tensor(array, requires_grad=True)


def forward(lib, F, case, index):
    """(leaves, output) of the case's op, indexing with `index`."""
    op, size, count = case["op"], case["size"], len(case["indices"])
    rng = np.random.default_rng(case["seed"])
    if op == "embedding":
        table = leaf(lib, rng.standard_normal((size, 3)))
        return [table], F.embedding(index, table)
    if op == "getitem":
        x = leaf(lib, rng.standard_normal((size, 3)) if case["dim"] == 0 else rng.standard_normal((3, size)))
        return [x], x[index] if case["dim"] == 0 else x[:, index]
    if op == "getitem_mask":
        x = leaf(lib, rng.standard_normal((size, 2)))
        return [x], x[index]
    if op == "setitem":  # index_put
        x = leaf(lib, rng.standard_normal((size, 3)))
        value = leaf(lib, rng.standard_normal((count, 3)))
        y = x * 1
        y[index] = value
        return [x, value], y
    logits = leaf(lib, rng.standard_normal((count, size)))
    loss = F.cross_entropy if op == "cross_entropy" else F.nll_loss
    return [logits], loss(logits, index, ignore_index=case["ignore_index"], reduction=case["reduction"])


def mutate(lib, case, index):
    kind = case["mutation"]
    if kind == "add":
        index += case["delta"]
    elif kind == "copy":
        index.copy_(lib.tensor(case["replacement"], dtype=index.dtype))
    elif kind == "numpy":
        index.numpy()[case["position"] % index.shape[0]] = case["value"]


def outcome(lib, F, case):
    index = lib.tensor(np.array(case["indices"], dtype=bool if case["op"] == "getitem_mask" else np.int64))
    try:
        leaves, output = forward(lib, F, case, index)
    except Exception as error:  # noqa: BLE001 - the class is the result
        return f"forward:{type(error).__name__}", None
    try:
        mutate(lib, case, index)
    except Exception as error:  # noqa: BLE001
        return f"mutate:{type(error).__name__}", None
    if lib is torch and case["torch_unsafe"]:
        return "unsafe", None
    try:
        output.sum().backward()
    except Exception as error:  # noqa: BLE001
        return f"backward:{type(error).__name__}", None
    return "ok", [np.asarray(leaf.grad.numpy(), np.float64) for leaf in leaves]


for case in json.load(sys.stdin):
    (torch_outcome, torch_grads), (our_outcome, our_grads) = (outcome(lib, F, case) for lib, nn, F in LIBRARIES)
    match = None
    if torch_grads is not None and our_grads is not None:
        match = all(np.allclose(ours, theirs, rtol=1e-10, atol=1e-12, equal_nan=True)
                    for ours, theirs in zip(our_grads, torch_grads))
    print("CASE " + json.dumps({"torch": torch_outcome, "nbprop": our_outcome, "gradients_match": match}),
          flush=True)
'''

SIZE = 5  # rows of the table / classes; hostile values are relative to it
HOSTILE = [SIZE, SIZE + 1, -SIZE - 1, 10**9, -10**9, 2**62, -2**62, 2**63 - 1, -2**63]
integers = st.one_of(st.integers(-SIZE, SIZE - 1), st.sampled_from(HOSTILE))


@st.composite
def cases(draw):
    op = draw(st.sampled_from(["embedding", "getitem", "getitem_mask", "setitem", "cross_entropy", "nll_loss"]))
    count = draw(st.integers(1, 4))
    if op == "getitem_mask":
        indices = draw(st.lists(st.booleans(), min_size=SIZE, max_size=SIZE))
        values = st.booleans()
    else:
        # Mostly valid indices, so that the forward passes and the mutation after it is what gets tested.
        valid = st.integers(0, SIZE - 1) if op != "getitem" and op != "setitem" else st.integers(-SIZE, SIZE - 1)
        indices = draw(st.lists(st.one_of(valid, valid, valid, integers), min_size=count, max_size=count))
        values = integers
    case = {"op": op, "size": SIZE, "indices": indices, "seed": draw(st.integers(0, 2**16)),
            "dim": draw(st.sampled_from([0, 1])), "ignore_index": draw(st.sampled_from([-100, -1, 0, SIZE])),
            "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    mutations = [None, "copy", "numpy"] if op == "getitem_mask" else [None, "add", "copy", "numpy", "numpy"]
    case["mutation"] = draw(st.sampled_from(mutations))
    case["delta"] = draw(st.sampled_from([1, SIZE, 10**9, -10**9, -1]))
    case["replacement"] = draw(st.lists(values, min_size=len(indices), max_size=len(indices)))
    case["position"] = draw(st.integers(0, 7))
    case["value"] = draw(values)
    return case


def torch_is_unsafe(case):
    """PyTorch's nll_loss backward with reduction='none' does not check its targets: a class written out of
    range through .numpy() writes out of bounds there (glibc aborts: "double free or corruption"). PyTorch's
    backward is not run on those cases; nbprop raises the IndexError PyTorch raises for the other reductions."""
    return (case["op"] in ("cross_entropy", "nll_loss") and case["reduction"] == "none"
            and case["mutation"] == "numpy" and case["value"] != case["ignore_index"]
            and not 0 <= case["value"] < case["size"])


def expected_outcome(case, torch_outcome):
    """PyTorch's outcome, except where a write through .numpy() leaves PyTorch silently wrong and nbprop raises:
    PyTorch's embedding backward skips indices moved out of range (their gradient is lost), and a mask that
    selected one element and now selects another number has its single gradient row broadcast to them all."""
    if torch_outcome == "unsafe":
        return "backward:IndexError"
    if case["mutation"] != "numpy" or torch_outcome != "ok":
        return torch_outcome
    if case["op"] == "embedding" and not 0 <= case["value"] < case["size"]:
        return "backward:IndexError"
    if case["op"] == "getitem_mask":
        mask = list(case["indices"])
        mask[case["position"] % len(mask)] = case["value"]
        if sum(mask) != sum(case["indices"]):
            return "backward:RuntimeError"
    return torch_outcome


def check_batch(batch, threshold=None):
    batch = [dict(case, torch_unsafe=torch_is_unsafe(case)) for case in batch]
    completed = _run(CHILD, batch, threshold)
    results = [json.loads(line[5:]) for line in completed.stdout.splitlines() if line.startswith("CASE ")]
    if completed.returncode != 0:
        crashed = batch[len(results)] if len(results) < len(batch) else None
        pytest.fail(f"the child exited with {completed.returncode} (a crash if negative) at case {crashed}\n"
                    f"{completed.stderr[-3000:]}")
    assert len(results) == len(batch)
    mismatches = [(case, result) for case, result in zip(batch, results)
                  if result["nbprop"] != expected_outcome(case, result["torch"])
                  or result["gradients_match"] not in (None, True)]
    assert not mismatches, "\n".join(f"{case}\n    -> {result}" for case, result in mismatches)


# No shrinking: each example is a child process, and the message lists every failing case of the batch.
@settings(max_examples=2, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(st.lists(cases(), min_size=100, max_size=100))
def test_fuzz_index_ops_match_pytorch_errors(batch):
    check_batch(batch)


# The hostile values of every op and mutation, always run, once through the threaded kernel variants.
CORNERS = [
    {"op": op, "size": SIZE, "indices": [0, 1, 2], "seed": 0, "dim": dim, "ignore_index": -100, "reduction": "mean",
     "mutation": mutation, "delta": value, "replacement": [value, 0, 1], "position": 1, "value": value}
    for op in ("embedding", "getitem", "setitem", "cross_entropy", "nll_loss")
    for dim in ((0, 1) if op == "getitem" else (0,))
    for mutation in ("add", "copy", "numpy")
    for value in (SIZE, -1, 10**9, -10**9, 2**62)
] + [
    {"op": op, "size": SIZE, "indices": [0, value, 1], "seed": 0, "dim": 0, "ignore_index": -100, "reduction": "sum",
     "mutation": None, "delta": 0, "replacement": [0, 0, 0], "position": 0, "value": 0}
    for op in ("embedding", "getitem", "setitem", "cross_entropy", "nll_loss")
    for value in (SIZE, -1, -SIZE, -SIZE - 1, 10**9, -10**9, 2**62, -2**63)
]


@pytest.mark.parametrize("threshold", [None, 1])
def test_hostile_corner_cases_match_pytorch_errors(threshold):
    check_batch(CORNERS, threshold)
