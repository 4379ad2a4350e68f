"""A character-level GRU language model: predict the next character, then write new text.

The model reads ids (B, T) and predicts, at every position, the id that follows, so one
sequence of T characters gives T training examples. Generation feeds each sampled
character back in and carries the GRU state forward, so every new character costs one
step, not a pass over the whole prefix.

>>> import torch
>>> model = GRULanguageModel(GRULMConfig(vocab_size=10, embed_dim=4, hidden_size=8))
>>> logits, loss = model(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))
>>> logits.shape
torch.Size([2, 5, 10])
>>> model.generate(torch.zeros(1, 3, dtype=torch.long), 4, seed=0).shape
torch.Size([1, 7])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class GRULMConfig:
    vocab_size: int
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0  # between layers and before the output layer


class GRULanguageModel(nn.Module):
    """Embedding -> GRU -> linear; ``forward(idx, targets=None) -> (logits, loss)``."""

    def __init__(self, config: GRULMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.gru = nn.GRU(
            c.embed_dim,
            c.hidden_size,
            num_layers=c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if idx.dim() != 2:
            raise ValueError(f"expected idx (B, T), got {tuple(idx.shape)}")
        logits, _ = self._run(idx, state)
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)),  # (B*T, V)
                targets.reshape(-1),  # (B*T,)
            )
        return logits, loss

    def _run(self, idx: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        out, state = self.gru(self.embed(idx), state)  # (B, T, H), (layers, B, H)
        return self.head(self.drop(out)), state

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> Tensor:
        """Continue the prompts `idx` (B, T) by sampling `max_new_tokens` ids: (B, T + new).

        `temperature` below 1 sharpens the distribution, above 1 flattens it; `seed`
        makes the samples repeatable.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"expected a non-empty prompt (B, T), got {tuple(idx.shape)}")
        was_training = self.training
        self.eval()
        generator = torch.Generator(device=idx.device)
        if seed is not None:
            generator.manual_seed(seed)
        logits, state = self._run(idx, None)
        out = [idx]
        for _ in range(max_new_tokens):
            probs = torch.softmax(logits[:, -1] / temperature, dim=-1)  # (B, V)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            out.append(nxt)
            logits, state = self._run(nxt, state)
        self.train(was_training)
        return torch.cat(out, dim=1)


@torch.no_grad()
def perplexity(model: GRULanguageModel, ids: Tensor, *, block_size: int = 256) -> float:
    """``exp`` of the mean next-token loss over `ids`, read in consecutive blocks with the
    state carried from block to block (so every prediction sees all the text before it)."""
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(f"need a 1-D tensor of at least 2 ids, got {tuple(ids.shape)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count, state = 0.0, 0, None
    for start in range(0, ids.numel() - 1, block_size):
        chunk = ids[start : start + block_size + 1].to(device)
        x, y = chunk[None, :-1], chunk[None, 1:]  # (1, T)
        logits, state = model._run(x, state)
        total += float(nn.functional.cross_entropy(logits[0], y[0], reduction="sum"))
        count += y.numel()
    model.train(was_training)
    return math.exp(total / count)
