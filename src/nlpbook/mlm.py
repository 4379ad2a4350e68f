"""Masked language modelling (Devlin et al. 2019): corrupt a text, predict what was hidden.

Pretraining data for BERT is made by choosing about 15% of the tokens of each sequence
and corrupting them; the model is scored only on those positions. Of the chosen tokens,
80% become ``[MASK]``, 10% a random token and 10% stay as they were, so that the model
cannot tell from the input which tokens it will be asked about::

    tokens   [CLS] the cat sat on the mat [SEP]
    inputs   [CLS] the [MASK] sat on the mat [SEP]      ("cat" chosen, replaced by [MASK])
    labels   -100  -100  cat  -100 -100 -100 -100 -100

`mask_tokens` makes such pairs; calling it on every batch as it is drawn gives each
sequence a new mask every epoch (*dynamic masking*, RoBERTa's change). `pack_blocks` cuts a
corpus into the fixed-length blocks it works on, `masked_lm_loss` is the training loss
computed at the chosen positions only, and `masked_predictions` scores a model on
held-out blocks. `span_corruption` is T5's variant: whole spans are cut out and the model
writes them back, as in the chapter on multilingual translation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from nlpbook.bert import IGNORE_INDEX, BERTForMaskedLM
from nlpbook.train import evaluating

T = TypeVar("T")  # a token: an id or a string

MASK_FRACTION = 0.8  # of the chosen tokens: replaced by [MASK] ...
RANDOM_FRACTION = 0.1  # ... by a random token; the remaining 10% are left unchanged


def mask_tokens(
    input_ids: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    prob: float = 0.15,
    generator: torch.Generator | None = None,
    continues_word: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's corruption of a batch: ``input_ids (B, T) -> (inputs (B, T), labels (B, T))``.

    Each token whose id is not in `special_ids` is chosen with probability `prob`. Of the
    chosen tokens, 80% become `mask_token_id`, 10% a token drawn uniformly from
    ``[0, vocab_size)`` and 10% are left unchanged. `labels` holds the original token at the
    chosen positions and `IGNORE_INDEX` (-100) everywhere else. Put the padding id in
    `special_ids`: padding, ``[CLS]`` and ``[SEP]`` are never chosen. The input is not
    modified.

    Whole-word masking: with `continues_word`, a (V,) boolean table that is True for the
    tokens that continue the word before them (WordPiece's ``##`` pieces), words are
    chosen with probability `prob` and all their tokens are chosen together; the
    80/10/10 split is still drawn for each token.

    The random numbers come from `generator` (on its own device) when given, so the same
    seed gives the same masks:

    >>> ids = torch.tensor([[2, 7, 8, 9, 3, 0]])  # [CLS] w w w [SEP] [PAD]
    >>> g = torch.Generator().manual_seed(3)
    >>> inputs, labels = mask_tokens(ids, mask_token_id=4, vocab_size=10,
    ...                              special_ids=[0, 2, 3, 4], prob=0.5, generator=g)
    >>> inputs.tolist(), labels.tolist()  # 7 and 8 became [MASK]; 9 was chosen but kept
    ([[2, 4, 4, 9, 3, 0]], [[-100, 7, 8, 9, -100, -100]])
    """
    if input_ids.dtype not in (torch.int64, torch.int32) or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must be integer ids (B, T), got {input_ids.dtype} {tuple(input_ids.shape)}"
        )
    if not 0.0 < prob <= 1.0:
        raise ValueError(f"prob must be in (0, 1], got {prob}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id must lie in [0, {vocab_size}), got {mask_token_id}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(
            f"input_ids must lie in [0, {vocab_size}), got values from "
            f"{input_ids.min().item()} to {input_ids.max().item()}"
        )
    specials = torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype)
    if mask_token_id not in specials.tolist():
        raise ValueError(
            f"special_ids must include mask_token_id {mask_token_id} (and [CLS], [SEP], "
            f"[PAD]), got {specials.tolist()}"
        )
    device = input_ids.device
    eligible = ~torch.isin(input_ids, specials.to(device))  # (B, T)

    def uniform() -> Tensor:  # (B, T) numbers in [0, 1), from the generator's device
        where = generator.device if generator is not None else device
        return torch.rand(input_ids.shape, generator=generator, device=where).to(device)

    draw = uniform()
    if continues_word is not None:
        if continues_word.shape != (vocab_size,) or continues_word.dtype != torch.bool:
            raise ValueError(
                f"continues_word must be a bool table of shape ({vocab_size},), got "
                f"{continues_word.dtype} {tuple(continues_word.shape)}"
            )
        # every token takes the draw of the first token of its word
        starts = ~continues_word.to(device)[input_ids] | ~eligible  # (B, T)
        T = input_ids.size(1)
        positions = torch.arange(T, device=device).expand_as(input_ids)  # (B, T)
        first = torch.where(starts, positions, 0).cummax(dim=1).values  # (B, T)
        draw = draw.gather(1, first)
    chosen = eligible & (draw < prob)  # (B, T)

    kind = uniform()  # one more draw per token: [MASK], random or unchanged
    to_mask = chosen & (kind < MASK_FRACTION)
    to_random = chosen & (kind >= MASK_FRACTION) & (kind < MASK_FRACTION + RANDOM_FRACTION)
    where = generator.device if generator is not None else device
    random_ids = torch.randint(
        vocab_size, input_ids.shape, generator=generator, device=where, dtype=input_ids.dtype
    ).to(device)

    inputs = input_ids.clone()
    inputs[to_mask] = mask_token_id
    inputs[to_random] = random_ids[to_random]
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)
    return inputs, labels


