"""Extractive question answering: point at the answer's first and last token in the context.

A SQuAD-style model reads ``[CLS] question [SEP] context [SEP]`` and gives every token two
scores, "the answer starts here" and "the answer ends here" (BERT's ``qa_outputs``, one
linear layer of 2 outputs on each token vector). The answer is the span that maximises
start score + end score, with end >= start, inside the context:

    example --prepare_features--> windows of at most max_length tokens, labelled with the
            answer's (start, end) token, or (0, 0) = [CLS] when the window misses it
            --model------------> start_logits, end_logits (B, T)
            --best_spans-------> the best span over all windows of an example -> its text
            --squad_scores-----> exact match and F1 against the gold answers (x100)

A context longer than `max_length` becomes several overlapping windows (`stride` tokens are
shared by neighbours), so an answer near a border is whole in at least one of them.

>>> normalize_answer("The  Cat!")
'cat'
>>> exact_match("The Cat!", "cat"), f1("the big cat", "a cat sat")
(1.0, 0.5)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import BertForQuestionAnswering

from nlpbook.train import evaluating

Example = Mapping[str, Any]  # {id, title, context, question, answers: [{text, start}]}
Feature = dict[str, Any]  # one window: see `prepare_features`
_PUNCTUATION = set(string.punctuation)


def split_by_article(
    examples: Sequence[Example], *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """Split SQuAD examples into (train, test) by article, so no article is in both.

    Questions about one article share its paragraphs, names and topic: a random split by
    question would test on text the model was trained on. A seeded permutation of the titles
    picks ``round(test_fraction * n_titles)`` test articles (at least one, never all);
    examples keep their order within each split.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    titles = list(dict.fromkeys(e["title"] for e in examples))
    if len(titles) < 2:
        raise ValueError(f"need examples from at least 2 articles to split, got {len(titles)}")
    n_test = min(max(round(test_fraction * len(titles)), 1), len(titles) - 1)
    order = np.random.default_rng(seed).permutation(len(titles))
    test_titles = {titles[i] for i in order[:n_test]}
    train = [e for e in examples if e["title"] not in test_titles]
    test = [e for e in examples if e["title"] in test_titles]
    return train, test


