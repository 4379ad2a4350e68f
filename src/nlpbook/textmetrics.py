"""Measuring generated text: diversity, repetition, likelihood, and decoding strategies compared.

Three numbers describe a set of continuations, each computed from token ids:

- ``distinct_n(texts, n)``: distinct n-grams / all n-grams, pooled over the texts
  (Li et al., 2016). 1.0: no n-gram occurs twice; near 0: the same few n-grams again and again.
- ``repetition_rate(tokens, n)``: the share of a text's n-grams that already occurred earlier
  in the same text (Welleck et al., 2020's seq-rep-n). Degenerate loops push it towards 1.
- ``continuation_loglik``: the mean log-probability per token that a model gives to the
  continuations, read from one forward pass over prompt + continuation. It is the model's own
  opinion of the text: higher is "more likely", not necessarily better.

`measure_decoding` runs one decoding strategy of `nlpbook.generation.generate` on a batch of
prompts, times it and computes all three; `STRATEGIES` names the strategies the book compares,
`hf_arguments` says how Hugging Face's ``model.generate`` decodes the same way, and
`passage_openings` picks prompts (with the text that really followed them) from a corpus.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nlpbook.generation import generate
from nlpbook.gpt import GPT

# The decoding strategies of the chapter and its benchmark: name -> arguments of `generate`
STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {},
    "beam 2": dict(num_beams=2),
    "beam 4": dict(num_beams=4),
    "beam 8": dict(num_beams=8),
    "temperature 0.7": dict(do_sample=True, temperature=0.7),
    "temperature 1.0": dict(do_sample=True, temperature=1.0),
    "temperature 1.3": dict(do_sample=True, temperature=1.3),
    "top-k 50": dict(do_sample=True, top_k=50),
    "top-p 0.9": dict(do_sample=True, top_p=0.9),
    "greedy, repetition penalty 1.3": dict(repetition_penalty=1.3),
    "greedy, no repeated 3-gram": dict(no_repeat_ngram_size=3),
}


def hf_arguments(strategy: dict[str, Any]) -> dict[str, Any]:
    """The arguments of Hugging Face's ``model.generate`` that decode like ``generate(**strategy)``.

    Two of HF's defaults differ from ours: it samples from the 50 most likely tokens only
    (``top_k=50``) unless told otherwise, and a model's generation config may switch
    sampling on. Both are set explicitly here.

    >>> hf_arguments(dict(do_sample=True, top_p=0.9))
    {'do_sample': True, 'top_k': 0, 'top_p': 0.9}
    >>> hf_arguments(dict(num_beams=4))
    {'do_sample': False, 'num_beams': 4}
    """
    if strategy.get("do_sample"):
        return {"do_sample": True, "top_k": 0, **strategy}
    return {"do_sample": False, **strategy}


def passage_openings(
    text: str, *, n: int, lines: int = 3, rest_chars: int = 2000
) -> list[tuple[str, str]]:
    r"""`n` prompts from `text`: the first `lines` lines of passages (blocks of lines between
    blank lines) longer than that, evenly spaced through the text, each with the
    `rest_chars` characters that follow it (the continuation a person wrote). Passages too
    close to the end of the text to have `rest_chars` after their opening are not used.

    >>> text = "A:\nhi\nyou\n\nB:\nno\n\nC:\nyes\nthen\n\nD:\nok\nbye\n"
    >>> passage_openings(text, n=2, lines=2, rest_chars=5)
    [('A:\nhi\n', 'you\n\n'), ('C:\nyes\n', 'then\n')]
    """
    if n < 1 or lines < 1:
        raise ValueError(f"expected n >= 1 and lines >= 1, got n={n}, lines={lines}")
    spans, pos = [], 0  # (start, end) of the openings of long enough passages
    for block in text.split("\n\n"):
        if len(block.strip("\n").split("\n")) > lines:
            start = end = pos + len(block) - len(block.lstrip("\n"))
            for _ in range(lines):
                end = text.index("\n", end) + 1
            if len(text) - end >= rest_chars:
                spans.append((start, end))
        pos += len(block) + 2
    if len(spans) < n:
        raise ValueError(
            f"the text has {len(spans)} passages of more than {lines} lines followed by "
            f"{rest_chars} characters, fewer than n={n}"
        )
    chosen = [spans[round(i * (len(spans) - 1) / max(n - 1, 1))] for i in range(n)]
    return [(text[start:end], text[end : end + rest_chars]) for start, end in chosen]


def ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The n-grams of `tokens`, in order.

    >>> ngrams([5, 6, 7, 5], 2)
    [(5, 6), (6, 7), (7, 5)]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams divided by all n-grams, over all `texts` together (Li et al., 2016).

    N-grams do not cross from one text into the next. Texts shorter than n add nothing; with
    no n-gram at all the answer is 0.

    >>> distinct_n([[1, 2, 1, 2], [3]], 1)  # 5 tokens, 3 distinct
    0.6
    >>> distinct_n([[1, 2, 1, 2]], 2)  # (1, 2) (2, 1) (1, 2): 2 distinct of 3
    0.6666666666666666
    """
    grams = [g for text in texts for g in ngrams(list(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated(tokens: Sequence[int], n: int) -> list[bool]:
    """For each position, whether the n-gram that ends there occurred earlier in `tokens`.

    The first n - 1 positions end no n-gram and are False.

    >>> repeated([1, 2, 3, 1, 2, 3, 1], 2)  # "1 2", "2 3", "3 1" come back
    [False, False, False, False, True, True, True]
    """
    seen: set[tuple[int, ...]] = set()
    out = [False] * min(n - 1, len(tokens))
    for gram in ngrams(list(tokens), n):
        out.append(gram in seen)
        seen.add(gram)
    return out


def repetition_rate(tokens: Sequence[int], n: int = 4) -> float:
    """The share of the n-grams of `tokens` that repeat an earlier n-gram of the same text.

    This is 1 - distinct-n of one text, Welleck et al.'s seq-rep-n: 0 for text without a
    repeated n-gram; a text that loops on a phrase of length L gets close to 1 - L / len.

    >>> repetition_rate([1, 2, 3, 1, 2, 3, 1], n=2)  # 3 of its 6 bigrams are repeats
    0.5
    >>> repetition_rate([7, 7], n=4)  # no 4-gram at all
    0.0
    """
    flags = repeated(tokens, n)[n - 1 :]
    return sum(flags) / len(flags) if flags else 0.0


def continuations(
    ids: Tensor, prompt_length: int, *, eos_token_id: int | Sequence[int] | None = None
) -> list[list[int]]:
    """The generated tokens of each row of `ids` (B, prompt_length + n), up to and including
    the first end-of-sequence token (what follows it is padding).

    >>> continuations(torch.tensor([[9, 9, 4, 2, 2], [9, 9, 5, 6, 7]]), 2, eos_token_id=2)
    [[4, 2], [5, 6, 7]]
    """
    eos = _eos_set(eos_token_id)
    out = []
    for row in ids[:, prompt_length:].tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        out.append(row[:end])
    return out


@torch.no_grad()
def continuation_logits(
    model: nn.Module,
    prompt_ids: Tensor,
    texts: Sequence[Sequence[int]],
    *,
    attention_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """What `model` predicted at each token of the continuations `texts` of the prompts.

    Returns the logits (B, n, V) from which each of the n continuation tokens is predicted
    (from the prompt and the tokens before it, in one forward pass), the tokens (B, n),
    padded on the right, and a mask (B, n) that is 1 on real tokens. `prompt_ids` (B, T) may
    be padded on the left (`attention_mask` 0 there). `model` is our `GPT` or a Hugging
    Face causal LM (given the positions that count real tokens only, as in generation).
    """
    B = prompt_ids.size(0)
    if len(texts) != B:
        raise ValueError(f"expected one continuation per prompt ({B}), got {len(texts)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(prompt_ids)
    if attention_mask.shape != prompt_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} must have the shape of "
            f"prompt_ids {tuple(prompt_ids.shape)}"
        )
    T, n = prompt_ids.size(1), max((len(t) for t in texts), default=0)
    device = prompt_ids.device
    new = torch.zeros(B, n, dtype=prompt_ids.dtype, device=device)
    new_mask = torch.zeros(B, n, dtype=attention_mask.dtype, device=device)
    for b, text in enumerate(texts):
        new[b, : len(text)] = torch.tensor(list(text), dtype=prompt_ids.dtype)
        new_mask[b, : len(text)] = 1
    ids = torch.cat([prompt_ids, new], dim=1)[:, :-1]  # (B, T + n - 1): the last predicts nothing
    mask = torch.cat([attention_mask, new_mask], dim=1)[:, :-1]
    logits = _logits(model, ids, mask)[:, T - 1 :]  # (B, n, V): position T - 1 predicts token T
    return logits.float(), new, new_mask


def continuation_loglik(
    model: nn.Module,
    prompt_ids: Tensor,
    texts: Sequence[Sequence[int]],
    *,
    attention_mask: Tensor | None = None,
    batch_size: int = 8,
) -> tuple[float, list[float]]:
    """How likely `model` finds each continuation in `texts` after its (left-padded) prompt.

    Returns the mean log-probability per token over all continuation tokens together, and
    the mean of each text separately: each token t is scored by log p(t | prompt, tokens
    before t) (`continuation_logits`, `batch_size` prompts at a time); padding never counts.
    A model that puts probability 0.5 on every token gives log 0.5 = -0.693 per token.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(prompt_ids)
    if len(texts) != prompt_ids.size(0):
        raise ValueError(
            f"expected one continuation per prompt ({prompt_ids.size(0)}), got {len(texts)}"
        )
    sums, counts = [], []
    for start in range(0, len(texts), batch_size):
        rows = slice(start, start + batch_size)
        logits, tokens, keep = continuation_logits(
            model, prompt_ids[rows], texts[rows], attention_mask=attention_mask[rows]
        )
        logp = logits.log_softmax(dim=-1).gather(-1, tokens[..., None]).squeeze(-1)  # (b, n)
        sums += (logp * keep).sum(dim=1).tolist()
        counts += keep.sum(dim=1).tolist()
    total = sum(counts)
    per_text = [s / c if c else float("nan") for s, c in zip(sums, counts, strict=True)]
    return (sum(sums) / total if total else float("nan")), per_text


@dataclass(frozen=True)
class DecodingResult:
    """What one decoding strategy produced for a batch of prompts, and how it measures."""

    texts: list[list[int]]  # generated tokens per prompt, to the first eos (included)
    seconds: float  # wall-clock time of the generate call
    tokens: int  # generated tokens in all texts
    loglik: float  # mean log-probability per generated token under the model
    distinct_1: float
    distinct_2: float
    repetition: float  # mean repetition_rate (4-grams) of the texts

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    def row(self) -> dict[str, float]:
        """The numbers, for one row of a table."""
        return {
            "tokens/s": self.tokens_per_second,
            "log-lik/token": self.loglik,
            "distinct-1": self.distinct_1,
            "distinct-2": self.distinct_2,
            "repetition": self.repetition,
            "tokens/text": self.tokens / len(self.texts),
        }


def measure_decoding(
    model: nn.Module,
    input_ids: Tensor,
    *,
    max_new_tokens: int,
    attention_mask: Tensor | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    seed: int | None = 0,
    **strategy: Any,
) -> DecodingResult:
    """Continue the prompts `input_ids` (B, T) with `generate(model, ..., **strategy)` and
    measure the continuations: time, likelihood under `model`, diversity, repetition.

    Sampling draws from a generator seeded with `seed`, so a call repeats its texts; with
    ``seed=None`` it draws from torch's global generator (as HF's ``generate`` does), which
    the caller seeds. The likelihood pass is not part of the time.
    """
    generator = None if seed is None else torch.Generator(input_ids.device).manual_seed(seed)
    start = time.perf_counter()
    out = generate(
        model,
        input_ids,
        max_new_tokens=max_new_tokens,
        attention_mask=attention_mask,
        eos_token_id=eos_token_id,
        generator=generator,
        **strategy,
    )
    seconds = time.perf_counter() - start
    texts = continuations(out, input_ids.size(1), eos_token_id=eos_token_id)
    loglik, _ = continuation_loglik(model, input_ids, texts, attention_mask=attention_mask)
    return DecodingResult(
        texts=texts,
        seconds=seconds,
        tokens=sum(len(t) for t in texts),
        loglik=loglik,
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        repetition=sum(repetition_rate(t, 4) for t in texts) / len(texts),
    )


def _logits(model: nn.Module, ids: Tensor, mask: Tensor) -> Tensor:
    """Logits (B, T, V) of our GPT or of a Hugging Face causal LM for a padded batch."""
    if isinstance(model, GPT):
        return model(ids, attention_mask=mask)[0]
    extra = {}
    if "position_ids" in inspect.signature(model.forward).parameters:
        extra["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)  # real tokens only
    return model(input_ids=ids, attention_mask=mask, **extra).logits


def _eos_set(eos_token_id: int | Sequence[int] | None) -> set[int]:
    if eos_token_id is None:
        return set()
    return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(e) for e in eos_token_id}
