"""Classifying text by prompting a causal language model, with no training at all.

A prompt ends where the answer should begin, and the model's next-token distribution is
read only at the candidate answers, one word per class::

    "Review: a gripping movie .\\nSentiment:"  -> log p(" positive") = -0.9
                                              log p(" negative") = -2.3
                                              -> predict "positive"

Restricting the prediction to the label words turns free generation into a classifier
that always answers with a valid label, whatever else the model would have said.
*Few-shot* prompts put a few solved examples before the question (in-context learning);
*zero-shot* prompts give none. `prompt` and `chat_prompt` build both kinds, as plain text
or in a chat model's own template.

Many prompts share their beginning (an instruction, the same solved examples), so
`next_token_log_probs` runs that shared prefix through the model once and continues every
prompt from its KV cache: a long few-shot prefix then costs no more per example than a
zero-shot prompt.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

Example = tuple[str, str]  # (text, its answer)


def prompt(
    text: str,
    *,
    examples: Sequence[Example] = (),
    template: str = "Review: {text}\nSentiment:",
    answer: str = " {answer}",
    separator: str = "\n\n",
) -> str:
    """A plain-text prompt for `text`, after the solved `examples` (none: zero-shot).

    >>> prompt("dull .", examples=[("great fun .", "positive")])
    'Review: great fun .\\nSentiment: positive\\n\\nReview: dull .\\nSentiment:'
    """
    shots = [template.format(text=t) + answer.format(answer=a) for t, a in examples]
    return separator.join([*shots, template.format(text=text)])


def chat_prompt(
    tokenizer: Any,
    text: str,
    *,
    instruction: str,
    examples: Sequence[Example] = (),
) -> str:
    """`text` as a chat: one user turn (`instruction`, a blank line, `text`) per example and
    the model's answer to each, then the question, in the tokenizer's chat template.

    The string ends with the template's opening of the assistant's turn, so the next
    token is the first token of the answer.
    """
    messages = []
    for t, a in examples:
        messages += [
            {"role": "user", "content": f"{instruction}\n\n{t}"},
            {"role": "assistant", "content": a},
        ]
    messages.append({"role": "user", "content": f"{instruction}\n\n{text}"})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def candidate_ids(tokenizer: Any, candidates: Sequence[str]) -> list[int]:
    """The token id of each candidate answer; each must be exactly one token, all different.

    Mind the leading space: after ``"Sentiment:"`` the answer is ``" positive"``, a
    different token from ``"positive"``.
    """
    ids = []
    for word in candidates:
        tokens = tokenizer.encode(word, add_special_tokens=False)
        if len(tokens) != 1:
            raise ValueError(
                f"candidate {word!r} is {len(tokens)} tokens {tokens}; expected exactly one "
                "(choose another word, or mind the leading space)"
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"candidates {list(candidates)} share a token: {ids}")
    return ids


@torch.inference_mode()
def next_token_log_probs(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    candidates: Sequence[str],
    batch_size: int = 16,
    share_prefix: bool = True,
) -> np.ndarray:
    """log p(candidate | prompt) (N, K): each candidate as the next token after each prompt.

    The probabilities are the model's, over its whole vocabulary, so a row's exponentials
    sum to the probability mass the model gives the candidates together (at most 1); the
    predicted class is the row's argmax. `model` is a Hugging Face causal LM (in eval mode).

    With `share_prefix`, the longest run of tokens that begins every prompt is read once
    and its KV cache reused for every batch; each batch then reads only the rest of its
    prompts, padded on the left so that every row's last token is in the last column. The
    result equals reading every prompt whole, up to float rounding.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(prompts) == 0:
        raise ValueError("no prompts to score")
    wanted = torch.tensor(candidate_ids(tokenizer, candidates))
    ids = tokenizer(list(prompts))["input_ids"]
    if min(len(x) for x in ids) == 0:
        raise ValueError("a prompt has no tokens")
    shared = _common_prefix(ids) if share_prefix else 0
    shared = min(shared, min(len(x) for x in ids) - 1)  # every prompt keeps >= 1 token to read
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    extra = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    prefix_cache = None
    if shared:
        prefix = torch.tensor([ids[0][:shared]], device=device)  # (1, P)
        prefix_cache = model(input_ids=prefix, use_cache=True).past_key_values
    rest = [x[shared:] for x in ids]
    order = np.argsort([len(x) for x in rest], kind="stable")  # similar lengths batch together
    out = np.empty((len(prompts), len(wanted)), dtype=np.float32)
    for start in range(0, len(rest), batch_size):
        rows = order[start : start + batch_size]
        B, S = len(rows), max(len(rest[i]) for i in rows)
        input_ids = torch.full((B, S), pad, dtype=torch.long)
        mask = torch.zeros((B, shared + S), dtype=torch.long)
        mask[:, :shared] = 1  # every row sees the whole shared prefix
        for r, i in enumerate(rows):  # left padding: the last token of every row is at S - 1
            input_ids[r, S - len(rest[i]) :] = torch.tensor(rest[i])
            mask[r, shared + S - len(rest[i]) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]  # (B, S): real tokens only
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)  # the model appends to the cache it is given
            cache.batch_repeat_interleave(B)  # (1, ...) -> (B, ...)
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=cache is not None,
            **extra,
        ).logits[:, -1]  # (B, V) at the last token
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        out[rows] = log_probs[:, wanted.to(device)].cpu().numpy()  # (B, K)
    return out


def _common_prefix(ids: Sequence[Sequence[int]]) -> int:
    """How many tokens every sequence of `ids` begins with.

    >>> _common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
    2
    """
    first = ids[0]
    n = min(len(x) for x in ids)
    for seq in ids[1:]:
        n = next((j for j in range(n) if seq[j] != first[j]), n)
    return n


def _accepts(model: nn.Module, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters
