"""Token classification with a pretrained encoder: one label per word, from its first subword.

A tagging corpus gives one tag per *word* (``nlpbook.data.wnut17``: tokens and BIO tags),
but a WordPiece encoder sees subwords: "Hollande" may become ``holland ##e``. The usual
recipe (Devlin et al., 2019, for CoNLL-2003) labels only the first subword of each word and
ignores the rest in the loss (label -100, which ``F.cross_entropy`` skips); at prediction time
each word takes the tag predicted at its first subword::

    words   Hollande  visits  Paris          tags  B-person O B-location
    pieces  [CLS] holland ##e visits paris [SEP]
    labels   -100  B-person -100  O  B-location -100

- ``encode_words``: words -> subword ids and the index of each word's first subword.
- ``TokenClassificationPadding``: the ``collate_fn`` that pads ids and labels (-100).
- ``token_classification_loss``: the ``loss_fn`` for ``nlpbook.fit``.
- ``fine_tune_tagger``: a pretrained BERT folder + tagged sentences -> a fine-tuned tagger.
- ``predict_tags``: one predicted tag per word, for a model such as Hugging Face's
  ``BertForTokenClassification`` (a linear layer on every token vector of a BERT).
- ``repair_bio``: such a model tags each word on its own, so it can predict ``I-x`` where no
  entity of type x is open; the tag is read as the start of one (``B-x``), as the CoNLL
  evaluation script does, which makes every prediction valid IOB2.

A word that the tokenizer turns into no subword at all (a zero-width character, say) has no
vector to classify: ``encode_words`` marks it with -1 and ``predict_tags`` tags it ``O``.

>>> TokenClassificationPadding(pad_token_id=0)(
...     [{"input_ids": [101, 7, 102], "labels": [-100, 1, -100]},
...      {"input_ids": [101, 102], "labels": [-100, -100]}])["labels"].tolist()
[[-100, 1, -100], [-100, -100, -100]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlpbook.finetune import fine_tune
from nlpbook.train import History, evaluating

IGNORE = -100  # the label F.cross_entropy skips (ignore_index)


def encode_words(
    tokenizer: Any,
    words: Sequence[str],
    *,
    tags: Sequence[str] | None = None,
    label2id: Mapping[str, int] | None = None,
    max_length: int = 256,
) -> dict[str, list[int]]:
    """Subword ids of one sentence of `words`, and where each word starts.

    Returns ``input_ids`` (with the tokenizer's special tokens), ``first`` (per word, the
    position of its first subword, or -1 for a word with no subword) and, when `tags` and
    `label2id` are given, ``labels``: each word's tag id at its first subword, -100 elsewhere.
    A sentence longer than `max_length` subwords is an error (cutting it would drop the tags
    of its last words without a word).
    """
    if isinstance(words, str):
        raise TypeError("words must be a list of words, not one string")
    if tags is not None and len(tags) != len(words):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    if (tags is None) != (label2id is None):
        raise ValueError("give both tags and label2id, or neither")
    encoding = tokenizer(list(words), is_split_into_words=True)
    ids = encoding["input_ids"]
    if len(ids) > max_length:
        raise ValueError(
            f"the sentence has {len(ids)} subwords, more than max_length={max_length}: "
            f"split it or raise max_length"
        )
    first = [-1] * len(words)
    for position, word in enumerate(encoding.word_ids()):
        if word is not None and first[word] == -1:
            first[word] = position
    out = {"input_ids": ids, "first": first}
    if tags is not None:
        unknown = sorted(set(tags) - set(label2id))
        if unknown:
            raise ValueError(f"tags {unknown} are not in label2id ({sorted(label2id)})")
        labels = [IGNORE] * len(ids)
        for position, tag in zip(first, tags, strict=True):
            if position >= 0:
                labels[position] = label2id[tag]
        out["labels"] = labels
    return out


@dataclass(frozen=True)
class TokenClassificationPadding:
    """Collate encoded sentences into a batch padded to the longest one (a ``collate_fn``).

    Returns ``input_ids`` and ``attention_mask`` (B, T), and ``labels`` (B, T) padded with
    -100 when the examples have labels.
    """

    pad_token_id: int

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        if len(examples) == 0:
            raise ValueError("cannot collate an empty batch")
        T = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), T), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)  # (B, T)
        labels = torch.full_like(input_ids, IGNORE)  # (B, T)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.as_tensor(example["input_ids"], dtype=torch.long)
            attention_mask[row, :n] = 1
            if "labels" in example:
                labels[row, :n] = torch.as_tensor(example["labels"], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        has_labels = ["labels" in e for e in examples]
        if any(has_labels):
            if not all(has_labels):
                raise ValueError("some examples of the batch have labels and some do not")
            batch["labels"] = labels
        return batch


def token_classification_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """Mean cross-entropy over the labelled subwords (label != -100): `nlpbook.fit`'s loss_fn."""
    if "labels" not in batch:
        raise ValueError("the batch has no 'labels'; collate labelled sentences to train")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    B, T, V = logits.shape  # V: number of tags
    return F.cross_entropy(
        logits.reshape(B * T, V), batch["labels"].reshape(B * T), ignore_index=IGNORE
    )


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Valid IOB2 tags: an ``I-x`` that continues no entity of type x becomes ``B-x``.

    >>> repair_bio(["I-person", "I-person", "O", "I-location", "B-person", "I-location"])
    ['B-person', 'I-person', 'O', 'B-location', 'B-person', 'B-location']
    """
    out: list[str] = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1][2:] != tag[2:]):  # "O"[2:] == ""
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def fine_tune_tagger(
    folder: str | Path,
    sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
    *,
    labels: Sequence[str],
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    freeze_word_embeddings: bool = True,
    progress: bool = True,
) -> tuple[Any, nn.Module, History]:
    """Fine-tune the BERT in `folder` as a tagger of `sentences` ((words, tags) pairs).

    Hugging Face's ``BertForTokenClassification`` (a new linear layer on every token vector)
    is trained with the book's recipe, `nlpbook.finetune.fine_tune`: `steps` AdamW steps
    (a linear warm-up over the first tenth of the steps, then cosine decay to 0) on batches of
    `batch_size` sentences of similar lengths.
    With `freeze_word_embeddings` the word-embedding table, about half of a small BERT's
    parameters, is not trained. Returns (tokenizer, model, history).
    """
    from transformers import AutoTokenizer, BertForTokenClassification

    from nlpbook.pretrained import quiet_loading

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(seed)  # the new layer's initial weights
    with quiet_loading(new_weights_notice=False):  # the new layer is expected to be new
        model = BertForTokenClassification.from_pretrained(
            folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
        ).to(device)
    if freeze_word_embeddings:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    features = [encode_words(tokenizer, w, tags=t, label2id=label2id) for w, t in sentences]
    history = fine_tune(
        model,
        features,
        collate=TokenClassificationPadding(tokenizer.pad_token_id),
        loss_fn=token_classification_loss,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=steps // 10,
        seed=seed,
        desc="token classifier",
        progress=progress,
    )
    return tokenizer, model, history


@torch.inference_mode()
def predict_tags(
    model: nn.Module,
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    *,
    id2label: Mapping[int, str],
    batch_size: int = 64,
    max_length: int = 256,
) -> list[list[str]]:
    """One predicted tag per word of each sentence: the tag predicted at its first subword.

    A word with no subword gets ``O``, and the tags are made valid IOB2 (``repair_bio``). The
    model is in eval mode meanwhile; its mode is restored afterwards.
    """
    encoded = [encode_words(tokenizer, words, max_length=max_length) for words in sentences]
    order = np.argsort([len(e["input_ids"]) for e in encoded], kind="stable")
    collate = TokenClassificationPadding(tokenizer.pad_token_id)
    device = next(model.parameters()).device
    tags: list[list[str]] = [[] for _ in encoded]
    with evaluating(model):
        for start in range(0, len(encoded), batch_size):
            rows = order[start : start + batch_size]
            batch = collate([{"input_ids": encoded[i]["input_ids"]} for i in rows])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits  # (b, T, V)
            best = logits.argmax(-1).cpu().numpy()  # (b, T)
            for row, i in enumerate(rows):
                tags[i] = repair_bio(
                    [id2label[int(best[row, p])] if p >= 0 else "O" for p in encoded[i]["first"]]
                )
    return tags
