"""The encoder-decoder transformer (Vaswani et al. 2017), the architecture of T5 and mT5.

The encoder is a stack of the book's `transformer.Block` reading the whole source at once.
Each decoder layer has three sublayers: causal self-attention over the target written so
far, *cross-attention* whose queries come from the target and whose keys and values are
the encoder's output (the *memory*), and the MLP::

    x = x + self_attn(norm1(x), causal)
    x = x + cross_attn(norm2(x), kv=memory)   # where the translator looks in the source
    x = x + mlp(norm3(x))

Source and target share one vocabulary and one embedding table, which is also the output
layer (weight tying, as in the original transformer and T5), so one model can read and
write several languages. The interface is the one of `nlpbook.seq2seq.Seq2Seq`:
``forward(src, src_lengths, tgt_in, targets=None) -> (logits, loss)`` on the batches of
`nlpbook.seq2seq.TranslationBatches`. `translate` decodes with `nlpbook.generation.generate`
(greedy or beam search) through `EncoderDecoder.bind`, which turns the decoder with its
memory into a causal language model of the target.

Shapes: B batch, S source length, T target length, C d_model, V vocabulary.

>>> cfg = EncoderDecoderConfig(vocab_size=20, d_model=16, n_heads=2, n_enc_layers=1,
...                            n_dec_layers=1, max_len=16)
>>> model = EncoderDecoder(cfg)
>>> src, src_len = torch.tensor([[5, 6, 7]]), torch.tensor([3])
>>> logits, loss = model(src, src_len, torch.tensor([[1, 9]]), torch.tensor([[9, 2]]))
>>> logits.shape
torch.Size([1, 2, 20])
>>> len(translate(model, [[5, 6, 7]], bos_id=1, eos_id=2, max_new_tokens=4)[0]) <= 4
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlpbook.attention import MultiHeadAttention, padding_mask
from nlpbook.batching import pad_batch
from nlpbook.generation import generate
from nlpbook.transformer import MLP, Block, KVCache, LayerKV, init_weights


@dataclass(frozen=True)
class EncoderDecoderConfig:
    vocab_size: int  # V, shared by source and target
    d_model: int = 256  # C
    n_heads: int = 4
    n_enc_layers: int = 3
    n_dec_layers: int = 3
    d_ff: int | None = None  # None: 4 * d_model
    max_len: int = 128  # longest source or target, in tokens
    dropout: float = 0.1
    label_smoothing: float = 0.1
    pad_id: int = 0


class DecoderBlock(nn.Module):
    """Pre-LN decoder layer: causal self-attention, cross-attention to the memory, MLP.

    ``forward(x (B, T, C), memory (B, S, C), *, memory_mask (B, 1, 1, S), cache=None)``;
    with a `LayerKV` cache, `x` holds only the new target tokens.
    """

    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.mlp = MLP(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        *,
        memory_mask: Tensor,
        cache: LayerKV | None = None,
    ) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x), is_causal=True, cache=cache))
        x = x + self.drop(self.cross_attn(self.norm2(x), kv=memory, mask=memory_mask))
        return x + self.drop(self.mlp(self.norm3(x)))


class EncoderDecoder(nn.Module):
    """A transformer translator with one shared, tied vocabulary (see the module docstring)."""

    def __init__(self, config: EncoderDecoderConfig) -> None:
        super().__init__()
        self.config = config
        C, d_ff = config.d_model, config.d_ff or 4 * config.d_model
        self.embed = nn.Embedding(config.vocab_size, C)
        self.pos = nn.Embedding(config.max_len, C)  # learned, one table for both sides
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(
            Block(d_model=C, n_heads=config.n_heads, d_ff=d_ff, dropout=config.dropout)
            for _ in range(config.n_enc_layers)
        )
        self.enc_norm = nn.LayerNorm(C)
        self.decoder = nn.ModuleList(
            DecoderBlock(d_model=C, n_heads=config.n_heads, d_ff=d_ff, dropout=config.dropout)
            for _ in range(config.n_dec_layers)
        )
        self.dec_norm = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: reading and writing a token share a vector
        self.apply(init_weights)  # N(0, 0.02) for every matrix and table, zero biases

    def _embed(self, ids: Tensor, *, start: int = 0) -> Tensor:
        T = ids.size(1)
        if start + T > self.config.max_len:
            raise ValueError(
                f"{start + T} positions exceed max_len={self.config.max_len}: "
                "shorten the sentence or build the model with a larger max_len"
            )
        positions = torch.arange(start, start + T, device=ids.device)
        return self.drop(self.embed(ids) + self.pos(positions))  # (B, T, C)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Source ids (B, S) -> memory (B, S, C) and its key mask (B, 1, 1, S)."""
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(
                f"expected src (B, S) and src_lengths (B,), got {tuple(src.shape)} "
                f"and {tuple(src_lengths.shape)}"
            )
        real = torch.arange(src.size(1), device=src.device) < src_lengths.to(src.device)[:, None]
        mask = padding_mask(real)  # (B, 1, 1, S)
        x = self._embed(src)
        for block in self.encoder:
            x = block(x, mask=mask)
        return self.enc_norm(x), mask

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        *,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Target ids (B, T) -> logits (B, T, V); with a cache, only the new tokens."""
        start = 0 if cache is None else cache.length
        x = self._embed(tgt, start=start)
        for i, block in enumerate(self.decoder):
            layer = None if cache is None else cache.layers[i]
            x = block(x, memory, memory_mask=memory_mask, cache=layer)
        return self.head(self.dec_norm(x))

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        targets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: `tgt_in` is the target shifted right (starting with BOS)."""
        memory, memory_mask = self.encode(src, src_lengths)
        logits = self.decode(tgt_in, memory, memory_mask)  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(
            logits.flatten(0, 1),  # (B*T, V)
            targets.flatten(),
            ignore_index=self.config.pad_id,
            label_smoothing=self.config.label_smoothing,
        )
        return logits, loss

    def bind(self, src: Tensor, src_lengths: Tensor) -> BoundDecoder:
        """The decoder with this source's memory, as a causal LM for `generation.generate`."""
        memory, memory_mask = self.encode(src, src_lengths)
        return BoundDecoder(self, memory, memory_mask)


