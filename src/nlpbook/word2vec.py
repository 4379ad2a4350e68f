"""word2vec in NumPy: skip-gram and CBOW with negative sampling (Mikolov et al., 2013).

Every word has two vectors: an *input* vector (row of `W_in`, the embedding we keep)
and an *output* vector (row of `W_out`). Skip-gram with negative sampling (SGNS) takes a
centre word c and a word o from its window and pushes up sigma(v_c . u_o) while pushing
down sigma(v_c . u_n) for K *noise* words n drawn from the unigram distribution raised
to 0.75. CBOW does the same with the mean of the window's input vectors predicting c.

The pieces, each small enough to test on its own:

- `keep_probabilities` and `subsample`: frequent words are randomly dropped;
- `noise_distribution`, `unigram_table` and `draw_negatives`: the unigram^0.75 noise;
- `skipgram_pairs` and `cbow_windows`: (centre, context) examples with word2vec's
  randomly shrunk windows, all pairs of a chunk at once (no loop over words);
- `negative_sampling_loss` (and `sgns_loss` for whole matrices): the loss and its
  gradient, which training applies to many pairs at once with `scatter_add`
  (duplicated rows add up, as np.add.at would);
- `Word2Vec`: the trainer, with a learning rate that decays linearly to `min_lr`.

>>> from nlpbook.corpus import Vocab
>>> sents = [["a", "b", "a", "c"]] * 50
>>> vocab = Vocab.build(sents, min_count=1)
>>> model = Word2Vec(vocab, Word2VecConfig(dim=8, epochs=1), seed=0)
>>> history = model.fit(vocab.encode(sents), progress=False)
>>> model.vectors.shape
(3, 8)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from nlpbook.corpus import Vocab

if TYPE_CHECKING:
    from gensim.models import KeyedVectors


@dataclass(frozen=True)
class Word2VecConfig:
    arch: Literal["skipgram", "cbow"] = "skipgram"
    dim: int = 100  # size of each word vector
    window: int = 5  # largest distance between centre and context; each centre draws 1..window
    negative: int = 5  # noise words per positive example
    sample: float = 1e-3  # subsampling threshold t; 0 keeps every word
    ns_exponent: float = 0.75  # noise distribution is unigram ** ns_exponent
    lr: float = 0.025  # starting learning rate, decays linearly ...
    min_lr: float = 1e-4  # ... to this at the end of the last epoch
    epochs: int = 5
    batch_size: int = 2048  # examples per vectorised update (pairs for skip-gram, centres for CBOW)
    chunk_words: int = 50_000  # words turned into examples at a time (bounds memory)

    def __post_init__(self) -> None:
        if self.arch not in ("skipgram", "cbow"):
            raise ValueError(f"arch must be 'skipgram' or 'cbow', got {self.arch!r}")
        for name in ("dim", "window", "negative", "epochs", "batch_size", "chunk_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")


def keep_probabilities(counts: np.ndarray, *, sample: float) -> np.ndarray:
    """word2vec's probability of keeping each occurrence of a word of frequency f.

    ``p = (sqrt(f / t) + 1) * t / f``, capped at 1: words rarer than about t are always
    kept; a word making up 5% of the text with t = 1e-3 keeps about 16% of its tokens.

    >>> keep_probabilities(np.array([50, 950]), sample=1e-3).round(3)  # f = 5% and 95%
    array([0.161, 0.033])
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts <= 0).any():
        raise ValueError("counts must be a non-empty 1-D array of positive numbers")
    if sample <= 0:
        return np.ones_like(counts)
    freq = counts / counts.sum()
    return np.minimum((np.sqrt(freq / sample) + 1) * sample / freq, 1.0)


def subsample(ids: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask: keep token i with probability ``keep[ids[i]]``."""
    return rng.random(len(ids)) < keep[ids]


def noise_distribution(counts: np.ndarray, *, exponent: float = 0.75) -> np.ndarray:
    """Unigram counts raised to `exponent`, normalised: rare words get drawn more often
    than their frequency alone would give.

    >>> noise_distribution(np.array([16, 1]), exponent=0.75).round(3)
    array([0.889, 0.111])
    """
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    return weights / weights.sum()


def unigram_table(probs: np.ndarray, *, size: int = 10_000_000) -> np.ndarray:
    """word2vec's noise table: word i fills about ``probs[i] * size`` slots, so a uniform
    draw of a slot is a draw from `probs`.

    >>> unigram_table(np.array([0.75, 0.25]), size=8).tolist()
    [0, 0, 0, 0, 0, 0, 1, 1]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1 or len(probs) == 0 or (probs < 0).any() or not np.isclose(probs.sum(), 1):
        raise ValueError("probs must be a non-empty 1-D probability distribution")
    edges = np.round(np.cumsum(probs) * size).astype(np.int64)  # (V,) end slot of each word
    return np.repeat(np.arange(len(probs), dtype=np.int32), np.diff(edges, prepend=0))


def draw_negatives(
    table: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Noise word ids of `shape`, drawn uniformly from the slots of a `unigram_table`."""
    return table[rng.integers(0, len(table), size=shape)]


def skipgram_pairs(
    ids: np.ndarray, sentence: np.ndarray, *, window: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """All (centre, context) id pairs of a token stream, without a loop over tokens.

    `sentence[i]` says which sentence token i belongs to; windows never cross sentences.
    Like word2vec, each centre draws its own window size b in 1..window, which weights
    near words more than far ones.

    >>> c, o = skipgram_pairs(np.array([7, 8, 9]), np.zeros(3, int), window=1,
    ...                       rng=np.random.default_rng(0))
    >>> sorted(zip(c.tolist(), o.tolist()))
    [(7, 8), (8, 7), (8, 9), (9, 8)]
    """
    if len(ids) != len(sentence):
        raise ValueError(f"{len(ids)} ids but {len(sentence)} sentence labels")
    reach = rng.integers(1, window + 1, size=len(ids))  # (N,) this centre's window
    centres, contexts = [], []
    for d in range(1, min(window, len(ids) - 1) + 1):
        same = sentence[:-d] == sentence[d:]  # (N-d,) token i and i+d share a sentence
        right = same & (reach[:-d] >= d)  # centre i, context i+d
        left = same & (reach[d:] >= d)  # centre i+d, context i
        centres += [ids[:-d][right], ids[d:][left]]
        contexts += [ids[d:][right], ids[:-d][left]]
    if not centres:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty
    return np.concatenate(centres), np.concatenate(contexts)


def cbow_windows(
    ids: np.ndarray, sentence: np.ndarray, *, window: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For CBOW: each centre with a fixed-width block of context ids and a 0/1 mask.

    Returns ``centres (N,)``, ``contexts (N, 2*window)`` and ``mask (N, 2*window)``;
    centres whose window (shrunk at random as in `skipgram_pairs`) is empty are dropped.

    >>> c, ctx, m = cbow_windows(np.array([7, 8, 9]), np.zeros(3, int), window=1,
    ...                          rng=np.random.default_rng(0))
    >>> c.tolist(), np.where(m > 0, ctx, -1).tolist()  # -1: an empty slot
    ([7, 8, 9], [[-1, 8], [7, 9], [8, -1]])
    """
    if len(ids) != len(sentence):
        raise ValueError(f"{len(ids)} ids but {len(sentence)} sentence labels")
    n = len(ids)
    reach = rng.integers(1, window + 1, size=n)  # (N,)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])  # (2W,)
    pos = np.arange(n)[:, None] + offsets[None, :]  # (N, 2W) positions of context words
    inside = (pos >= 0) & (pos < n)
    pos = np.clip(pos, 0, n - 1)
    mask = inside & (sentence[pos] == sentence[:, None]) & (np.abs(offsets) <= reach[:, None])
    keep = mask.any(axis=1)
    return ids[keep], np.where(mask[keep], ids[pos[keep]], 0), mask[keep].astype(np.float32)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)) without overflow warnings


