"""Attention: scaled dot-product, masks, multi-head (and grouped-query), positions.

Attention is a soft lookup. Each query is compared with every key, the scores become
weights with a softmax, and the output is the weighted average of the values::

    weights = softmax(q @ k.T / sqrt(hs))      # (Tq, Tk), each row sums to 1
    out = weights @ v                          # (Tq, hs)

Masks are boolean with True meaning "may attend" (PyTorch's convention): `causal_mask`
hides the future from a decoder, `padding_mask` hides padding tokens from everyone.

`scaled_dot_product_attention` is the readable version, which also returns the weights
so that they can be drawn; `MultiHeadAttention` calls PyTorch's fused
`torch.nn.functional.scaled_dot_product_attention` instead (same numbers, much faster),
unless asked to keep its weights for a plot.

Transformers need to know where each token is. `SinusoidalPositions` are the fixed
sine/cosine encodings of "Attention is all you need"; `RotaryEmbedding` rotates queries and
keys by their positions (RoPE, used by Llama and SmolLM2) so that their dot product
depends only on how far apart they are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from nlpbook.transformer import LayerKV


def causal_mask(T: int, *, past: int = 0, device: torch.device | str | None = None) -> Tensor:
    """Which keys each of `T` queries may see: True on and below the diagonal.

    With `past` cached keys in front (incremental decoding) the mask is (T, past + T) and
    query i, at position ``past + i``, sees every key up to and including its own.

    >>> causal_mask(3).int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    >>> causal_mask(1, past=2).int().tolist()
    [[1, 1, 1]]
    """
    if T < 0 or past < 0:
        raise ValueError(f"T and past must be non-negative, got T={T}, past={past}")
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past)


def padding_mask(attention_mask: Tensor) -> Tensor:
    """A (B, T) mask of 1 (real token) and 0 (padding) as a (B, 1, 1, T) boolean key mask.

    The shape broadcasts over heads and queries: no query may attend to a padding key.

    >>> padding_mask(torch.tensor([[1, 1, 0]])).shape
    torch.Size([1, 1, 1, 3])
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"expected attention_mask (B, T), got {tuple(attention_mask.shape)}")
    if (
        attention_mask.dtype != torch.bool
        and not ((attention_mask == 0) | (attention_mask == 1)).all()
    ):
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(hs)) v`` written out; returns the output and the weights.

    q (B, H, Tq, hs), k and v (B, H, Tk, hs). `mask` is boolean, True where a query may
    attend, broadcastable to (B, H, Tq, Tk); `is_causal` adds `causal_mask` (it needs
    Tq == Tk). A query that may attend to nothing gets all-zero weights, as in PyTorch.
    The weights are returned before dropout, which applies only when `training`.
    Gives the same output as `torch.nn.functional.scaled_dot_product_attention`.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"expected q, k, v of shape (B, H, T, hs), got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    Tq, Tk = q.size(-2), k.size(-2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if is_causal:
        if Tq != Tk:
            raise ValueError(
                f"is_causal needs as many queries as keys, got {Tq} and {Tk}; "
                "pass mask=causal_mask(Tq, past=...) instead"
            )
        causal = causal_mask(Tq, device=q.device)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if mask is not None:
        # exact zeros on hidden keys, and zeros instead of NaN where a row hides every key
        weights = weights.masked_fill(~mask, 0.0)
    dropped = F.dropout(weights, p=dropout_p, training=training) if dropout_p > 0 else weights
    return dropped @ v, weights  # (B, H, Tq, hs), (B, H, Tq, Tk)


