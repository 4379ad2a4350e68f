"""Evaluating word vectors: similarity benchmarks, analogies and nearest neighbours.

One implementation serves every source of vectors: the book's own word2vec and GloVe,
gensim models, and pretrained GloVe. Functions accept gensim `KeyedVectors` (or a gensim
model with `.wv`) or a pair ``(words, matrix)``:

>>> words, matrix = ["cat", "dog", "car"], np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]])
>>> [w for w, _ in neighbours((words, matrix), "cat", topn=2)]
['dog', 'car']

- `similarity`: Spearman's rho between cosine similarities and human scores, counting
  the pairs that could not be scored because a word is missing;
- `analogies`: 3CosAdd ("a is to b as c is to ?" -> the word nearest b - a + c, a, b and
  c excluded), per section and overall, optionally within the N most frequent words;
- `neighbours`, `solve_analogy`, `average_vectors` (bag-of-vectors features);
- `load_glove`: the pretrained GloVe 6B 50-d vectors as `KeyedVectors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from gensim.models import KeyedVectors
from gensim.models.fasttext import FastTextKeyedVectors
from scipy.stats import spearmanr

from nlpbook import assets, data

Vectors = Any  # KeyedVectors, a gensim model with `.wv`, or (words, matrix)


def as_keyed_vectors(vectors: Vectors) -> KeyedVectors:
    """Gensim `KeyedVectors` for any supported source of word vectors (no copy if already)."""
    if isinstance(vectors, KeyedVectors):
        return vectors
    if isinstance(getattr(vectors, "wv", None), KeyedVectors):
        return vectors.wv
    if not (isinstance(vectors, tuple) and len(vectors) == 2):
        raise TypeError(
            "expected gensim KeyedVectors, a model with .wv, or a (words, matrix) tuple; "
            f"got {type(vectors).__name__}"
        )
    words, matrix = list(vectors[0]), np.asarray(vectors[1], dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"the matrix must be 2-D (words, dims), got shape {matrix.shape}")
    if len(words) != len(matrix):
        raise ValueError(f"{len(words)} words but {len(matrix)} rows in the matrix")
    if len(set(words)) != len(words):
        raise ValueError("the words must be distinct")
    kv = KeyedVectors(matrix.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, matrix)
    return kv


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _check_word(kv: KeyedVectors, word: str) -> int:
    if word not in kv.key_to_index:
        raise KeyError(f"{word!r} is not among the {len(kv)} words that have vectors")
    return kv.key_to_index[word]


@dataclass(frozen=True)
class SimilarityResult:
    name: str
    rho: float  # Spearman correlation over the pairs both of whose words have vectors
    pairs: int  # pairs scored
    oov: int  # pairs skipped because a word has no vector

    @property
    def coverage(self) -> float:
        return self.pairs / (self.pairs + self.oov)


def similarity(
    vectors: Vectors, pairs: Sequence[tuple[str, str, float]], *, name: str = ""
) -> SimilarityResult:
    """Spearman's rho between human similarity scores and cosine similarities.

    Pairs with a word that has no vector are skipped and counted in ``oov``, so that
    vectors with small vocabularies are not silently flattered.

    >>> kv = (["a", "b", "c"], np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    >>> r = similarity(kv, [("a", "b", 9.0), ("a", "c", 1.0), ("b", "c", 5.0), ("a", "z", 2.0)])
    >>> round(r.rho, 3), r.pairs, r.oov
    (0.866, 3, 1)
    """
    kv = as_keyed_vectors(vectors)
    scored = [(w1, w2, s) for w1, w2, s in pairs if w1 in kv.key_to_index and w2 in kv.key_to_index]
    if len(scored) < 2:
        raise ValueError(
            f"only {len(scored)} of {len(pairs)} pairs{' of ' + name if name else ''} have "
            "vectors for both words; need at least 2 to compute a correlation"
        )
    unit = _unit_rows(kv.vectors)
    i = np.array([kv.key_to_index[w1] for w1, _, _ in scored])
    j = np.array([kv.key_to_index[w2] for _, w2, _ in scored])
    cosines = (unit[i] * unit[j]).sum(axis=1)
    rho = spearmanr([s for _, _, s in scored], cosines).statistic
    return SimilarityResult(name, float(rho), len(scored), len(pairs) - len(scored))


def similarity_table(
    vectors: Vectors, names: Iterable[str] = ("ws353", "simlex999", "men", "rw")
) -> pd.DataFrame:
    """`similarity` on several of the book's benchmarks (`nlpbook.data.WORD_SIMILARITY`)."""
    rows = [similarity(vectors, data.word_similarity(n), name=n) for n in names]
    return pd.DataFrame(
        {
            "rho": [r.rho for r in rows],
            "pairs": [r.pairs for r in rows],
            "oov": [r.oov for r in rows],
        },
        index=pd.Index([r.name for r in rows], name="benchmark"),
    )


def neighbours(
    vectors: Vectors,
    query: str | np.ndarray,
    *,
    topn: int = 10,
    exclude: Iterable[str] = (),
    restrict_vocab: int | None = None,
) -> list[tuple[str, float]]:
    """The `topn` words with the highest cosine similarity to a word or a vector.

    A query word is excluded from its own neighbours, as are the words in `exclude`;
    `restrict_vocab` looks only among the first N (for frequency-sorted vectors: the N
    most frequent) words.
    """
    kv = as_keyed_vectors(vectors)
    skip = set(exclude)
    if isinstance(query, str):
        vec = kv.vectors[_check_word(kv, query)]
        skip.add(query)
    else:
        vec = np.asarray(query, dtype=np.float32)
        if vec.shape != (kv.vector_size,):
            raise ValueError(f"query vector has shape {vec.shape}, expected ({kv.vector_size},)")
    candidates = kv.vectors[:restrict_vocab]  # (N, D)
    sims = _unit_rows(candidates) @ (vec / max(np.linalg.norm(vec), 1e-12))  # (N,)
    order = np.argsort(-sims, kind="stable")
    out = []
    for i in order:
        word = kv.index_to_key[i]
        if word not in skip:
            out.append((word, float(sims[i])))
            if len(out) == topn:
                break
    return out


def solve_analogy(
    vectors: Vectors, a: str, b: str, c: str, *, topn: int = 5, restrict_vocab: int | None = None
) -> list[tuple[str, float]]:
    """3CosAdd: "a is to b as c is to ?" -> words nearest to unit(b) - unit(a) + unit(c).

    >>> kv = (["man", "king", "woman", "queen"],
    ...       np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    >>> solve_analogy(kv, "man", "king", "woman", topn=1)[0][0]
    'queen'
    """
    kv = as_keyed_vectors(vectors)
    unit = {
        w: kv.vectors[_check_word(kv, w)] / np.linalg.norm(kv.vectors[kv.key_to_index[w]])
        for w in (a, b, c)
    }
    target = unit[b] - unit[a] + unit[c]
    return neighbours(kv, target, topn=topn, exclude=(a, b, c), restrict_vocab=restrict_vocab)


@dataclass(frozen=True)
class AnalogyResult:
    sections: dict[str, tuple[int, int]]  # section -> (correct, questions answered)
    skipped: int  # questions with a word outside the (restricted) vocabulary

    @property
    def correct(self) -> int:
        return sum(c for c, _ in self.sections.values())

    @property
    def total(self) -> int:
        return sum(n for _, n in self.sections.values())

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def table(self) -> pd.DataFrame:
        """Accuracy per section, then the semantic, syntactic ('gram*') and overall totals."""
        rows = {s: cn for s, cn in self.sections.items()}
        groups = {
            "semantic": [cn for s, cn in self.sections.items() if not s.startswith("gram")],
            "syntactic": [cn for s, cn in self.sections.items() if s.startswith("gram")],
            "overall": list(self.sections.values()),
        }
        for name, parts in groups.items():
            rows[name] = (sum(c for c, _ in parts), sum(n for _, n in parts))
        frame = pd.DataFrame(rows, index=["correct", "total"]).T
        frame["accuracy"] = frame["correct"] / frame["total"].where(frame["total"] > 0)
        frame.index.name = "section"
        return frame


def analogies(
    vectors: Vectors,
    questions: dict[str, Sequence[tuple[str, str, str, str]]],
    *,
    restrict_vocab: int | None = None,
    lowercase: bool = True,
    batch_size: int = 256,
) -> AnalogyResult:
    """3CosAdd accuracy on analogy questions ``section -> [(a, b, c, d), ...]``.

    A question counts as correct when d is the word nearest to unit(b) - unit(a) +
    unit(c) among the first `restrict_vocab` words, excluding a, b and c. Questions with
    a word outside those words are skipped (and counted), as in Mikolov et al. (2013)
    and gensim's `evaluate_word_analogies`.

    >>> kv = (["man", "king", "woman", "queen"],
    ...       np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    >>> qs = {"royal": [("man", "king", "woman", "queen"), ("man", "king", "woman", "cat")]}
    >>> r = analogies(kv, qs)
    >>> r.sections, r.skipped
    ({'royal': (1, 1)}, 1)
    """
    kv = as_keyed_vectors(vectors)
    n = len(kv) if restrict_vocab is None else min(restrict_vocab, len(kv))
    index = {w: i for w, i in kv.key_to_index.items() if i < n}
    unit = _unit_rows(kv.vectors[:n])  # (N, D)
    sections: dict[str, tuple[int, int]] = {}
    skipped = 0
    for section, items in questions.items():
        known = []
        for question in items:
            words = [w.lower() for w in question] if lowercase else list(question)
            if all(w in index for w in words):
                known.append([index[w] for w in words])
            else:
                skipped += 1
        ids = np.array(known, dtype=np.int64).reshape(-1, 4)  # (Q, 4) a, b, c, d
        correct = 0
        for lo in range(0, len(ids), batch_size):
            a, b, c, d = ids[lo : lo + batch_size].T
            sims = (unit[b] - unit[a] + unit[c]) @ unit.T  # (Q, N)
            rows = np.arange(len(a))
            for excluded in (a, b, c):
                sims[rows, excluded] = -np.inf
            correct += int((sims.argmax(axis=1) == d).sum())
        sections[section] = (correct, len(ids))
    return AnalogyResult(sections, skipped)


def average_vectors(
    vectors: Vectors, texts: Sequence[Sequence[str]], *, subwords: bool = False
) -> np.ndarray:
    """Each text (a list of tokens) as the mean vector of its known words, zeros if none.

    The simplest sentence representation: order is lost, but it makes a strong baseline
    for classifiers. Words without a vector are skipped, unless `subwords` is set and the
    vectors are fastText's: then an unseen word gets the vector its character n-grams build.

    >>> average_vectors((["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]])), [["a", "b", "z"], ["z"]])
    array([[0.5, 0.5],
           [0. , 0. ]], dtype=float32)
    """
    kv = as_keyed_vectors(vectors)
    if subwords and not isinstance(kv, FastTextKeyedVectors):
        raise ValueError(
            f"subwords=True needs fastText vectors (FastTextKeyedVectors), got {type(kv).__name__}"
        )
    out = np.zeros((len(texts), kv.vector_size), dtype=np.float32)  # (B, D)
    for row, tokens in enumerate(texts):
        if subwords:
            known = [kv.get_vector(t) for t in tokens]  # n-gram vectors for unseen words
        else:
            known = [kv.vectors[kv.key_to_index[t]] for t in tokens if t in kv.key_to_index]
        if known:
            out[row] = np.mean(known, axis=0)
    return out


GLOVE_FILES = ("glove_6B_50d_emb.npy", "glove_6B_index.parquet")


def load_glove() -> KeyedVectors:
    """Stanford's GloVe 6B (Wikipedia 2014 + Gigaword 5), 50 dimensions, 400k lowercase words.

    The words are in frequency order, so ``restrict_vocab=100_000`` means the 100k most
    frequent. The files come from the ``glove-6b-50d`` asset (`nlpbook.assets`).
    """
    folder = assets.locate("glove-6b-50d")
    matrix = np.load(folder / GLOVE_FILES[0])
    words = pd.read_parquet(folder / GLOVE_FILES[1])["index"].tolist()
    return as_keyed_vectors((words, matrix))