def pack_blocks(
    sequences: Iterable[Sequence[int]], *, block_size: int, cls_id: int, sep_id: int
) -> Tensor:
    """Concatenate tokenized documents and cut them into blocks of `block_size` tokens.

    Documents are joined with ``[SEP]`` between them and cut into pieces of
    ``block_size - 2`` tokens, each framed as ``[CLS] piece [SEP]``; a short last piece
    is dropped, so no block needs padding. A block may hold the end of one document and
    the start of the next, as RoBERTa's full-sentence inputs do.

    >>> pack_blocks([[5, 6, 7], [8, 9]], block_size=5, cls_id=1, sep_id=2).tolist()
    [[1, 5, 6, 7, 2], [1, 2, 8, 9, 2]]
    """
    if block_size < 3:
        raise ValueError(f"block_size must be at least 3 ([CLS] token [SEP]), got {block_size}")
    stream: list[int] = []
    for i, ids in enumerate(sequences):
        if i:
            stream.append(sep_id)
        stream.extend(ids)
    n = len(stream) // (block_size - 2)
    if n == 0:
        raise ValueError(
            f"{len(stream)} tokens make no block of {block_size - 2} tokens plus [CLS] and [SEP]"
        )
    body = torch.tensor(stream[: n * (block_size - 2)]).view(n, block_size - 2)  # (N, T-2)
    cls = torch.full((n, 1), cls_id)
    sep = torch.full((n, 1), sep_id)
    return torch.cat([cls, body, sep], dim=1)  # (N, T)


