"""Batches for language models: random windows of a long sequence of token ids.

A language model learns to predict every next token, so one window of T + 1 ids gives T
examples at once: the input is the window without its last id, the target the window
without its first. Both the recurrent language model and the GPT train on these batches,
and `mean_loss` scores either on a whole held-out text; it scores a Hugging Face causal
language model too, and `perplexity` is its exponential.

>>> x, y = next(iter(RandomChunks(torch.arange(10), block_size=4, batch_size=2)))
>>> bool((y == x + 1).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from nlpbook.train import evaluating


class RandomChunks:
    """Endless ``(x, y)`` batches of random windows of `ids`: y is x shifted by one.

    Windows start anywhere in `ids`, drawn with their own seeded generator, so a run is
    repeatable and independent of other randomness in the program.
    """

    def __init__(self, ids: Tensor, *, block_size: int, batch_size: int, seed: int = 0) -> None:
        if ids.dim() != 1 or ids.numel() <= block_size:
            raise ValueError(f"need a 1-D tensor of more than {block_size} ids, got {ids.shape}")
        if block_size < 1 or batch_size < 1:
            raise ValueError(
                f"block_size and batch_size must be positive, got {block_size}, {batch_size}"
            )
        self.ids, self.block_size, self.batch_size = ids, block_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        offsets = torch.arange(self.block_size + 1)
        while True:
            starts = torch.randint(
                self.ids.numel() - self.block_size, (self.batch_size,), generator=self.generator
            )
            window = self.ids[starts[:, None] + offsets]  # (B, T+1)
            yield window[:, :-1], window[:, 1:]


@torch.no_grad()
def mean_loss(model: nn.Module, ids: Tensor, *, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy of `model` over all of `ids`, in nats per token.

    `model(x)` returns ``(logits, _)`` (the book's models) or an output with ``.logits``
    (a Hugging Face causal LM, also wrapped by ``peft``); logits are (B, T, V).
    The text is cut into consecutive windows of `block_size` + 1 ids (the last one may be
    shorter), so every id after the first is predicted exactly once, from the ids before it
    in its window. Its exponential is the perplexity.
    """
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(f"need a 1-D tensor of at least 2 ids, got {tuple(ids.shape)}")
    device = next(model.parameters()).device
    starts = list(range(0, ids.numel() - 1, block_size))
    total, count = 0.0, 0
    with evaluating(model):
        for i in range(0, len(starts), batch_size):
            group = starts[i : i + batch_size]
            full = [s for s in group if s + block_size + 1 <= ids.numel()]
            rest = [s for s in group if s + block_size + 1 > ids.numel()]
            windows = [torch.stack([ids[s : s + block_size + 1] for s in full])] if full else []
            windows += [ids[s:][None] for s in rest]  # the short tail, alone
            for window in windows:
                window = window.to(device)
                x, y = window[:, :-1], window[:, 1:]  # (B, T)
                logits = _logits(model(x))
                total += float(
                    nn.functional.cross_entropy(
                        logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"
                    )  # logits (B*T, V), targets (B*T,)
                )
                count += y.numel()
    return total / count


def perplexity(model: nn.Module, ids: Tensor, *, block_size: int, batch_size: int = 8) -> float:
    """``exp(mean_loss)``: the perplexity of `model` on the held-out token ids `ids` (N,).

    A model that spreads its probability evenly over k tokens at every step has perplexity
    k, so the number reads as "as unsure as a uniform choice among this many tokens". It is
    comparable only between models with the same tokenizer, on the same ids, with the same
    `block_size` (a longer context makes the later tokens of each window easier).

    >>> class Uniform(nn.Module):  # the same logits for each of 5 tokens, at every position
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = nn.Parameter(torch.zeros(5))
    ...     def forward(self, x):
    ...         return self.w.expand(*x.shape, 5), None
    >>> round(perplexity(Uniform(), torch.tensor([0, 3, 1, 4]), block_size=2), 6)
    5.0
    """
    return math.exp(mean_loss(model, ids, block_size=block_size, batch_size=batch_size))


def _logits(out: Any) -> Tensor:
    """The logits of a model's output: ``out.logits`` (Hugging Face), else ``out[0]``."""
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out[0]
