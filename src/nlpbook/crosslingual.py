"""Zero-shot cross-lingual transfer: train a classifier on English, test it on other languages.

A multilingual sentence encoder maps a sentence and its translation to nearby vectors. A
classifier trained on the vectors of English sentences alone draws its decision boundary
in that shared space, and the boundary applies to German or French vectors as well, without
a single labelled German or French example. This module holds the pieces to measure that:

- `sst2_translated` reads 200 SST-2 dev sentences with German and French translations
  written for this book (the file `data/sst2_dev_translated.tsv`, checked row by row against
  SST-2 itself);
- `sst2_train_sample` draws the seeded subset of English SST-2 training sentences that the
  classifier learns from;
- `embed` turns texts into multilingual-e5 vectors (its ``"query: "`` prefix, mean pooling
  by `nlpbook.retrieval.encode`);
- `zero_shot_transfer` fits a logistic regression on English vectors and scores every test
  set, with how often the predictions in each language agree with the English ones;
- `binomial_interval` is the Wilson 95% interval of an accuracy measured on n sentences.

>>> train = np.array([[1.0, 0.0], [2.0, 0.1], [-1.0, 0.0], [-2.0, -0.1]])
>>> result = zero_shot_transfer(
...     train, [1, 1, 0, 0],
...     {"en": (np.array([[1.5, 0.0], [-1.5, 0.0]]), [1, 0]),
...      "de": (np.array([[1.2, 0.3], [0.2, -0.3]]), [1, 0])},
...     parallel=("en", "de"),
... )
>>> result.accuracy, result.agreement
({'en': 1.0, 'de': 0.5}, {'de': 0.5})
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.linear_model import LogisticRegression

from nlpbook.retrieval import encode

TRANSLATED_FILE = "sst2_dev_translated.tsv"
TRANSLATED_COLUMNS = ("dev_index", "label", "en", "de", "fr")
LANGUAGES = ("en", "de", "fr")
E5_PREFIX = "query: "


@dataclass(frozen=True)
class TranslatedSentence:
    """One SST-2 dev sentence (`en`, exactly as in SST-2) with its German and French."""

    dev_index: int  # row of the sentence in `nlpbook.data.sst2("dev")`
    label: int  # 1 positive, 0 negative (SST-2's label)
    en: str
    de: str
    fr: str

    def text(self, language: str) -> str:
        """The sentence in `language` (one of "en", "de", "fr")."""
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        return getattr(self, language)


def sst2_translated(
    *, path: str | Path | None = None, dev_texts: Sequence[str] | None = None
) -> list[TranslatedSentence]:
    """200 SST-2 dev sentences with German and French translations, in dev order.

    **How the sentences were chosen.** From the 767 SST-2 dev sentences of at most 30
    whitespace words, a seeded random choice (``numpy.random.default_rng(2024)``) of 100
    negative and 100 positive ones; `en` is the SST-2 sentence unchanged (lowercased and
    tokenised, as SST-2 has it), `label` SST-2's label.

    **The translations** were written for this book by its authors, sentence by sentence,
    without machine translation: faithful to the meaning, in a natural register, keeping
    the strength of the sentiment (neither stronger nor weaker). They use normal sentence
    case and punctuation rather than SST-2's lowercased, tokenised look; film titles keep
    their original or their usual German/French title.

    **Limits.** 200 sentences and two languages, both close to English; the translators
    are not professionals; SST-2's phrasal style (fragments of reviews, puns, idioms) is
    hard to carry over, and in borderline cases a translation may itself shift the
    sentiment a little. An accuracy measured on 200 sentences is uncertain by 5 to 7
    points either way (`binomial_interval`).

    The file has a header and one tab-separated line per sentence,
    ``dev_index  label  en  de  fr``. Every line is checked (5 non-empty fields, label 0 or
    1, a dev index in range) and every `en` must equal SST-2's dev sentence at `dev_index`
    (`dev_texts`, by default read with `nlpbook.data.sst2("dev")`), so that the file can
    never drift from the data. `path` reads another file of the same form.

    >>> rows = sst2_translated()            # doctest: +SKIP
    >>> len(rows), rows[1].en, rows[1].de    # doctest: +SKIP
    (200, "it 's slow -- very , very slow .", 'Er ist langsam – sehr, sehr langsam.')
    """
    if path is None:
        source = importlib.resources.files("nlpbook.data").joinpath(TRANSLATED_FILE)
        name, text = TRANSLATED_FILE, source.read_text(encoding="utf-8")
    else:
        name, text = str(path), Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the final newline
    if not lines or tuple(lines[0].split("\t")) != TRANSLATED_COLUMNS:
        raise ValueError(
            f"{name}: the first line must be the header {' <TAB> '.join(TRANSLATED_COLUMNS)}"
        )
    if dev_texts is None:
        from nlpbook.data import sst2

        dev_texts = sst2("dev")[0]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(TRANSLATED_COLUMNS):
            raise ValueError(
                f"{name}, line {number}: expected {len(TRANSLATED_COLUMNS)} tab-separated fields "
                f"({', '.join(TRANSLATED_COLUMNS)}), got {len(fields)}"
            )
        empty = [c for c, f in zip(TRANSLATED_COLUMNS, fields, strict=True) if not f.strip()]
        if empty:
            raise ValueError(f"{name}, line {number}: empty field {', '.join(empty)}")
        index, label, en, de, fr = fields
        if not index.isdigit() or int(index) >= len(dev_texts):
            raise ValueError(
                f"{name}, line {number}: dev_index must be a row of SST-2 dev "
                f"(0 to {len(dev_texts) - 1}), got {index!r}"
            )
        if label not in ("0", "1"):
            raise ValueError(f"{name}, line {number}: label must be 0 or 1, got {label!r}")
        if en != dev_texts[int(index)]:
            raise ValueError(
                f"{name}, line {number}: en is not SST-2 dev sentence {index}: "
                f"{en!r} != {dev_texts[int(index)]!r}"
            )
        rows.append(TranslatedSentence(int(index), int(label), en, de, fr))
    if not rows:
        raise ValueError(f"{name}: no sentences after the header")
    indices = [r.dev_index for r in rows]
    if len(set(indices)) != len(indices):
        raise ValueError(f"{name}: a dev_index appears twice")
    return rows


def sst2_train_sample(n: int | None, *, seed: int) -> tuple[list[str], np.ndarray]:
    """`n` SST-2 training sentences and their labels, a seeded random choice (None: all 67,349).

    SST-2's training set holds phrases of the parsed reviews as well as whole sentences;
    the sample keeps them as they come. The same `n` and `seed` give the same sample.

    >>> texts, labels = sst2_train_sample(3, seed=0)   # doctest: +SKIP
    >>> len(texts), labels.shape                        # doctest: +SKIP
    (3, (3,))
    """
    from nlpbook.data import sst2

    texts, labels = sst2("train")
    if n is None:
        return list(texts), labels
    if not 1 <= n <= len(texts):
        raise ValueError(f"n must be between 1 and {len(texts)} (or None for all), got {n}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size=n, replace=False))
    return [texts[i] for i in chosen], labels[chosen]


def embed(
    texts: Sequence[str],
    *,
    tokenizer: Callable[..., Any],
    model: torch.nn.Module,
    prefix: str = E5_PREFIX,
    batch_size: int = 32,
    max_length: int = 128,
) -> np.ndarray:
    """multilingual-e5 sentence vectors (N, C) of `texts`, each read as ``prefix + text``.

    e5 was trained with ``"query: "`` before a text that is classified or compared with
    texts like itself; the vectors are the mean of the last layer over the real tokens
    (`nlpbook.retrieval.encode`), not normalised.
    """
    return encode(
        [prefix + t for t in texts],
        tokenizer=tokenizer,
        model=model,
        batch_size=batch_size,
        max_length=max_length,
    )


@dataclass(frozen=True)
class TransferResult:
    """What `zero_shot_transfer` measured: per test set, and per language against the reference."""

    accuracy: dict[str, float]  # test set -> fraction of sentences labelled right
    predictions: dict[str, np.ndarray]  # test set -> (N,) predicted labels
    agreement: dict[str, float]  # parallel set -> fraction predicted as the reference's rows
    classifier: LogisticRegression


def _labels(labels: ArrayLike, rows: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (rows,):
        raise ValueError(f"{name}: expected {rows} labels for {rows} vectors, got {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name}: labels must be 0 or 1")
    return labels.astype(np.int64)


def _vectors(vectors: ArrayLike, name: str) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"{name}: expected a non-empty (N, C) array, got shape {vectors.shape}")
    return vectors


def zero_shot_transfer(
    train_vectors: ArrayLike,
    train_labels: ArrayLike,
    test_sets: Mapping[str, tuple[ArrayLike, ArrayLike]],
    *,
    parallel: Sequence[str] = (),
    C: float = 1.0,
    max_iter: int = 2000,
) -> TransferResult:
    """Fit a logistic regression on (English) vectors and score it on every test set.

    `test_sets` maps a name to ``(vectors (N, C), labels (N,))``. The classifier never sees
    a test set while it is trained, so a German test set measures zero-shot transfer.

    `parallel` names test sets whose rows are the same sentences in other languages, the
    reference first (e.g. ``("en", "de", "fr")``). `agreement[name]` is then, for each of the
    others, the fraction of rows on which its prediction equals the reference's. Two
    languages can agree on a sentence and both be wrong, so agreement says how much the
    translation changes the decision, not how often the decision is right.
    """
    x = _vectors(train_vectors, "train_vectors")
    y = _labels(train_labels, len(x), "train_labels")
    if len(set(y.tolist())) != 2:
        raise ValueError("train_labels must contain both classes, 0 and 1")
    if not test_sets:
        raise ValueError("test_sets is empty: nothing to score")
    classifier = LogisticRegression(C=C, max_iter=max_iter).fit(x, y)
    accuracy, predictions = {}, {}
    for name, (vectors, labels) in test_sets.items():
        vectors = _vectors(vectors, name)
        if vectors.shape[1] != x.shape[1]:
            raise ValueError(
                f"{name}: vectors have {vectors.shape[1]} dimensions, "
                f"the training vectors {x.shape[1]}"
            )
        labels = _labels(labels, len(vectors), name)
        predictions[name] = classifier.predict(vectors)  # (N,)
        accuracy[name] = float((predictions[name] == labels).mean())
    agreement = {}
    for name in parallel:
        if name not in predictions:
            raise ValueError(f"parallel set {name!r} is not one of the test sets {list(test_sets)}")
        reference = predictions[parallel[0]]
        if len(predictions[name]) != len(reference):
            raise ValueError(
                f"parallel sets must have the same rows: {name!r} has {len(predictions[name])}, "
                f"{parallel[0]!r} {len(reference)}"
            )
        if name != parallel[0]:
            agreement[name] = float((predictions[name] == reference).mean())
    return TransferResult(accuracy, predictions, agreement, classifier)


def binomial_interval(accuracy: float, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of an accuracy measured on `n` items.

    With n = 200 and an accuracy near 0.8 the interval is about +-0.055, near 0.5 about
    +-0.07: differences of a few points between two such accuracies are noise.

    >>> [round(b, 4) for b in binomial_interval(0.8, 200)]
    [0.7391, 0.8495]
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of items, got {n}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be between 0 and 1, got {accuracy}")
    denominator = 1 + z**2 / n
    centre = (accuracy + z**2 / (2 * n)) / denominator
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z**2 / (4 * n**2)) / denominator
    return centre - half, centre + half