def negative_sampling_loss(
    h: np.ndarray, targets: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """The loss of one positive and K noise targets per example, and what its gradient needs.

    `h` (B, D) are the predicting vectors (a centre's input vector in skip-gram, the mean
    of the window's in CBOW); `targets` (B, 1+K, D) are output vectors, the true one
    first. The loss is summed over examples:

        L = -sum_b [ log sigma(h_b . u_b0) + sum_k log sigma(-h_b . u_bk) ]

    With ``g = sigma(h_b . u_bk) - y_bk`` (y = 1 for the true target, 0 for noise):
    ``dL/dh_b = sum_k g_bk u_bk`` and ``dL/du_bk = g_bk h_b``. Returns
    ``(L, dL/dh (B, D), g (B, 1+K))``; the outer products g_bk h_b are never built, since
    `scatter_add` can apply them directly.
    """
    scores = (targets @ h[:, :, None])[:, :, 0]  # (B, 1+K, D) @ (B, D, 1) -> (B, 1+K)
    loss = -(_log_sigmoid(scores[:, 0]).sum() + _log_sigmoid(-scores[:, 1:]).sum())
    g = _sigmoid(scores)  # (B, 1+K)
    g[:, 0] -= 1.0
    grad_h = (g[:, None, :] @ targets)[:, 0, :]  # (B, 1, 1+K) @ (B, 1+K, D) -> (B, D)
    return float(loss), grad_h, g


def sgns_loss(
    W_in: np.ndarray,
    W_out: np.ndarray,
    centres: np.ndarray,
    contexts: np.ndarray,
    negatives: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Skip-gram negative-sampling loss of pairs ``(centres[b], contexts[b])`` with noise
    words ``negatives[b]`` (B, K), and its gradients ``(loss, dL/dW_in, dL/dW_out)``
    as full (V, D) matrices, computed the way training applies them.
    """
    if W_in.shape != W_out.shape:
        raise ValueError(f"W_in {W_in.shape} and W_out {W_out.shape} must have the same shape")
    if not (len(centres) == len(contexts) == len(negatives)):
        raise ValueError(
            f"{len(centres)} centres, {len(contexts)} contexts, {len(negatives)} rows of negatives"
        )
    targets = np.concatenate([np.asarray(contexts)[:, None], negatives], axis=1)  # (B, 1+K)
    h = W_in[centres]  # (B, D)
    loss, grad_h, g = negative_sampling_loss(h, W_out[targets])
    grad_in, grad_out = np.zeros_like(W_in), np.zeros_like(W_out)
    scatter_add(grad_in, centres, grad_h)
    scatter_add(grad_out, targets, h, cols=_example_of(targets), weights=g)
    return loss, grad_in, grad_out


def _example_of(block: np.ndarray) -> np.ndarray:
    """For a (B, k) block of ids, the example (row) each id belongs to, flattened."""
    return np.repeat(np.arange(block.shape[0]), block.shape[1])


def row_sums(
    n_rows: int,
    rows: np.ndarray,
    values: np.ndarray,
    *,
    cols: np.ndarray | None = None,
    weights: np.ndarray | float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``weights[i] * values[cols[i]]`` by ``rows[i]`` (cols defaults to i).

    Returns the distinct rows that receive something, sorted (U,), and their sums (U, D).
    The additions form a sparse (n_rows, B) matrix with ``weights[i]`` at
    ``(rows[i], cols[i])``; multiplying it by `values` (B, D) does all of them at once,
    without building one (D,) vector per i. This is what makes minibatch word2vec and
    GloVe fast in NumPy (np.add.at does the same but slowly on 2-D data).

    >>> touched, sums = row_sums(5, np.array([3, 0, 3]), np.array([[1.0], [2.0], [4.0]]))
    >>> touched.tolist(), sums.tolist()
    ([0, 3], [[2.0], [5.0]])
    """
    rows = np.asarray(rows).ravel()
    cols = np.arange(len(rows)) if cols is None else np.asarray(cols).ravel()
    if len(cols) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(cols)} cols")
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (B, D), got shape {values.shape}")
    weights = np.broadcast_to(np.asarray(weights, dtype=values.dtype).ravel(), rows.shape)
    adder = sp.csr_matrix((weights, (rows, cols)), shape=(n_rows, len(values)))  # (V, B)
    touched = np.flatnonzero(np.diff(adder.indptr))  # (U,) usually far fewer than V
    indptr = np.concatenate(([0], adder.indptr[touched + 1]))
    compact = sp.csr_matrix((adder.data, adder.indices, indptr), shape=(len(touched), len(values)))
    return touched, compact @ values  # (U,), (U, D)


def scatter_add(
    target: np.ndarray,
    rows: np.ndarray,
    values: np.ndarray,
    *,
    cols: np.ndarray | None = None,
    weights: np.ndarray | float = 1.0,
) -> None:
    """``target[rows[i]] += weights[i] * values[cols[i]]`` for every i, duplicated rows
    adding up, as np.add.at would (see `row_sums`).

    >>> t = np.zeros((3, 2)); scatter_add(t, np.array([2, 0, 2]), np.ones((3, 2))); t
    array([[1., 1.],
           [0., 0.],
           [2., 2.]])
    """
    if values.ndim != 2 or values.shape[1] != target.shape[1]:
        raise ValueError(f"values must be (B, {target.shape[1]}), got {values.shape}")
    touched, sums = row_sums(len(target), rows, values, cols=cols, weights=weights)
    target[touched] += sums


@dataclass
class Word2VecHistory:
    loss: list[float] = field(default_factory=list)  # mean loss per example, one per chunk
    lr: list[float] = field(default_factory=list)  # learning rate at the end of each chunk
    examples: int = 0  # pairs (skip-gram) or windows (CBOW) trained on
    words: int = 0  # corpus words processed, counting each epoch (before subsampling)
    seconds: float = 0.0

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0


class Word2Vec:
    """Skip-gram or CBOW with negative sampling over a fixed `Vocab`.

    Input vectors start uniform in ±0.5/dim and output vectors at zero, as in word2vec.
    Training is deterministic for a given `seed`.
    """

    def __init__(
        self, vocab: Vocab, config: Word2VecConfig | None = None, *, seed: int = 0
    ) -> None:
        self.vocab = vocab
        self.config = config or Word2VecConfig()
        self.rng = np.random.default_rng(seed)
        V, D = len(vocab), self.config.dim
        self.W_in = ((self.rng.random((V, D), dtype=np.float32) - 0.5) / D).astype(np.float32)
        self.W_out = np.zeros((V, D), dtype=np.float32)
        self._keep = keep_probabilities(vocab.counts, sample=self.config.sample)
        noise = noise_distribution(vocab.counts, exponent=self.config.ns_exponent)
        self._table = unigram_table(noise)

    @property
    def vectors(self) -> np.ndarray:
        """The word vectors (V, D): the input embeddings, as word2vec and gensim keep them."""
        return self.W_in

    def keyed_vectors(self) -> KeyedVectors:
        """The vectors as gensim `KeyedVectors`, for gensim's tools and `nlpbook.embeddings`."""
        from nlpbook.embeddings import as_keyed_vectors

        return as_keyed_vectors((self.vocab.words, self.W_in))

    def fit(self, sentences: Sequence[np.ndarray], *, progress: bool = True) -> Word2VecHistory:
        """Train for `config.epochs` passes over `sentences` (arrays of ids from `Vocab.encode`)."""
        cfg = self.config
        sentences = [np.asarray(s) for s in sentences if len(s)]
        if not sentences:
            raise ValueError("cannot train on an empty corpus (no sentence has a known word)")
        ids = np.concatenate(sentences).astype(np.int32)  # (N,)
        if ids.min() < 0 or ids.max() >= len(self.vocab):
            raise ValueError(
                f"word ids must lie in [0, {len(self.vocab)}); got {ids.min()}..{ids.max()}"
            )
        sentence = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])  # (N,)
        history = Word2VecHistory()
        total = cfg.epochs * len(ids)
        start = time.perf_counter()
        bar = tqdm(total=total, unit="word", disable=not progress, desc=cfg.arch)
        for epoch in range(cfg.epochs):
            kept = subsample(ids, self._keep, self.rng)
            kept_ids, kept_sentence = ids[kept], sentence[kept]
            raw_pos = np.flatnonzero(kept)  # where each kept token sat in the raw stream
            for lo in range(0, len(kept_ids), cfg.chunk_words):
                hi = min(lo + cfg.chunk_words, len(kept_ids))
                done_before = epoch * len(ids) + (raw_pos[lo] if lo < len(raw_pos) else 0)
                done_after = epoch * len(ids) + (
                    raw_pos[hi - 1] + 1 if hi < len(kept_ids) else len(ids)
                )
                loss, n = self._train_chunk(
                    kept_ids[lo:hi], kept_sentence[lo:hi], done_before / total, done_after / total
                )
                history.loss.append(loss / max(n, 1))
                history.lr.append(self._lr(done_after / total))
                history.examples += n
                bar.update(done_after - done_before)
            if len(kept_ids) == 0:
                bar.update(len(ids))
        bar.close()
        history.words = total
        history.seconds = time.perf_counter() - start
        return history

    def _lr(self, progress: float) -> float:
        cfg = self.config
        return max(cfg.min_lr, cfg.lr - (cfg.lr - cfg.min_lr) * progress)

    def _train_chunk(
        self, ids: np.ndarray, sentence: np.ndarray, p0: float, p1: float
    ) -> tuple[float, int]:
        """Make all examples of a chunk, shuffle them, and apply them in minibatches."""
        cfg = self.config
        if cfg.arch == "skipgram":
            centres, contexts = skipgram_pairs(ids, sentence, window=cfg.window, rng=self.rng)
            order = self.rng.permutation(len(centres))
            centres, contexts = centres[order], contexts[order]
        else:
            centres, windows, mask = cbow_windows(ids, sentence, window=cfg.window, rng=self.rng)
            order = self.rng.permutation(len(centres))
            centres, windows, mask = centres[order], windows[order], mask[order]
        n = len(centres)
        total_loss = 0.0
        for lo in range(0, n, cfg.batch_size):
            hi = min(lo + cfg.batch_size, n)
            lr = np.float32(self._lr(p0 + (p1 - p0) * lo / n))
            negatives = draw_negatives(self._table, (hi - lo, cfg.negative), self.rng)  # (B, K)
            targets = np.empty((hi - lo, 1 + cfg.negative), dtype=np.int32)  # (B, 1+K)
            targets[:, 1:] = negatives
            if cfg.arch == "skipgram":
                targets[:, 0] = contexts[lo:hi]
                h = self.W_in.take(centres[lo:hi], axis=0)  # (B, D)
            else:
                targets[:, 0] = centres[lo:hi]
                m = mask[lo:hi]  # (B, 2W)
                h = np.einsum("bw,bwd->bd", m, self.W_in[windows[lo:hi]])  # (B, D) window sum
                h /= m.sum(axis=1, keepdims=True)  # window mean
            loss, grad_h, g = negative_sampling_loss(h, self.W_out.take(targets, axis=0))
            total_loss += loss
            scatter_add(self.W_out, targets, h, cols=_example_of(targets), weights=-lr * g)
            if cfg.arch == "skipgram":
                scatter_add(self.W_in, centres[lo:hi], grad_h, weights=-lr)
            else:
                # As in word2vec.c, every word of the window receives the gradient of the
                # mean h itself, not its 1/count share: a larger step for the input vectors.
                example, slot = np.nonzero(mask[lo:hi])
                scatter_add(
                    self.W_in, windows[lo:hi][example, slot], grad_h, cols=example, weights=-lr
                )
        return total_loss, n