def prepare_features(
    examples: Sequence[Example], tokenizer: Any, *, max_length: int = 384, stride: int = 128
) -> list[Feature]:
    """Tokenize question + context into windows of at most `max_length` tokens, with labels.

    Only the context is cut (``truncation="only_second"``); consecutive windows share
    `stride` tokens. Each feature is a dict with ``input_ids``, ``token_type_ids``,
    ``example_id``, ``offsets`` (per token: the (start, end) characters in the context, or
    None for question and special tokens) and ``start_position``/``end_position``: the
    tokens of the first gold answer, or the [CLS] index when the window does not hold it whole.
    `tokenizer` must be a fast (Rust-backed) Hugging Face tokenizer, for the offsets.
    """
    if not 0 <= stride < max_length:
        raise ValueError(f"expected 0 <= stride < max_length, got {stride} and {max_length}")
    for e in examples:
        if not e["answers"]:
            raise ValueError(f"example {e['id']} has no answers; expected at least one")
        for answer in e["answers"]:
            found = e["context"][answer["start"] : answer["start"] + len(answer["text"])]
            if found != answer["text"]:
                raise ValueError(
                    f"example {e['id']}: the answer {answer['text']!r} is not at character "
                    f"{answer['start']} of the context, which reads {found!r} there"
                )
    encoded = tokenizer(
        [e["question"].lstrip() for e in examples],  # some questions start with spaces
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    features = []
    for i, ids in enumerate(encoded["input_ids"]):
        example = examples[encoded["overflow_to_sample_mapping"][i]]
        in_context = [s == 1 for s in encoded.sequence_ids(i)]
        pairs = zip(encoded["offset_mapping"][i], in_context, strict=True)
        offsets = [tuple(o) if c else None for o, c in pairs]
        context_tokens = [t for t, c in enumerate(in_context) if c]
        answer = example["answers"][0]
        first_char, end_char = answer["start"], answer["start"] + len(answer["text"])
        window = offsets[context_tokens[0]][0], offsets[context_tokens[-1]][1]  # characters
        start = end = ids.index(tokenizer.cls_token_id)
        if window[0] <= first_char and end_char <= window[1]:
            # the answer is whole in this window: its first and last token
            start = next(t for t in context_tokens if offsets[t][1] > first_char)
            end = next(t for t in reversed(context_tokens) if offsets[t][0] < end_char)
        features.append(
            {
                "input_ids": ids,
                "token_type_ids": encoded["token_type_ids"][i],
                "example_id": example["id"],
                "offsets": offsets,
                "start_position": start,
                "end_position": end,
            }
        )
    return features


@dataclass(frozen=True)
class QAPadding:
    """Collate features into a batch padded to its longest window (a ``collate_fn``).

    Returns ``input_ids``, ``token_type_ids``, ``attention_mask`` (B, T) and the labels
    ``start_positions``, ``end_positions`` (B,), the names Hugging Face's QA models take.
    """

    pad_token_id: int

    def __call__(self, features: Sequence[Feature]) -> dict[str, Tensor]:
        if len(features) == 0:
            raise ValueError("cannot collate an empty batch")
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        token_type_ids = torch.zeros_like(input_ids)  # (B, T)
        attention_mask = torch.zeros_like(input_ids)  # (B, T)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.as_tensor(f["input_ids"])
            token_type_ids[row, :n] = torch.as_tensor(f["token_type_ids"])
            attention_mask[row, :n] = 1
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "start_positions": torch.tensor([f["start_position"] for f in features]),
            "end_positions": torch.tensor([f["end_position"] for f in features]),
        }


def load_qa_model(folder: str | Path) -> BertForQuestionAnswering:
    """A ``BertForQuestionAnswering`` with a pretrained encoder's weights and a new span head.

    Fails unless every encoder weight was found in `folder`: only ``qa_outputs`` (the linear
    layer giving each token its start and end score) may start at random. (An encoder's
    unused ``pooler`` is dropped.)
    """
    from nlpbook.pretrained import quiet_loading

    with quiet_loading(new_weights_notice=False):  # qa_outputs is new by design
        model, info = BertForQuestionAnswering.from_pretrained(folder, output_loading_info=True)
    missing = set(info["missing_keys"]) - {"qa_outputs.weight", "qa_outputs.bias"}
    if missing or info["mismatched_keys"]:
        raise ValueError(
            f"expected every encoder weight in {folder}, but missing: {sorted(missing)}, "
            f"mismatched: {sorted(info['mismatched_keys'])}"
        )
    return model


def qa_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """Mean of the start and end cross-entropies: the `loss_fn` to give `nlpbook.fit`.

    Each window is a classification over its T positions, once for the start token and once
    for the end token; padded positions are masked out of the softmax by the attention mask.
    """
    out = model(
        input_ids=batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"],
    )
    padding = batch["attention_mask"] == 0  # (B, T)
    start_logits = out.start_logits.masked_fill(padding, float("-inf"))  # (B, T)
    end_logits = out.end_logits.masked_fill(padding, float("-inf"))  # (B, T)
    start = F.cross_entropy(start_logits, batch["start_positions"])
    end = F.cross_entropy(end_logits, batch["end_positions"])
    return (start + end) / 2


