"""Embedding: a lookup table of rows indexed by integers, with an untrained padding row."""

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.creation import resolve_device
from nbprop.grad_mode import no_grad
from nbprop.nn import init
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from nbprop.ops.embedding import embedding
from nbprop.tensor import Tensor


def _padding_index(padding_idx, num_embeddings):
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"Padding_idx must be within num_embeddings (got {padding_idx} for "
                         f"{num_embeddings})")
    return padding_idx % num_embeddings if padding_idx < 0 else padding_idx


class Embedding(Module):
    """weight (num_embeddings, embedding_dim), initialised N(0, 1) with the `padding_idx` row zeroed (as in
    PyTorch); forward(indices) returns weight[indices]. The padding row receives no gradient.

    max_norm, scale_grad_by_freq and sparse are PyTorch's arguments; only their defaults are supported.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None,
                 dtype=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        device = resolve_device(device, "Embedding")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = _padding_index(padding_idx, self.num_embeddings)
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            resolved = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
            table = DEVICES[device].empty((self.num_embeddings, self.embedding_dim), resolved)
            self.weight = Parameter(Tensor._make(table, None, device), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {tuple(_weight.shape)} does not match "
                                 f"({self.num_embeddings}, {self.embedding_dim})")
            self.weight = Parameter(_weight.detach(), requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self):
        if self.padding_idx is not None:
            with no_grad():
                DEVICES[self.weight.device].write_region(self.weight._data, (self.padding_idx,), 0)
                self.weight._version_counter[0] += 1

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight holds `embeddings` (2-D; its storage is shared); frozen by default."""
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, columns = embeddings.shape
        return cls(rows, columns, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)