class MultiHeadAttention(nn.Module):
    """Several attention heads side by side, each on its own slice of the channels.

    ``n_heads`` query heads of size ``hs = d_model // n_heads``. With ``n_kv_heads`` smaller
    than ``n_heads`` (grouped-query attention, as in Llama) each key/value head serves a
    group of ``n_heads // n_kv_heads`` consecutive query heads, which shrinks the KV cache.

    ``forward(x (B, T, C), ...) -> (B, T, C)``. Set ``keep_weights = True`` to keep the
    attention weights of the last call in ``last_weights`` (B, H, Tq, Tk); this uses the
    readable `scaled_dot_product_attention`, otherwise PyTorch's fused kernel runs.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        bias: bool = True,
        out_bias: bool | None = None,  # None: same as bias
        dropout: float = 0.0,  # on the attention weights, while training
    ) -> None:
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        if n_kv_heads < 1 or n_heads % n_kv_heads != 0:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        kv_dim = n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, kv_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, kv_dim, bias=bias)
        self.o_proj = nn.Linear(d_model, d_model, bias=bias if out_bias is None else out_bias)
        self.keep_weights = False
        self.last_weights: Tensor | None = None

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: LayerKV | None = None,
        kv: Tensor | None = None,
    ) -> Tensor:
        """Self-attention over `x`, or cross-attention to the memory `kv` (B, S, C).

        `mask` (True = may attend) broadcasts to (B, H, T, Tk); `rope` is the (cos, sin)
        of `RotaryEmbedding` for the positions of x; `cache` keeps this layer's keys and
        values between calls, so that x can be just the new tokens.
        """
        if x.dim() != 3 or x.size(-1) != self.d_model:
            raise ValueError(f"expected x (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, C = x.shape
        if kv is None:
            q, k, v = self._project_qkv(x)
        else:
            q, k, v = self.q_proj(x), self.k_proj(kv), self.v_proj(kv)
        S = k.size(1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hs)
        k = k.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, S, hs)
        v = v.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, S, hs)
        if rope is not None:
            if kv is not None:
                raise ValueError("rotary positions apply to self-attention only, not with kv")
            cos, sin = rope
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            if kv is not None:
                raise ValueError("a KV cache is for self-attention; got both cache and kv")
            k, v = cache.update(k, v)  # (B, Hkv, past + T, hs)
        if is_causal and T == 1:
            is_causal = False  # a single newest query sees every key
        if is_causal and (mask is not None or k.size(2) != T):
            # PyTorch's is_causal aligns the triangle top-left; with cached keys in front, or
            # with a padding mask to combine, the triangle is written out (bottom-right)
            causal = causal_mask(T, past=k.size(2) - T, device=x.device)
            mask = causal if mask is None else mask & causal
            is_causal = False
        dropout_p = self.dropout if self.training else 0.0
        if self.keep_weights:
            groups = self.n_heads // self.n_kv_heads
            k_all = k.repeat_interleave(groups, dim=1)  # (B, H, Tk, hs)
            v_all = v.repeat_interleave(groups, dim=1)  # (B, H, Tk, hs)
            y, weights = scaled_dot_product_attention(
                q,
                k_all,
                v_all,
                mask=mask,
                is_causal=is_causal,
                dropout_p=dropout_p,
                training=self.training,
            )
            self.last_weights = weights.detach()
        else:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=is_causal,
                dropout_p=dropout_p,
                enable_gqa=self.n_kv_heads != self.n_heads,
            )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.o_proj(y)

    def _project_qkv(self, x: Tensor) -> tuple[Tensor, ...]:
        """q, k and v of x in one matrix multiply, with the three weights stacked.

        The same numbers as ``q_proj(x), k_proj(x), v_proj(x)``; one large product is a
        little faster than three small ones (nanoGPT keeps a single ``c_attn`` for this).
        """
        projections = (self.q_proj, self.k_proj, self.v_proj)
        weight = torch.cat([p.weight for p in projections])  # (C + 2 Hkv hs, C)
        bias = None if self.q_proj.bias is None else torch.cat([p.bias for p in projections])
        qkv = F.linear(x, weight, bias)  # (B, T, C + 2 Hkv hs)
        return qkv.split([p.out_features for p in projections], dim=-1)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}"


class SinusoidalPositions(nn.Module):
    """The fixed position encodings of Vaswani et al. (2017), a (max_len, C) table::

        PE[pos, 2i]   = sin(pos / 10000^(2i / C))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / C))

    Each pair of channels is a clock turning at its own speed, so nearby positions get
    similar vectors and a fixed offset is a fixed rotation. ``forward(T)`` gives the first
    T rows (T, C); ``forward(positions)`` gives the rows of given positions, (..., C).

    >>> pe = SinusoidalPositions(10, 4)  # position 2: sin(2), cos(2), sin(0.02), cos(0.02)
    >>> [round(v, 3) for v in pe(3)[2].tolist()]
    [0.909, -0.416, 0.02, 1.0]
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        if d_model % 2 != 0:
            raise ValueError(f"d_model must be even for sine/cosine pairs, got {d_model}")
        position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
        freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
        table = torch.zeros(max_len, d_model, dtype=torch.float64)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq)
        self.register_buffer("table", table.float(), persistent=False)
        self.max_len = max_len

    def forward(self, positions: int | Tensor) -> Tensor:
        if isinstance(positions, int):
            if not 0 <= positions <= self.max_len:
                raise ValueError(f"asked for {positions} positions; max_len is {self.max_len}")
            return self.table[:positions]  # (T, C)
        if positions.numel() and (positions.min() < 0 or positions.max() >= self.max_len):
            raise ValueError(f"positions must lie in 0..{self.max_len - 1}")
        return self.table[positions]  # (..., C)


class RotaryEmbedding(nn.Module):
    """Rotary position embeddings (RoPE, Su et al. 2021), in Hugging Face's layout.

    Channel pairs ``(j, j + hs/2)`` of a query or key at position p are rotated by the
    angle ``p * base^(-2j/hs)``. Since a rotation by a and one by b leave a dot product
    that depends on ``a - b``, attention scores depend only on relative positions.
    Hugging Face pairs the two halves ("rotate_half") instead of neighbours, so Llama and
    SmolLM2 checkpoints load without permuting their weights.

    ``forward(positions (T,) or (B, T)) -> (cos, sin)``, each (T, hs) or (B, T, hs);
    `apply_rotary` uses them.
    """

    def __init__(self, head_dim: int, *, base: float = 10000.0, max_len: int = 4096) -> None:
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"head_dim must be even, got {head_dim}")
        self.head_dim, self.base, self.max_len = head_dim, base, max_len
        # the same float32 arithmetic as transformers' LlamaRotaryEmbedding
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        angles = torch.arange(max_len).float()[:, None] * inv_freq  # (max_len, hs/2)
        angles = torch.cat([angles, angles], dim=-1)  # (max_len, hs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        if positions.numel() and (positions.min() < 0 or positions.max() >= self.max_len):
            raise ValueError(f"positions must lie in 0..{self.max_len - 1}")
        return self.cos[positions], self.sin[positions]  # (..., T, hs) each


def _rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension: a 90° turn of each channel pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, H, T, hs) by the angles of `RotaryEmbedding`: ``x cos + rotate_half(x) sin``.

    cos and sin are (T, hs), shared by the batch, or (B, T, hs), one row of positions per
    sequence (left-padded batches).
    """
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hs): the same for every head
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin
