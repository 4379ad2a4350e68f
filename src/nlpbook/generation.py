"""Generating text from a causal language model, one token at a time.

Each step turns the logits of the last position into the next token, appends it and
runs the model again. How the next token is chosen is the decoding strategy::

    greedy:       next = argmax(logits)
    sampling:     next ~ softmax(filter_logits(logits, temperature, top_k, top_p))
    beam search:  keep the num_beams most likely sequences so far, extend each by every
                  token, keep the num_beams best of the extensions; at the end return the
                  finished sequence with the best length-normalised log-likelihood

Before choosing, two penalties may change the scores: `repetition_penalty` makes every
token already in the text less likely, and `no_repeat_ngram_size` forbids the tokens that
would repeat an n-gram of the text.

With a KV cache the model reads the prompt once, then only the newest token per step.
`generate` drives our `nlpbook.gpt.GPT` and any Hugging Face causal LM the same way, and
follows the conventions of HF's ``model.generate``, so the two agree token for token.

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
    num_beams: int = 1,  # 1: one sequence per prompt (greedy or sampling)
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,  # 0: no top-k filtering
    top_p: float = 1.0,  # 1.0: no nucleus filtering
    repetition_penalty: float = 1.0,  # 1.0: none; > 1 discourages tokens already present
    length_penalty: float = 1.0,  # beam search: score = log-likelihood / length**length_penalty
    no_repeat_ngram_size: int = 0,  # 0: off; n: never repeat an n-gram
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,  # for finished rows; None: the (first) eos token
    attention_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue the prompts `input_ids` (B, T); returns (B, T + n) token ids, n <= max_new_tokens.

    Generation stops early once every row has produced an ``eos_token_id`` (beam search:
    once no running beam can beat the finished ones). Sampling draws from `generator` when
    given, so a seeded generator repeats the same text. For our GPT, a prompt must fit its
    ``block_size``; longer continuations slide a window over the last ``block_size`` tokens
    (recomputed without a cache once the window moves). Dropout stays on if the model is
    in training mode: call ``model.eval()`` first.

    >>> from nlpbook.gpt import GPT, GPTConfig
    >>> _ = torch.manual_seed(0)
    >>> model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    >>> generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=4).shape
    torch.Size([1, 7])
    >>> generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=4, num_beams=3).shape
    torch.Size([1, 7])
    """
    eos = _check_args(
        model,
        input_ids,
        attention_mask,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        eos_token_id=eos_token_id,
    )
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else None)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids)
    if max_new_tokens == 0:
        return input_ids
    state = _Stepper(model, use_cache=use_cache)

    def penalize(scores: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
        if repetition_penalty != 1.0:
            scores = apply_repetition_penalty(scores, ids, mask, penalty=repetition_penalty)
        if no_repeat_ngram_size > 0:
            scores = ban_repeated_ngrams(scores, ids, mask, n=no_repeat_ngram_size)
        return scores

    if num_beams > 1:
        return _beam_search(
            state,
            input_ids,
            mask,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            length_penalty=length_penalty,
            eos=eos,
            pad=pad,
            penalize=penalize,
        )
    ids = input_ids
    finished = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)
    eos_ids = torch.tensor(eos, dtype=ids.dtype, device=ids.device)
    for _ in range(max_new_tokens):
        logits = penalize(state.step(ids, mask), ids, mask)  # (B, V) at the last position
        if do_sample:
            logits = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
            probs = logits.softmax(dim=-1)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
        else:
            next_id = logits.argmax(dim=-1)  # (B,)
        if eos:
            if pad is not None:
                next_id = next_id.masked_fill(finished, pad)
            finished |= torch.isin(next_id, eos_ids)
        ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, T + 1)
        mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
        if eos and bool(finished.all()):
            break
    return ids


def filter_logits(
    logits: Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> Tensor:
    """Reshape next-token logits (..., V) for sampling: temperature, then top-k, then top-p.

    Temperature divides the logits: below 1 it sharpens the distribution towards the most
    likely tokens, above 1 it flattens it. Top-k keeps the k most likely tokens; top-p
    (nucleus) keeps the smallest set of most likely tokens whose probabilities add up to at
    least p. Removed tokens get -inf, so that softmax gives them probability 0.

    >>> filter_logits(torch.tensor([2.0, 1.0, 0.0, -1.0]), top_k=2)
    tensor([2., 1., -inf, -inf])
    >>> torch.tensor([2.0, 1.0, 0.0, -1.0]).softmax(-1)  # the two first hold 0.91 > 0.8
    tensor([0.6439, 0.2369, 0.0871, 0.0321])
    >>> filter_logits(torch.tensor([2.0, 1.0, 0.0, -1.0]), top_p=0.8)
    tensor([2., 1., -inf, -inf])
    """
    _check_filters(temperature, top_k, top_p)
    logits = logits / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        # least likely first: drop tokens while the mass dropped so far stays <= 1 - top_p
        sorted_logits, order = torch.sort(logits, dim=-1)  # (..., V) ascending
        dropped_mass = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = dropped_mass <= 1 - top_p
        drop[..., -1] = False  # the most likely token always stays
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def apply_repetition_penalty(
    scores: Tensor, ids: Tensor, mask: Tensor, *, penalty: float
) -> Tensor:
    """Make every token that occurs in a row's text (B, T) less likely (Keskar et al., 2019).

    A positive score is divided by `penalty`, a negative one multiplied by it, so both
    move down for penalty > 1. Padding (mask 0) does not count as text.

    >>> apply_repetition_penalty(torch.tensor([[2.0, -1.0, 3.0]]), torch.tensor([[0, 1]]),
    ...                          torch.ones(1, 2), penalty=2.0)
    tensor([[ 1., -2.,  3.]])
    """
    ids = torch.where(mask.bool(), ids, ids[:, -1:])  # padding -> a real token of the row
    seen = scores.gather(1, ids)  # (B, T)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(1, ids, seen)


def ban_repeated_ngrams(scores: Tensor, ids: Tensor, mask: Tensor, *, n: int) -> Tensor:
    """Give -inf to every token that would complete an n-gram already in the row's text.

    >>> ban_repeated_ngrams(torch.zeros(1, 5), torch.tensor([[1, 2, 3, 1, 2]]),
    ...                     torch.ones(1, 5), n=3)  # "1 2" was followed by 3 before
    tensor([[0., 0., 0., -inf, 0.]])
    """
    scores = scores.clone()
    for row, (tokens, real) in enumerate(zip(ids.tolist(), mask.bool().tolist(), strict=True)):
        text = [t for t, r in zip(tokens, real, strict=True) if r]
        banned = _ngram_continuations(text, n)
        if banned:
            scores[row, banned] = float("-inf")
    return scores


def _ngram_continuations(tokens: list[int], n: int) -> list[int]:
    """The tokens that followed, earlier in `tokens`, its last n - 1 tokens.

    >>> _ngram_continuations([1, 2, 3, 1, 2], 3)
    [3]
    """
    if len(tokens) < n - 1:
        return []
    prefix = tokens[len(tokens) - (n - 1) :]
    return [
        tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i : i + n - 1] == prefix
    ]


def _beam_search(
    state: _Stepper,
    input_ids: Tensor,
    mask: Tensor,
    *,
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float,
    eos: list[int],
    pad: int | None,
    penalize: Any,
) -> Tensor:
    """Beam search: the best finished sequence of each row, padded with `pad` to one length.

    Each row keeps `num_beams` running sequences (beams) with their summed log-probabilities.
    A step scores every beam-and-token extension, keeps the 2 * num_beams best (so that
    enough remain after some end), moves the ones that end among the num_beams best to the
    row's finished list (score: log-likelihood / length**length_penalty), and continues the
    num_beams best that do not end. A row is done when it has num_beams finished sequences
    and its best running beam, normalised by its current length, scores no better than the
    worst of them (HF's default stopping rule, ``early_stopping=False``). At
    `max_new_tokens` every beam ends.
    """
    B, K = input_ids.size(0), num_beams
    ids = input_ids.repeat_interleave(K, dim=0)  # (B*K, T): K copies of each prompt
    mask = mask.repeat_interleave(K, dim=0)
    scores = torch.zeros(B, K, device=ids.device)
    scores[:, 1:] = -1e9  # the copies are identical: extend only the first at step 1
    eos_ids = torch.tensor(eos, dtype=ids.dtype, device=ids.device)
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(B)]  # best first
    done = [False] * B
    offsets = torch.arange(B, device=ids.device)[:, None] * K  # (B, 1): first beam of each row
    for step in range(max_new_tokens):
        logp = state.step(ids, mask).log_softmax(dim=-1)  # (B*K, V)
        logp = penalize(logp, ids, mask)  # as in HF, penalties act on log-probabilities
        V = logp.size(-1)
        total = (logp.view(B, K, V) + scores[:, :, None]).view(B, K * V)  # (B, K*V)
        cand_scores, cand = total.topk(max(2, 1 + len(eos)) * K, dim=-1)  # (B, 2K) best first
        beam, token = cand // V, cand % V  # which beam each candidate extends, with what
        ends = torch.isin(token, eos_ids) | (step == max_new_tokens - 1)  # (B, 2K)
        length = step + 1  # generated tokens, the new one included
        for b in range(B):
            if done[b]:
                continue
            for rank in range(K):  # only the K best candidates may finish
                if ends[b, rank]:
                    seq = torch.cat([ids[b * K + beam[b, rank]], token[b, rank, None]])
                    score = cand_scores[b, rank].item() / length**length_penalty
                    finished[b] = sorted([*finished[b], (score, seq)], key=lambda h: -h[0])[:K]
        if step == max_new_tokens - 1:
            break
        keep = cand_scores.masked_fill(ends, float("-inf")).topk(K, dim=-1).indices  # (B, K)
        scores = cand_scores.gather(1, keep)  # (B, K) best first
        parents = (beam.gather(1, keep) + offsets).view(-1)  # (B*K,) rows of ids they extend
        ids = torch.cat([ids[parents], token.gather(1, keep).view(-1, 1)], dim=1)  # (B*K, T+1)
        mask = torch.cat([mask[parents], mask.new_ones(B * K, 1)], dim=1)
        state.reorder(parents)
        for b in range(B):
            if (
                len(finished[b]) == K
                and scores[b, 0].item() / length**length_penalty <= (finished[b][-1][0])
            ):
                done[b] = True
        if all(done):
            break
    best = [hyps[0][1] for hyps in finished]
    out = torch.full(
        (B, max(len(seq) for seq in best)),
        pad if pad is not None else 0,
        dtype=ids.dtype,
        device=ids.device,
    )
    for b, seq in enumerate(best):
        out[b, : len(seq)] = seq
    return out


