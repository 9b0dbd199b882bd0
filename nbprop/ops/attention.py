"""scaled_dot_product_attention: a fused flash-attention Function, and the unfused math that defines it."""

import math
import numbers

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.grad_mode import no_grad
from nbprop.ops import movement
from nbprop.ops.gather import masked_fill
from nbprop.ops.linear import dropout
from nbprop.ops.matmul import matmul
from nbprop.ops.softmax import softmax
from nbprop.tensor import Tensor

# Query rows per tile; key columns per tile are chosen so that each tile product (m * n * k) stays within
# OpenBLAS's single-thread size (262,144): larger products called from prange threads start BLAS threads
# against Numba's (a 128 x 128 x 32 tile took 1.1 s instead of 6 ms for the batch of the benchmark).
BLOCK_QUERIES = 64
_SINGLE_THREAD_PRODUCT = 262_144


class AttentionPlan:
    """How one call maps onto the kernels: the stacked shapes, the head group, the additive mask as a stack
    (masks, L, S) with the mask each query head reads, the causal flag, the scale and the tile sizes."""

    __slots__ = ("block_keys", "causal", "group", "heads", "key_heads", "lead", "mask", "mask_index",
                 "mask_tensor", "scale")

    def __init__(self, query, key, value, mask_tensor, causal, scale, group):
        self.lead = tuple(query.shape[:-2])
        self.heads = math.prod(self.lead)
        self.group = group
        self.key_heads = self.heads // group
        self.causal = causal
        self.scale = scale
        self.mask_tensor = mask_tensor
        width = max(query.shape[-1], value.shape[-1], 1)
        self.block_keys = max(16, min(128, _SINGLE_THREAD_PRODUCT // (BLOCK_QUERIES * width)))
        device = DEVICES[query.device]
        length, keys = query.shape[-2], key.shape[-2]
        if mask_tensor is None:
            self.mask = device.zeros((1, 1, 1), query.dtype)
            self.mask_index = device.zeros((max(self.heads, 1),), np.int64)
            return
        padded = (1,) * (len(self.lead) + 2 - mask_tensor.ndim) + tuple(mask_tensor.shape)
        mask_lead = padded[:-2]
        # One (L, S) matrix per distinct leading index of the mask: a key-padding mask (N, 1, 1, S) becomes N
        # matrices, not one per head; head h reads matrix mask_index[h].
        array = device.expand(device.reshape(mask_tensor._data, padded), mask_lead + (length, keys))
        self.mask = device.reshape(device.contiguous(array), (math.prod(mask_lead), length, keys))
        index = device.expand(device.reshape(device.arange(0, math.prod(mask_lead), 1, np.int64), mask_lead),
                              self.lead)
        self.mask_index = device.reshape(device.contiguous(index), (self.heads,))

    def stacks(self, query, key, value, device):
        """The inputs as C-contiguous (heads, L, E), (key_heads, S, E), (key_heads, S, Ev) arrays."""
        return (device.contiguous(device.reshape(query._data, (self.heads,) + tuple(query.shape[-2:]))),
                device.contiguous(device.reshape(key._data, (self.key_heads,) + tuple(key.shape[-2:]))),
                device.contiguous(device.reshape(value._data, (self.key_heads,) + tuple(value.shape[-2:]))))


# ------------------------------------------------------------------------------------------- the math


def _expanded_keys(tensor, plan):
    """(key_heads, S, X) -> (heads, S, X): each key head repeated for its group of query heads."""
    stacked = movement.reshape(tensor, (plan.key_heads,) + tuple(tensor.shape[-2:]))
    if plan.group == 1:
        return stacked
    shape = (plan.key_heads, plan.group) + tuple(tensor.shape[-2:])
    return movement.reshape(movement.reshape(stacked, (plan.key_heads, 1) + tuple(tensor.shape[-2:])).expand(*shape),
                            (plan.heads,) + tuple(tensor.shape[-2:]))


def _group_sum(tensor, plan):
    """(heads, S, X) -> (key_heads, S, X): the sum over each key head's group of query heads."""
    if plan.group == 1:
        return tensor
    return movement.reshape(tensor, (plan.key_heads, plan.group) + tuple(tensor.shape[-2:])).sum(1)


def _probabilities(query, key, plan):
    """softmax(q k^T * scale + mask) over (heads, L, S) in recorded ops; rows with every key masked give 0."""
    length, keys = query.shape[-2], key.shape[-2]
    stacked_query = movement.reshape(query, (plan.heads, length, query.shape[-1]))
    scores = matmul(stacked_query, movement.transpose(_expanded_keys(key, plan), 1, 2)) * plan.scale
    if plan.mask_tensor is not None:
        scores = movement.reshape(movement.reshape(scores, plan.lead + (length, keys)) + plan.mask_tensor,
                                  (plan.heads, length, keys))
    if plan.causal:
        device = DEVICES[query.device]
        rows = Tensor._make(device.reshape(device.arange(0, length, 1, np.int64), (length, 1)), None, query.device)
        columns = Tensor._make(device.arange(0, keys, 1, np.int64), None, query.device)
        scores = masked_fill(scores, columns > rows, -math.inf)  # top-left aligned: key j after query i is hidden
    with no_grad():
        dead = scores.detach().amax(-1, keepdim=True) == -math.inf
    # A fully masked row is given finite scores before the softmax (so no NaN reaches its gradient), then 0.
    return masked_fill(softmax(masked_fill(scores, dead, 0.0), -1), dead, 0.0)


def attention_math(query, key, value, plan, dropout_p=0.0):
    """The unfused attention in recorded public ops (full (heads, L, S) probabilities): the definition the
    fused kernels follow, the dropout path, and the path for a mask that requires grad."""
    probabilities = _probabilities(query, key, plan)
    if dropout_p > 0:
        probabilities = dropout(probabilities, dropout_p, training=True)
    out = matmul(probabilities, _expanded_keys(value, plan))
    return movement.reshape(out, plan.lead + (query.shape[-2], value.shape[-1]))


class ScaledDotProductAttention(Function):
    @staticmethod
    def forward(ctx, query, key, value, plan):
        device = DEVICES[query.device]
        query_stack, key_stack, value_stack = plan.stacks(query, key, value, device)
        length, value_width = query.shape[-2], value.shape[-1]
        out = device.empty((plan.heads, length, value_width), query.dtype)
        logsumexp = device.empty((plan.heads, length), np.float64)
        device.call("attention_forward", query_stack, key_stack, value_stack, plan.group, plan.mask, plan.mask_index,
                    plan.mask_tensor is not None, plan.causal, np.dtype(query.dtype).type(plan.scale),
                    BLOCK_QUERIES, plan.block_keys, out, logsumexp, work=plan.heads * length * key.shape[-2])
        result = Tensor._make(device.reshape(out, plan.lead + (length, value_width)), None, query.device)
        ctx.save_for_backward(query, key, value, result)
        # The stacks are views of the saved tensors when those are contiguous (saved_tensors checks versions).
        ctx.plan, ctx.arrays = plan, (query_stack, key_stack, value_stack, out, logsumexp)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, _ = ctx.saved_tensors
        plan = ctx.plan
        query_stack, key_stack, value_stack, out, logsumexp = ctx.arrays
        device = DEVICES[grad_output.device]
        grad_stack = device.contiguous(device.reshape(grad_output._data, out.shape))
        grads = tuple(device.empty(array.shape, array.dtype) for array in (query_stack, key_stack, value_stack))
        device.call("attention_backward", grad_stack, query_stack, key_stack, value_stack, plan.group, out, logsumexp,
                    plan.mask, plan.mask_index, plan.mask_tensor is not None, plan.causal,
                    np.dtype(query.dtype).type(plan.scale), BLOCK_QUERIES, plan.block_keys, *grads,
                    work=plan.heads * query.shape[-2] * key.shape[-2])
        return tuple(Tensor._make(device.reshape(grad, tensor.shape), None, grad_output.device) if needed else None
                     for grad, tensor, needed in zip(grads, (query, key, value), ctx.needs_input_grad)) + (None,)

    @staticmethod
    def backward_graph(ctx, grad_output):
        # The flash backward's formulas in recorded ops over the recomputed (heads, L, S) probabilities: exact,
        # and as slow and large as the unfused attention.
        query, key, value, _ = ctx.saved_tensors
        plan = ctx.plan
        length = query.shape[-2]
        grads = movement.reshape(grad_output, (plan.heads, length, value.shape[-1]))
        probabilities = _probabilities(query, key, plan)
        grad_value = _group_sum(matmul(movement.transpose(probabilities, 1, 2), grads), plan)
        grad_probabilities = matmul(grads, movement.transpose(_expanded_keys(value, plan), 1, 2))
        grad_scores = probabilities * (grad_probabilities - (grad_probabilities * probabilities).sum(-1, keepdim=True))
        grad_scores = grad_scores * plan.scale
        grad_query = matmul(grad_scores, _expanded_keys(key, plan))
        grad_key = _group_sum(matmul(movement.transpose(grad_scores, 1, 2),
                                     movement.reshape(query, (plan.heads, length, query.shape[-1]))), plan)
        needs = ctx.needs_input_grad
        return (movement.reshape(grad_query, query.shape) if needs[0] else None,
                movement.reshape(grad_key, key.shape) if needs[1] else None,
                movement.reshape(grad_value, value.shape) if needs[2] else None, None)


# ------------------------------------------------------------------------------------------- checks


def _describe(tensor):
    return f"{tuple(tensor.shape)} {tensor.dtype}"


def _check(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """The head group size, or a clear error naming what does not fit."""
    op = "scaled_dot_product_attention"
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(tensor).__name__}")
        if tensor.dtype.kind != "f":
            raise RuntimeError(f"{op}: expected floating-point query, key and value, but {name} is {tensor.dtype}")
        if tensor.ndim < 2:
            raise RuntimeError(f"{op}: {name} must have at least 2 dimensions (..., sequence, features), got shape "
                               f"{tuple(tensor.shape)}")
    if not (query.dtype == key.dtype == value.dtype):
        raise RuntimeError(f"{op}: expected query, key and value to have the same dtype, got query "
                           f"{_describe(query)}, key {_describe(key)}, value {_describe(value)}")
    if not (query.device == key.device == value.device):
        raise RuntimeError(f"{op}: expected query, key and value on one device, got {query.device}, {key.device}, "
                           f"{value.device}")
    if not (query.ndim == key.ndim == value.ndim):
        raise RuntimeError(f"{op}: query, key and value must have the same number of dimensions, got shapes "
                           f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"{op}: query and key must have the same embedding size (last dimension), got query "
                           f"{tuple(query.shape)} and key {tuple(key.shape)}")
    if key.shape[:-1] != value.shape[:-1]:
        raise RuntimeError(f"{op}: key and value must agree in every dimension but the last, got key "
                           f"{tuple(key.shape)} and value {tuple(value.shape)}")
    group = 1
    if enable_gqa and query.ndim >= 3 and query.shape[-3] != key.shape[-3]:
        if key.shape[-3] == 0 or query.shape[-3] % key.shape[-3]:
            raise RuntimeError(f"{op}: with enable_gqa the number of query heads ({query.shape[-3]}) must be a "
                               f"multiple of the number of key/value heads ({key.shape[-3]})")
        group = query.shape[-3] // key.shape[-3]
        if query.shape[:-3] != key.shape[:-3]:
            raise RuntimeError(f"{op}: query {tuple(query.shape)} and key {tuple(key.shape)} must have the same "
                               f"batch dimensions")
    elif query.shape[:-2] != key.shape[:-2]:
        raise RuntimeError(f"{op}: query {tuple(query.shape)} and key {tuple(key.shape)} must have the same batch "
                           f"and head dimensions (broadcasting between them is not supported"
                           f"{'' if enable_gqa else '; grouped heads need enable_gqa=True'})")
    if not isinstance(dropout_p, numbers.Real) or not 0 <= dropout_p <= 1:
        raise ValueError(f"{op}: dropout_p must be between 0 and 1, got {dropout_p}")
    if scale is not None and not isinstance(scale, numbers.Real):
        raise TypeError(f"{op}: scale must be a number or None, got {type(scale).__name__}")
    if attn_mask is not None:
        if is_causal:
            raise RuntimeError(f"{op}: explicit attn_mask should not be set when is_causal=True")
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor or None, got {type(attn_mask).__name__}")
        if attn_mask.dtype.kind != "b" and attn_mask.dtype != query.dtype:
            raise RuntimeError(f"{op}: expected attn_mask dtype to be bool or to match query dtype {query.dtype}, "
                               f"got {attn_mask.dtype}")
        if attn_mask.device != query.device:
            raise RuntimeError(f"{op}: attn_mask is on {attn_mask.device}, query on {query.device}")
        target = tuple(query.shape[:-2]) + (query.shape[-2], key.shape[-2])
        shape = tuple(attn_mask.shape)
        if len(shape) > len(target) or any(size not in (1, wanted) for size, wanted in
                                           zip(shape[::-1], target[::-1])):
            raise RuntimeError(f"{op}: attn_mask of shape {shape} cannot be broadcast to the attention shape "
                               f"{target} (batch..., L, S)")
    return group


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """torch.nn.functional.scaled_dot_product_attention: softmax(q k^T * scale + mask) @ v.

    query (..., L, E), key (..., S, E), value (..., S, Ev) with the same leading dimensions (or, with
    enable_gqa, key/value heads in dimension -3 dividing the query heads); attn_mask bool (True = attend) or
    additive in query's dtype, broadcastable to (..., L, S); is_causal hides keys after each query (top-left
    aligned); scale defaults to 1 / sqrt(E). Rows whose keys are all masked give 0 (as PyTorch's CPU kernels).

    Fused path (dropout_p == 0 and a mask that does not require grad): online softmax over key tiles, parallel
    over heads, saving only each row's logsumexp; the backward recomputes the tiles. Otherwise the unfused
    math in recorded ops (dropout draws from nbprop's generator, as nn.functional.dropout does).
    """
    group = _check(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    mask_tensor = attn_mask
    if attn_mask is not None and attn_mask.dtype.kind == "b":
        with no_grad():
            zeros = Tensor._make(DEVICES[query.device].zeros(tuple(attn_mask.shape), query.dtype), None, query.device)
            mask_tensor = masked_fill(zeros, ~attn_mask, -math.inf)
    plan = AttentionPlan(query, key, value, mask_tensor, bool(is_causal), scale, group)
    if dropout_p > 0 or (mask_tensor is not None and mask_tensor.requires_grad):
        return attention_math(query, key, value, plan, dropout_p)
    return ScaledDotProductAttention.apply(query, key, value, plan)
