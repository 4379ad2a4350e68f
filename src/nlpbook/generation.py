"""Generating text from a causal language model, one token at a time.

Each step turns the logits of the last position into the next token, appends it and
runs the model again::

    greedy:       next = argmax(logits)
    sampling:     next ~ softmax(logits / temperature), optionally among the top_k only

With a KV cache the model reads the prompt once, then only the newest token per step.
`generate` drives our `nlpbook.gpt.GPT` and any Hugging Face causal LM the same way, so
the two can be compared token for token with HF's ``model.generate``.

Batches of prompts of different lengths are padded on the left (``attention_mask`` 0 on
padding), so that every row's next token is in the same, last, column. A row that emits
an end-of-sequence token is finished: it keeps receiving `pad_token_id` (by default the
end-of-sequence token itself) until every row is finished or `max_new_tokens` are made.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nlpbook.gpt import GPT


@torch.no_grad()
def generate(
    model: nn.Module,
    input_ids: Tensor,
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,  # 0: no top-k filtering
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,  # for finished rows; None: the (first) eos token
    attention_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue the prompts `input_ids` (B, T); returns (B, T + n) token ids, n <= max_new_tokens.

    Generation stops early once every row has produced an ``eos_token_id``. Sampling draws
    from `generator` when given, so a seeded generator repeats the same text. For our GPT,
    a prompt must fit its ``block_size``; longer continuations slide a window over the last
    ``block_size`` tokens (recomputed without a cache once the window moves). Dropout
    stays on if the model is in training mode: call ``model.eval()`` first.

    >>> from nlpbook.gpt import GPT, GPTConfig
    >>> _ = torch.manual_seed(0)
    >>> model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    >>> generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=4).shape
    torch.Size([1, 7])
    """
    eos = _check_args(input_ids, max_new_tokens, temperature, top_k, eos_token_id, attention_mask)
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else None)
    ids = input_ids
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask.to(ids.dtype)
    block_size = model.config.block_size if isinstance(model, GPT) else None
    if block_size is not None and ids.size(1) > block_size:
        raise ValueError(
            f"the prompt has {ids.size(1)} tokens but the model's block_size is {block_size}"
        )
    finished = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)
    eos_ids = torch.tensor(eos, dtype=ids.dtype, device=ids.device)
    state = _Stepper(model, use_cache=use_cache)
    for _ in range(max_new_tokens):
        if block_size is not None and ids.size(1) > block_size:
            state.slide()  # the window moves: positions change, so the cache is stale
            logits = state.step(ids[:, -block_size:], mask[:, -block_size:])
        else:
            logits = state.step(ids, mask)  # (B, V) at the last position
        next_id = _choose(logits, do_sample, temperature, top_k, generator)  # (B,)
        if eos:
            if pad is not None:
                next_id = next_id.masked_fill(finished, pad)
            finished |= torch.isin(next_id, eos_ids)
        ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, T + 1)
        mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
        if eos and bool(finished.all()):
            break
    return ids


class _Stepper:
    """Runs one decoding step of our GPT or of a HF model, with or without a KV cache."""

    def __init__(self, model: nn.Module, *, use_cache: bool) -> None:
        self.model, self.use_cache = model, use_cache
        self.cache: Any = None
        self.seen = 0  # tokens already in the cache
        self.takes_positions = "position_ids" in inspect.signature(model.forward).parameters

    def slide(self) -> None:
        self.use_cache, self.cache, self.seen = False, None, 0

    def step(self, ids: Tensor, mask: Tensor) -> Tensor:
        new = ids[:, self.seen :] if self.use_cache else ids  # only what the cache lacks
        if isinstance(self.model, GPT):
            if self.use_cache and self.cache is None:
                self.cache = self.model.new_cache(ids.size(0))
            logits, _ = self.model(new, attention_mask=mask, cache=self.cache)
        else:
            extra = {}
            if self.takes_positions:  # HF generate's positions: count the real tokens only
                positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
                extra["position_ids"] = positions[:, -new.size(1) :]
            out = self.model(
                input_ids=new,
                attention_mask=mask,
                past_key_values=self.cache,
                use_cache=self.use_cache,
                **extra,
            )
            logits = out.logits
            self.cache = out.past_key_values if self.use_cache else None
        if self.use_cache:
            self.seen = ids.size(1)
        return logits[:, -1, :].float()  # (B, V)


def _choose(
    logits: Tensor,
    do_sample: bool,
    temperature: float,
    top_k: int,
    generator: torch.Generator | None,
) -> Tensor:
    """The next token of each row from its logits (B, V): argmax, or a sample."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # (B,)


def _check_args(
    input_ids: Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    eos_token_id: int | Sequence[int] | None,
    attention_mask: Tensor | None,
) -> list[int]:
    """Fail early on bad arguments; returns the end-of-sequence ids as a list."""
    if input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError(
            f"expected input_ids (B, T) of int64 ids, got {input_ids.dtype} "
            f"{tuple(input_ids.shape)}"
        )
    if input_ids.size(0) == 0 or input_ids.size(1) == 0:
        raise ValueError(f"the prompt is empty: input_ids has shape {tuple(input_ids.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (use do_sample=False for greedy), got {temperature}"
        )
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = no filtering), got {top_k}")
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} must have the shape "
                f"of input_ids {tuple(input_ids.shape)}"
            )
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("pad prompts on the left: the last column of attention_mask must be 1")
    if eos_token_id is None:
        return []
    return [int(eos_token_id)] if isinstance(eos_token_id, int) else [int(e) for e in eos_token_id]