def masked_lm_loss(
    model: BERTForMaskedLM,
    input_ids: Tensor,
    labels: Tensor,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Mean cross-entropy at the labelled positions, with the head run on those only.

    Equal to ``model(input_ids, attention_mask, labels=labels)[1]``, but the vocabulary
    projection, (C -> V) for every position, is applied to the ~15% of positions that
    have a label instead of all of them, which saves most of its time and memory.
    """
    if labels.shape != input_ids.shape:
        raise ValueError(
            f"labels has shape {tuple(labels.shape)}, expected that of input_ids "
            f"{tuple(input_ids.shape)}"
        )
    hidden = model.bert(input_ids, attention_mask)  # (B, T, C)
    chosen = labels != IGNORE_INDEX  # (B, T)
    if not chosen.any():  # as F.cross_entropy does with no target: NaN, not an error
        return hidden.sum() * float("nan")
    logits = model.head(hidden[chosen])  # (N, V): N labelled positions
    return F.cross_entropy(logits, labels[chosen])


@torch.inference_mode()
def masked_predictions(
    model: BERTForMaskedLM,
    inputs: Tensor,
    labels: Tensor,
    *,
    attention_mask: Tensor | None = None,
    batch_size: int = 64,
    top_k: int = 1,
) -> tuple[Tensor, Tensor]:
    """Score `model` on already-masked blocks: ``-> (nll (N,), top (N, top_k))``.

    For every labelled position, in row-major order (that of ``labels[labels != -100]``),
    the negative log-likelihood of the true token in nats and the `top_k` most likely
    tokens, best first. The loss is ``nll.mean()`` and the accuracy
    ``(top[:, 0] == labels[labels != -100]).float().mean()``. Padded inputs need their
    `attention_mask` (1 for real tokens); blocks from `pack_blocks` have no padding. Runs
    in eval mode, `batch_size` rows at a time.
    """
    for label, other in (("labels", labels), ("attention_mask", attention_mask)):
        if other is not None and other.shape != inputs.shape:
            raise ValueError(
                f"{label} has shape {tuple(other.shape)}, expected that of inputs "
                f"{tuple(inputs.shape)}"
            )
    device = next(model.parameters()).device
    nll, top = [], []
    with evaluating(model):
        for i in range(0, len(inputs), batch_size):
            x = inputs[i : i + batch_size].to(device)
            y = labels[i : i + batch_size].to(device)
            mask = None if attention_mask is None else attention_mask[i : i + batch_size].to(device)
            chosen = y != IGNORE_INDEX  # (b, T)
            logits = model.head(model.bert(x, mask)[chosen])  # (n, V)
            nll.append(F.cross_entropy(logits, y[chosen], reduction="none").cpu())
            top.append(logits.topk(top_k, dim=-1).indices.cpu())
    return torch.cat(nll), torch.cat(top)


def span_corruption(
    tokens: Sequence[T],
    *,
    sentinels: Sequence[T],
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    rng: np.random.Generator,
) -> tuple[list[T], list[T]]:
    """T5's pretraining objective (Raffel et al. 2020): drop spans, write them out in order.

    About ``noise_density * len(tokens)`` tokens, in spans of ``mean_span_length`` on
    average, are cut from the input; each span leaves one sentinel in its place, and the
    target lists every sentinel followed by the tokens it hides, then one last sentinel::

        tokens   the cat sat on the mat today
        inputs   the cat <X> on the mat <Y>
        targets  <X> sat <Y> today <Z>

    The target is much shorter than the text, which makes pretraining cheap; mT5 uses the
    same objective on 101 languages. The span lengths and gaps are random compositions of
    the noise and non-noise counts (as in T5), the text starts with a gap.
    """
    n = len(tokens)
    if n < 2:
        raise ValueError(f"need at least 2 tokens to corrupt, got {n}")
    if not 0 < noise_density < 1 or mean_span_length < 1:
        raise ValueError(
            f"expected 0 < noise_density < 1 and mean_span_length >= 1, got "
            f"{noise_density} and {mean_span_length}"
        )
    num_noise = min(max(1, round(n * noise_density)), n - 1)
    num_spans = max(1, min(round(num_noise / mean_span_length), n - num_noise))
    if len(sentinels) < num_spans + 1:
        raise ValueError(f"{num_spans} spans need {num_spans + 1} sentinels, got {len(sentinels)}")

    def lengths(total: int) -> list[int]:  # `total` split into num_spans positive parts
        cuts = np.sort(rng.choice(np.arange(1, total), size=num_spans - 1, replace=False))
        return np.diff([0, *cuts.tolist(), total]).tolist()

    inputs: list[T] = []
    targets: list[T] = []
    position = 0
    for span, (gap, noise) in enumerate(
        zip(lengths(n - num_noise), lengths(num_noise), strict=True)
    ):
        inputs += [*tokens[position : position + gap], sentinels[span]]
        targets += [sentinels[span], *tokens[position + gap : position + gap + noise]]
        position += gap + noise
    return inputs, [*targets, sentinels[num_spans]]
