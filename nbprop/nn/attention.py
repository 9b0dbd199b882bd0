"""MultiheadAttention (torch.nn's arguments, parameters and masks) and sinusoidal and learned positional encodings."""

import math

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.creation import resolve_device
from nbprop.grad_mode import no_grad
from nbprop.nn import init
from nbprop.nn.linear import Linear
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from nbprop.ops import movement
from nbprop.ops.attention import scaled_dot_product_attention
from nbprop.ops.gather import masked_fill
from nbprop.ops.linear import dropout, linear
from nbprop.ops.matmul import matmul
from nbprop.ops.softmax import softmax
from nbprop.tensor import Tensor


def _empty_parameter(shape, dtype, device):
    resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    if resolved.kind != "f":
        raise TypeError(f"layer parameters must be floating point, got dtype {resolved}")
    return Parameter(Tensor._make(DEVICES[device].empty(shape, resolved), None, device))


def canonical_mask(mask, name, dtype):
    """A mask as PyTorch's attention layers read it: a bool mask (True = do not attend) becomes an additive mask
    of `dtype` (-inf where True, 0 elsewhere); a float mask must already have `dtype` and is added as it is."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"MultiheadAttention: {name} must be a Tensor or None, got {type(mask).__name__}")
    if mask.dtype.kind == "b":
        with no_grad():
            zeros = Tensor._make(DEVICES[mask.device].zeros(tuple(mask.shape), dtype), None, mask.device)
            return masked_fill(zeros, mask, -math.inf)
    if mask.dtype != dtype:
        raise RuntimeError(f"MultiheadAttention: only bool and floating types of {name} are supported, and a float "
                           f"{name} must match the query dtype {dtype}, got {mask.dtype}")
    return mask


def _check_inputs(query, key, value, key_padding_mask, attn_mask, embed_dim, num_heads, kdim, vdim, batched):
    """PyTorch's shape checks of multi_head_attention_forward, with messages that name the shapes."""
    if query.shape[-1] != embed_dim:
        raise AssertionError(f"MultiheadAttention: was expecting embedding dimension of {embed_dim}, but got query "
                             f"of shape {tuple(query.shape)}")
    if key.shape[-1] != kdim or value.shape[-1] != vdim:
        raise AssertionError(f"MultiheadAttention: expected key (..., {kdim}) and value (..., {vdim}) features, got "
                             f"key {tuple(key.shape)} and value {tuple(value.shape)}")
    if key.ndim != query.ndim or value.ndim != query.ndim or key.shape[:-1] != value.shape[:-1]:
        raise AssertionError(f"MultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} must have "
                             f"the same sequence and batch sizes, and as many dimensions as query {tuple(query.shape)}")
    if batched and key.shape[1] != query.shape[1]:
        raise AssertionError(f"MultiheadAttention: query {tuple(query.shape)} and key {tuple(key.shape)} must have "
                             f"the same batch size")
    length, keys = query.shape[0], key.shape[0]
    batch = query.shape[1] if batched else 1
    if key_padding_mask is not None:
        expected = (batch, keys) if batched else (keys,)
        if tuple(key_padding_mask.shape) != expected:
            raise RuntimeError(f"MultiheadAttention: key_padding_mask must have shape {expected} (batch, source "
                               f"length), got {tuple(key_padding_mask.shape)}")
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (length, keys):
                raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(length, keys)}.")
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (batch * num_heads, length, keys):
                raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(batch * num_heads, length, keys)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported (2-D (L, S) or 3-D "
                               f"(N * num_heads, L, S))")


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: softmax(q k^T / sqrt(head_dim) + mask) v over num_heads heads, projected.

    Parameters as PyTorch names them: in_proj_weight (3E, E) when kdim == vdim == embed_dim, else q_proj_weight
    (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim); in_proj_bias (3E,); out_proj (a Linear). Inputs
    are (L, N, E) or, with batch_first, (N, L, E), or unbatched (L, E). key_padding_mask (N, S) and attn_mask
    (L, S) or (N * num_heads, L, S) are bool (True = do not attend) or additive. need_weights=False goes
    through the fused scaled_dot_product_attention; need_weights=True computes the weights unfused and returns
    them averaged over heads (average_attn_weights) or per head. add_bias_kv and add_zero_attn are not supported.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise AssertionError(f"MultiheadAttention: embed_dim must be divisible by num_heads, got embed_dim="
                                 f"{embed_dim} and num_heads={num_heads}")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        device = resolve_device(device, "MultiheadAttention")
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _empty_parameter((3 * embed_dim, embed_dim), dtype, device)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = _empty_parameter((embed_dim, embed_dim), dtype, device)
            self.k_proj_weight = _empty_parameter((embed_dim, self.kdim), dtype, device)
            self.v_proj_weight = _empty_parameter((embed_dim, self.vdim), dtype, device)
        if bias:
            self.in_proj_bias = _empty_parameter((3 * embed_dim,), dtype, device)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        """PyTorch's: xavier_uniform_ projections, zero biases; out_proj's weight keeps Linear's initialisation."""
        with no_grad():
            if self._qkv_same_embed_dim:
                init.xavier_uniform_(self.in_proj_weight)
            else:
                init.xavier_uniform_(self.q_proj_weight)
                init.xavier_uniform_(self.k_proj_weight)
                init.xavier_uniform_(self.v_proj_weight)
            if self.in_proj_bias is not None:
                init.constant_(self.in_proj_bias, 0.0)
                init.constant_(self.out_proj.bias, 0.0)

    def _projections(self, query, key, value):
        """(q, k, v) = the input projections; one product for self-attention with a packed weight."""
        embed_dim = self.embed_dim
        biases = (None, None, None)
        if self.in_proj_bias is not None:
            biases = movement.split(self.in_proj_bias, embed_dim)
        if self._qkv_same_embed_dim:
            if query is key and key is value:
                return movement.split(linear(query, self.in_proj_weight, self.in_proj_bias), embed_dim, -1)
            weights = movement.split(self.in_proj_weight, embed_dim)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        return tuple(linear(tensor, weight, bias) for tensor, weight, bias in zip((query, key, value), weights, biases))

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,  # noqa: C901
                average_attn_weights=True, is_causal=False):
        batched = query.ndim == 3
        if query.ndim not in (2, 3):
            raise AssertionError(f"MultiheadAttention: query should be unbatched 2-D or batched 3-D, got shape "
                                 f"{tuple(query.shape)}")
        if self.batch_first and batched:
            # (N, L, E) -> (L, N, E), keeping `is` between query, key and value for the packed projection.
            if key is value:
                if query is key:
                    query = key = value = movement.transpose(query, 0, 1)
                else:
                    query, key = movement.transpose(query, 0, 1), movement.transpose(key, 0, 1)
                    value = key
            else:
                query, key, value = (movement.transpose(tensor, 0, 1) for tensor in (query, key, value))
        _check_inputs(query, key, value, key_padding_mask, attn_mask, self.embed_dim, self.num_heads, self.kdim,
                      self.vdim, batched)
        if not batched:  # one sequence: a batch of one, squeezed again at the end
            query, key, value = (movement.unsqueeze(tensor, 1) for tensor in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else movement.unsqueeze(key_padding_mask, 0)
        length, batch, embed_dim = query.shape
        keys, heads, head_dim = key.shape[0], self.num_heads, self.head_dim
        key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", query.dtype)
        if is_causal and attn_mask is None:
            raise RuntimeError("MultiheadAttention: need attn_mask if specifying the is_causal hint (the causal mask "
                               "itself, as PyTorch requires)")
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None  # the hint alone: the fused kernel applies the causal mask
        else:
            attn_mask = canonical_mask(attn_mask, "attn_mask", query.dtype)
            if key_padding_mask is not None:
                is_causal = False
        q, k, v = self._projections(query, key, value)
        # (L, N, E) -> (N, H, L, head_dim): the heads side by side, as PyTorch views them.
        q, k, v = (movement.permute(movement.reshape(tensor, (tensor.shape[0], batch, heads, head_dim)), (1, 2, 0, 3))
                   for tensor in (q, k, v))
        mask = None
        if attn_mask is not None:
            mask = movement.reshape(attn_mask, (1, 1, length, keys) if attn_mask.ndim == 2
                                    else (batch, heads, length, keys))
        if key_padding_mask is not None:
            padding = movement.reshape(key_padding_mask, (batch, 1, 1, keys))
            mask = padding if mask is None else mask + padding
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = matmul(q * math.sqrt(1.0 / head_dim), movement.transpose(k, -2, -1))
            if mask is not None:
                scores = scores + mask
            weights = softmax(scores, -1)
            attended = dropout(weights, dropout_p) if dropout_p > 0 else weights
            out = matmul(attended, v)
            if average_attn_weights:
                weights = weights.mean(1)
            if not batched:
                weights = movement.squeeze(weights, 0)
        else:
            out = scaled_dot_product_attention(q, k, v, mask, dropout_p, bool(is_causal))
        # (N, H, L, head_dim) -> (L, N, E), then the output projection.
        out = movement.reshape(movement.permute(out, (2, 0, 1, 3)), (length, batch, embed_dim))
        out = self.out_proj(out)
        if not batched:
            out = movement.squeeze(out, 1)
        elif self.batch_first:
            out = movement.transpose(out, 0, 1)
        return out, weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def _check_positions(layer, x, max_len, batch_first):
    length = x.shape[1] if batch_first and x.ndim == 3 else x.shape[0]
    if length > max_len:
        raise ValueError(f"{layer}: sequence of length {length} (input shape {tuple(x.shape)}) is longer than "
                         f"max_len={max_len}")
    return length


def sinusoidal_table(max_len, d_model, device):
    """The (max_len, d_model) float64 table PE[p, 2i] = sin(p w_i), PE[p, 2i + 1] = cos(p w_i), w_i =
    10000^(-2i / d_model), computed on `device`."""
    backend = DEVICES[device]
    half = (d_model + 1) // 2
    positions = Tensor._make(backend.reshape(backend.arange(0, max_len, 1, np.float64), (max_len, 1)), None, device)
    steps = Tensor._make(backend.arange(0, 2 * half, 2, np.float64), None, device)
    angles = positions * (steps * (-math.log(10000.0) / d_model)).exp()
    table = movement.stack([angles.sin(), angles.cos()], -1)
    return movement.reshape(table, (max_len, 2 * half))[:, :d_model].contiguous()


class SinusoidalPositionalEncoding(Module):
    """x + PE[:L] with PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)) ("Attention Is All
    You Need"), then dropout. nbprop-specific: PyTorch has no such module. Inputs (L, N, d_model), or with
    batch_first (N, L, d_model), or (L, d_model). The table is a non-persistent buffer (not in state_dict)."""

    def __init__(self, d_model, max_len=5000, dropout=0.0, batch_first=False, device=None, dtype=None):
        super().__init__()
        device = resolve_device(device, "SinusoidalPositionalEncoding")
        self.d_model, self.max_len, self.batch_first, self.p = d_model, max_len, batch_first, dropout
        resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model, device).to(resolved), persistent=False)

    def forward(self, x):
        length = _check_positions("SinusoidalPositionalEncoding", x, self.max_len, self.batch_first)
        table = self.pe[:length]
        if x.ndim == 3:
            table = movement.unsqueeze(table, 0 if self.batch_first else 1)
        return dropout(x + table, self.p, self.training)

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}, dropout={self.p}"


class LearnedPositionalEncoding(Module):
    """x + weight[:L], a trained (max_len, d_model) table initialised N(0, 0.02^2) (GPT-2's), then dropout.
    nbprop-specific; same input layouts as SinusoidalPositionalEncoding."""

    def __init__(self, max_len, d_model, dropout=0.0, batch_first=False, device=None, dtype=None):
        super().__init__()
        device = resolve_device(device, "LearnedPositionalEncoding")
        self.max_len, self.d_model, self.batch_first, self.p = max_len, d_model, batch_first, dropout
        self.weight = _empty_parameter((max_len, d_model), dtype, device)
        self.reset_parameters()

    def reset_parameters(self):
        with no_grad():
            init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x):
        length = _check_positions("LearnedPositionalEncoding", x, self.max_len, self.batch_first)
        table = self.weight[:length]
        if x.ndim == 3:
            table = movement.unsqueeze(table, 0 if self.batch_first else 1)
        return dropout(x + table, self.p, self.training)

    def extra_repr(self):
        return f"max_len={self.max_len}, d_model={self.d_model}, batch_first={self.batch_first}, dropout={self.p}"
