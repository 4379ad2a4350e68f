"""The transformer block, shared by every transformer of the book.

One `Block` is attention followed by an MLP, each wrapped in a residual connection and a
normalisation. Its options switch between the families of models::

    pre-LN  (GPT-2, Llama):  x = x + attn(norm1(x));  x = x + mlp(norm2(x))
    post-LN (BERT):          x = norm1(x + attn(x));  x = norm2(x + mlp(x))

with LayerNorm or `RMSNorm`, a GELU MLP (``fc``, ``proj``) or a SwiGLU one (``gate_proj``,
``up_proj``, ``down_proj``), biases or none, and grouped-query attention.
`KVCache` keeps the keys and values of past tokens so that a decoder computes each new
token once. The sentence classifier (`nlpbook.textclf.TransformerClassifier`), the GPT, the
BERT and the translator are built from these blocks.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlpbook.attention import MultiHeadAttention

Norm = Literal["layer", "rms"]
MLPKind = Literal["gelu", "gelu_tanh", "swiglu"]


def init_weights(module: nn.Module) -> None:
    """GPT-2's and BERT's initialisation, for `nn.Module.apply`: N(0, 0.02) for every matrix
    and embedding table, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019): ``x / rms(x) * weight``.

    LayerNorm without subtracting the mean and without a bias; computed in float32 and
    equal to Hugging Face's ``LlamaRMSNorm``.
    """

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def make_norm(kind: Norm, dim: int, *, eps: float, bias: bool = True) -> nn.Module:
    """``"layer"`` (LayerNorm, with a bias if `bias`) or ``"rms"`` (`RMSNorm`)."""
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rms":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"norm must be 'layer' or 'rms', got {kind!r}")


class MLP(nn.Module):
    """Position-wise feed-forward network: ``proj(gelu(fc(x)))``, C -> d_ff -> C.

    ``approximate="tanh"`` is GPT-2's GELU; BERT uses the exact one.
    """

    def __init__(self, d_model: int, d_ff: int, *, bias: bool = True, approximate: str = "none"):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate=self.approximate))


class SwiGLU(nn.Module):
    """Gated feed-forward network of Llama (Shazeer 2020): ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, d_model: int, d_ff: int, *, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """One transformer layer: attention and an MLP, each with a residual and a norm.

    ``forward(x (B, T, C), *, mask=None, is_causal=False, rope=None, cache=None)
    -> (B, T, C)``; the keywords go to `MultiHeadAttention`.
    """

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,  # None: as many as n_heads
        d_ff: int,
        norm: Norm = "layer",
        norm_eps: float = 1e-5,
        mlp: MLPKind = "gelu",
        prenorm: bool = True,  # False: post-LN, as in the original transformer and BERT
        bias: bool = True,  # in every Linear and LayerNorm
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.prenorm = prenorm
        self.attn = MultiHeadAttention(
            d_model, n_heads, n_kv_heads=n_kv_heads, bias=bias, dropout=dropout
        )
        self.norm1 = make_norm(norm, d_model, eps=norm_eps, bias=bias)
        self.norm2 = make_norm(norm, d_model, eps=norm_eps, bias=bias)
        if mlp == "swiglu":
            self.mlp: nn.Module = SwiGLU(d_model, d_ff, bias=bias)
        elif mlp in ("gelu", "gelu_tanh"):
            approximate = "tanh" if mlp == "gelu_tanh" else "none"
            self.mlp = MLP(d_model, d_ff, bias=bias, approximate=approximate)
        else:
            raise ValueError(f"mlp must be 'gelu', 'gelu_tanh' or 'swiglu', got {mlp!r}")
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: LayerKV | None = None,
    ) -> Tensor:
        def attend(h: Tensor) -> Tensor:
            return self.drop(self.attn(h, mask=mask, is_causal=is_causal, rope=rope, cache=cache))

        if self.prenorm:
            x = x + attend(self.norm1(x))
            return x + self.drop(self.mlp(self.norm2(x)))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.drop(self.mlp(x)))


class LayerKV:
    """One layer's cached keys and values, each (B, Hkv, T_cached, hs), grown by `update`."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new tokens' k and v (B, Hkv, T, hs); return all of them so far."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (B, Hkv, past + T, hs)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v


class KVCache:
    """Keys and values of every layer for incremental decoding; ``.length`` = tokens cached.

    A decoder reads the prompt once, then feeds one new token per step: each layer appends
    that token's key and value to ``layers[i]`` and attends over everything cached.
    """

    def __init__(self, n_layers: int, *, batch_size: int | None = None) -> None:
        self.layers = [LayerKV() for _ in range(n_layers)]
        self.batch_size = batch_size

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows `index` (B',) in that order, e.g. the surviving beams."""
        for layer in self.layers:
            if layer.k is not None and layer.v is not None:
                layer.k, layer.v = layer.k[index], layer.v[index]
        self.batch_size = len(index)

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.layers)}, length={self.length})"