class MemoryCache(KVCache):
    """The decoder's self-attention cache plus the encoder memory it attends to.

    Beam search keeps K beams per sentence and reorders them after each step; the memory
    rows must follow their beams, so they live here and `reorder` moves them too.
    """

    def __init__(self, n_layers: int, memory: Tensor, memory_mask: Tensor) -> None:
        super().__init__(n_layers, batch_size=memory.size(0))
        self.memory, self.memory_mask = memory, memory_mask

    def reorder(self, index: Tensor) -> None:
        super().reorder(index)
        self.memory, self.memory_mask = self.memory[index], self.memory_mask[index]


class BoundDecoder(nn.Module):
    """An `EncoderDecoder`'s decoder tied to one batch of encoded sources.

    It answers like a Hugging Face causal LM, ``forward(input_ids, attention_mask,
    past_key_values, use_cache) -> .logits, .past_key_values``, which is what
    `generation.generate` drives. On the first call the memory is repeated to the number
    of rows asked for: beam search asks for K rows per source.
    """

    def __init__(self, model: EncoderDecoder, memory: Tensor, memory_mask: Tensor) -> None:
        super().__init__()
        self.model, self.memory, self.memory_mask = model, memory, memory_mask

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        past_key_values: MemoryCache | None = None,
        use_cache: bool = True,
    ) -> SimpleNamespace:
        cache = past_key_values  # None on the first call, and on every call without a cache
        if cache is None:
            repeat = input_ids.size(0) // self.memory.size(0)
            memory = self.memory.repeat_interleave(repeat, dim=0)  # (B*K, S, C)
            mask = self.memory_mask.repeat_interleave(repeat, dim=0)
            cache = MemoryCache(len(self.model.decoder), memory, mask)
        logits = self.model.decode(input_ids, cache.memory, cache.memory_mask, cache=cache)
        return SimpleNamespace(logits=logits, past_key_values=cache if use_cache else None)


@torch.no_grad()
def translate(
    model: EncoderDecoder,
    sources: Sequence[Sequence[int]],
    *,
    bos_id: int,
    eos_id: int,
    num_beams: int = 1,
    max_new_tokens: int = 60,
    batch_size: int = 100,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Token ids of each source's translation, without BOS and EOS: greedy or beam search.

    Sources are decoded in batches of similar length, then returned in the input order.
    """
    if any(len(s) == 0 for s in sources):
        raise ValueError("every source needs at least one token, got an empty one")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[list[int]] = [[] for _ in sources]
    order = np.argsort([len(s) for s in sources], kind="stable")
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        src, src_len = pad_batch([list(sources[i]) for i in rows], pad_id=model.config.pad_id)
        decoder = model.bind(src.to(device), src_len.to(device))
        start = torch.full((len(rows), 1), bos_id, dtype=torch.long, device=device)
        ids = generate(
            decoder,
            start,
            max_new_tokens=min(max_new_tokens, model.config.max_len - 1),
            num_beams=num_beams,
            length_penalty=length_penalty,
            eos_token_id=eos_id,
        )
        for i, row in zip(rows, ids[:, 1:].tolist(), strict=True):
            out[i] = row[: row.index(eos_id)] if eos_id in row else row
    model.train(was_training)
    return out