def predict_logits(
    model: nn.Module, features: Sequence[Feature], *, pad_token_id: int, batch_size: int = 64
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start and end logits of every feature (one array of its own length each), in order.

    Features are batched by length, so that little padding is computed.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    starts: list[np.ndarray] = [np.empty(0)] * len(features)
    ends: list[np.ndarray] = [np.empty(0)] * len(features)
    collate = QAPadding(pad_token_id)
    with evaluating(model), torch.inference_mode():
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            batch = collate([features[i] for i in rows])
            out = model(
                input_ids=batch["input_ids"].to(device),
                token_type_ids=batch["token_type_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            )
            for j, i in enumerate(rows):
                n = len(features[i]["input_ids"])
                starts[i] = out.start_logits[j, :n].float().cpu().numpy()
                ends[i] = out.end_logits[j, :n].float().cpu().numpy()
    return starts, ends


def best_spans(
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    features: Sequence[Feature],
    examples: Sequence[Example],
    *,
    max_answer_tokens: int = 30,
    n_best: int = 20,
) -> dict[str, str]:
    """The predicted answer text of each example: its best span over all of its windows.

    In each window, the `n_best` highest start and end scores are paired; a pair is valid
    when both tokens are in the context, end >= start and the span has at most
    `max_answer_tokens` tokens. The valid span with the highest start + end score over all
    windows of an example wins; an example with no valid span gets "".
    """
    if not len(start_logits) == len(end_logits) == len(features):
        raise ValueError(
            f"expected one row of start and end logits per feature, got {len(start_logits)}, "
            f"{len(end_logits)} and {len(features)} features"
        )
    contexts = {e["id"]: e["context"] for e in examples}
    best: dict[str, tuple[float, str]] = {e["id"]: (float("-inf"), "") for e in examples}
    for starts, ends, feature in zip(start_logits, end_logits, features, strict=True):
        offsets, example_id = feature["offsets"], feature["example_id"]
        if example_id not in contexts:
            raise ValueError(f"feature of example {example_id}, which is not in `examples`")
        if len(starts) != len(offsets) or len(ends) != len(offsets):
            raise ValueError(
                f"a feature of example {example_id} has {len(offsets)} tokens but "
                f"{len(starts)} start and {len(ends)} end logits"
            )
        for s in np.argsort(starts)[::-1][:n_best]:
            for e in np.argsort(ends)[::-1][:n_best]:
                if offsets[s] is None or offsets[e] is None:
                    continue
                if e < s or e - s + 1 > max_answer_tokens:
                    continue
                score = float(starts[s] + ends[e])
                if score > best[example_id][0]:
                    text = contexts[example_id][offsets[s][0] : offsets[e][1]]
                    best[example_id] = (score, text)
    return {example_id: text for example_id, (_, text) in best.items()}


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation and a/an/the, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the two answers are equal after `normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Harmonic mean of precision and recall of the normalized tokens (with repeats).

    As in the official v1.1 script, no shared token gives 0, even for two empty answers.
    """
    predicted, truth = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], examples: Sequence[Example]) -> dict[str, float]:
    """The official SQuAD v1.1 metric: exact match and F1 (x100), averaged over `examples`.

    Each prediction scores its best match among the example's gold answers; as in the
    official script, an example with no prediction scores 0.
    """
    if len(examples) == 0:
        raise ValueError("no examples to score")
    em = f = 0.0
    for e in examples:
        prediction = predictions.get(e["id"])
        if prediction is None:
            continue
        golds = [a["text"] for a in e["answers"]]
        em += max(exact_match(prediction, g) for g in golds)
        f += max(f1(prediction, g) for g in golds)
    return {"exact_match": 100 * em / len(examples), "f1": 100 * f / len(examples)}


def sentence_overlap_baseline(examples: Sequence[Example]) -> dict[str, str]:
    """Answer each question with the context sentence sharing most words with it.

    A baseline with no learning: sentences end at ., ! or ? followed by a space; words are
    compared after `normalize_answer`; ties go to the earlier sentence.
    """
    predictions = {}
    for e in examples:
        question = set(normalize_answer(e["question"]).split())
        sentences = re.split(r"(?<=[.!?])\s+", e["context"].strip())
        overlaps = [len(question & set(normalize_answer(s).split())) for s in sentences]
        predictions[e["id"]] = sentences[int(np.argmax(overlaps))]
    return predictions
