"""Semantic search: embed texts, then find the documents that point the way a query points.

A sentence encoder maps every text to a vector, and texts with similar meanings get vectors
with a high cosine similarity. Searching a collection is then one matrix product between the
unit-length query vectors and the unit-length document vectors, and a top-k in every row:

>>> documents = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
>>> scores, indices = cosine_top_k(np.array([[3.0, 0.5]]), documents, k=2)
>>> indices
array([[0, 2]])
>>> top_k_accuracy(indices, [2], k=1), top_k_accuracy(indices, [2], k=2)
(0.0, 1.0)

- `encode`: sentence embeddings from a BERT-style encoder (ours or Hugging Face's), in
  batches of similar length, pooled over the real tokens (mean) or taken at ``[CLS]``;
- `normalize`, `cosine_similarity`: unit rows and the matrix of cosines;
- `cosine_top_k`: the k most similar documents for every query, best first (`top_k`
  ranks any precomputed score matrix the same way);
- `top_k_accuracy`: how often the right document is among the first k retrieved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from nlpbook.bert import mean_pool
from nlpbook.train import evaluating, text_list

POOLINGS = ("mean", "cls")


def _matrix(x: ArrayLike, name: str) -> np.ndarray:
    """`x` as a finite float32 (N, D) array, or a clear error."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    matrix = np.asarray(x, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dims), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def normalize(vectors: ArrayLike) -> np.ndarray:
    """Each row divided by its Euclidean norm (float32); an all-zero row stays zero.

    A zero row (a TF-IDF vector of a text with only unknown words, say) has no direction:
    its cosine with every other vector is taken to be 0 rather than raising.

    >>> normalize([[3.0, 4.0], [0.0, 0.0]])
    array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    """
    matrix = _matrix(vectors, "vectors")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)  # (N, 1)
    return matrix / np.where(norms > 0, norms, 1.0)


def cosine_similarity(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """The (A, B) matrix of cosine similarities between the rows of `a` and of `b`.

    >>> cosine_similarity([[1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    array([[ 1.,  0., -1.]], dtype=float32)
    """
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has {a.shape[1]} dimensions but b has {b.shape[1]}")
    return normalize(a) @ normalize(b).T  # (A, D) @ (D, B) -> (A, B)


def top_k(scores: ArrayLike, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` highest scores in each row of a (Q, N) score matrix and their columns.

    Returns (scores, indices), both (Q, k), best first; equal scores keep the lower column
    first. Use it for any precomputed similarities (TF-IDF, a mix of two systems);
    `cosine_top_k` computes cosines from embeddings and ranks them with it.

    >>> top_k([[0.1, 0.9, 0.5], [0.3, 0.3, 0.0]], k=2)[1]
    array([[1, 2],
           [0, 1]])
    """
    scores = _matrix(scores, "scores")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(
            f"k must be between 1 and the number of documents ({scores.shape[1]}), got {k}"
        )
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (Q, k); stable: ties by index
    return np.take_along_axis(scores, order, axis=1), order


def cosine_top_k(
    queries: ArrayLike, documents: ArrayLike, *, k: int, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` documents most similar to each query: (scores, indices), both (Q, k).

    Row q lists document indices from the most to the least similar, with their cosine
    similarities; equal scores keep the lower document index first. Queries are scored
    `batch_size` at a time, so that the (Q, N) similarity matrix never has to fit in
    memory at once.
    """
    queries, documents = _matrix(queries, "queries"), _matrix(documents, "documents")
    if queries.shape[1] != documents.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} dimensions but documents have {documents.shape[1]}"
        )
    if not 1 <= k <= len(documents):
        raise ValueError(
            f"k must be between 1 and the number of documents ({len(documents)}), got {k}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    documents = normalize(documents)  # (N, C)
    scores = np.empty((len(queries), k), dtype=np.float32)
    indices = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        rows = slice(start, start + batch_size)
        sims = normalize(queries[rows]) @ documents.T  # (b, C) @ (C, N) -> (b, N)
        scores[rows], indices[rows] = top_k(sims, k=k)
    return scores, indices


def top_k_accuracy(indices: ArrayLike, targets: ArrayLike, *, k: int) -> float:
    """The fraction of queries whose right document is among their first `k` results.

    `indices` (Q, >= k) are ranked document indices, as `cosine_top_k` returns them;
    `targets` (Q,) is the index of the right document for each query.

    >>> ranked = [[0, 2], [1, 0], [2, 1]]
    >>> top_k_accuracy(ranked, [2, 1, 0], k=1), top_k_accuracy(ranked, [2, 1, 0], k=2)
    (0.3333333333333333, 0.6666666666666666)
    """
    indices, targets = np.asarray(indices), np.asarray(targets)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"indices must be a 2-D integer array (queries, ranks), "
            f"got shape {indices.shape} of {indices.dtype}"
        )
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"targets must be a 1-D integer array (queries,), "
            f"got shape {targets.shape} of {targets.dtype}"
        )
    if len(indices) != len(targets):
        raise ValueError(f"{len(indices)} rows of indices but {len(targets)} targets")
    if len(targets) == 0:
        raise ValueError("no queries to score")
    if (targets < 0).any():
        raise ValueError("targets must be document indices (>= 0)")
    if not 1 <= k <= indices.shape[1]:
        raise ValueError(
            f"k must be between 1 and the number of ranked documents ({indices.shape[1]}), got {k}"
        )
    hits = (indices[:, :k] == targets[:, None]).any(axis=1)  # (Q,)
    return float(hits.mean())


@torch.inference_mode()
def encode(
    texts: Sequence[str],
    *,
    tokenizer: Callable[..., Any],
    model: torch.nn.Module,
    pooling: str = "mean",
    batch_size: int = 64,
    max_length: int = 256,
) -> np.ndarray:
    """Sentence embeddings (N, C) of `texts` from a BERT-style encoder, in the input order.

    `tokenizer` is a Hugging Face tokenizer; `model` either our `nlpbook.bert.BERT` (which
    returns the last hidden state) or a Hugging Face encoder (whose output has
    ``last_hidden_state``). Texts are cut to `max_length` tokens and sorted by length, so
    each batch pads only to its own longest text. ``pooling="mean"`` averages the real
    tokens' vectors (padding excluded, see `nlpbook.bert.mean_pool`); ``"cls"`` takes the
    vector at the ``[CLS]`` position. The vectors are not normalised.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    texts = text_list(texts, batch_size=batch_size)
    lengths = [
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ]
    order = np.argsort(lengths, kind="stable")
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    with evaluating(model):
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch)
            hidden = getattr(hidden, "last_hidden_state", hidden)  # (b, T, C)
            if pooling == "mean":
                pooled = mean_pool(hidden, batch["attention_mask"])  # (b, C)
            else:
                pooled = hidden[:, 0]  # (b, C)
            if out is None:
                out = np.empty((len(texts), pooled.shape[-1]), dtype=np.float32)
            out[rows] = pooled.float().cpu().numpy()
    return out