class _Stepper:
    """Runs one decoding step of our GPT or of a HF model, with or without a KV cache.

    ``step(ids, mask)`` returns the logits (B, V) of the last position of `ids` (B, T); with
    the cache on it feeds the model only the tokens it has not seen. Our GPT reads at most
    ``block_size`` tokens: past that the window slides and the cache is dropped.
    """

    def __init__(self, model: nn.Module, *, use_cache: bool) -> None:
        self.model, self.use_cache = model, use_cache
        self.cache: Any = None
        self.seen = 0  # tokens already in the cache
        self.takes_positions = "position_ids" in inspect.signature(model.forward).parameters
        self.block_size = model.config.block_size if isinstance(model, GPT) else None

    def step(self, ids: Tensor, mask: Tensor) -> Tensor:
        if self.block_size is not None and ids.size(1) > self.block_size:
            # the window moves: every position changes, so the cache is stale
            self.use_cache, self.cache, self.seen = False, None, 0
            ids, mask = ids[:, -self.block_size :], mask[:, -self.block_size :]
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

    def reorder(self, rows: Tensor) -> None:
        """Keep the cached rows `rows` (B,) in that order: the parents of the new beams."""
        if self.cache is None:
            return
        if hasattr(self.cache, "reorder"):  # ours
            self.cache.reorder(rows)
        elif hasattr(self.cache, "reorder_cache"):  # a Hugging Face Cache
            self.cache.reorder_cache(rows)
        else:
            raise TypeError(f"cannot reorder a cache of type {type(self.cache).__name__}")


def _context_size(model: nn.Module) -> int | None:
    """How many positions the model can read: our block_size, or a HF config's limit."""
    if isinstance(model, GPT):
        return model.config.block_size
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    return None


def _check_filters(temperature: float, top_k: int, top_p: float) -> None:
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (use do_sample=False for greedy), got {temperature}"
        )
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = no filtering), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = no filtering), got {top_p}")


def _check_args(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    *,
    max_new_tokens: int,
    num_beams: int,
    do_sample: bool,
    temperature: float,
    top_k: int,
    top_p: float,
    repetition_penalty: float,
    no_repeat_ngram_size: int,
    eos_token_id: int | Sequence[int] | None,
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
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1 (1 = no beam search), got {num_beams}")
    if num_beams > 1 and do_sample:
        raise ValueError("choose beam search (num_beams > 1) or sampling (do_sample), not both")
    _check_filters(temperature, top_k, top_p)
    if not repetition_penalty > 0:
        raise ValueError(
            f"repetition_penalty must be > 0 (1 = none, > 1 penalises), got {repetition_penalty}"
        )
    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0 (0 = off), got {no_repeat_ngram_size}")
    context = _context_size(model)
    if context is not None and input_ids.size(1) > context:
        what = "block_size" if isinstance(model, GPT) else "context (max_position_embeddings)"
        raise ValueError(
            f"the prompt has {input_ids.size(1)} tokens but the model's {what} is {context}"
        )
    if context is not None and not isinstance(model, GPT):
        if input_ids.size(1) + max_new_tokens > context:
            raise ValueError(
                f"{input_ids.size(1)} prompt tokens + max_new_tokens={max_new_tokens} exceed "
                f"the model's context of {context} positions"
            )
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
