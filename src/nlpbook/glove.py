"""GloVe (Pennington et al., 2014): word vectors as a weighted factorisation of log counts.

Two steps:

1. `cooccurrence` counts, over the whole corpus, how often word j appears within
   `window` words of word i, each occurrence weighted by 1/distance. The result X is a
   sparse, symmetric (V, V) matrix.
2. `GloVe.fit` finds vectors w_i, context vectors c_j and biases with

       w_i . c_j + b_i + b'_j  ~  log X_ij

   for every non-zero X_ij, minimising the weighted least squares `glove_loss`
   ``J = 1/2 sum f(X_ij) (w_i . c_j + b_i + b'_j - log X_ij)^2``, where
   ``f(x) = min(1, (x / x_max) ** alpha)`` keeps rare, noisy pairs from counting as
   much as frequent ones. Like the original, it uses AdaGrad and returns ``W + C``.

>>> X = cooccurrence([np.array([0, 1, 2])], vocab_size=3, window=2).toarray()
>>> X
array([[0. , 1. , 0.5],
       [1. , 0. , 1. ],
       [0.5, 1. , 0. ]])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from nlpbook.corpus import Vocab
from nlpbook.word2vec import row_sums

if TYPE_CHECKING:
    from gensim.models import KeyedVectors


def cooccurrence(
    sentences: Sequence[np.ndarray], *, vocab_size: int, window: int = 10
) -> sp.coo_matrix:
    """The symmetric co-occurrence matrix: X[i, j] sums 1/d over every time word j is
    d <= `window` words from word i in the same sentence.

    One vectorised pass per distance d (no loop over tokens); scipy sums the duplicates.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    sentences = [np.asarray(s) for s in sentences if len(s)]
    if not sentences:
        raise ValueError("cannot count co-occurrences in an empty corpus")
    ids = np.concatenate(sentences)  # (N,)
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"word ids must lie in [0, {vocab_size}); got {ids.min()}..{ids.max()}")
    sentence = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])  # (N,)
    rows, cols, weights = [], [], []
    for d in range(1, min(window, len(ids) - 1) + 1):
        same = sentence[:-d] == sentence[d:]  # token i and i+d share a sentence
        left, right = ids[:-d][same], ids[d:][same]
        rows += [left, right]  # both directions: X is symmetric
        cols += [right, left]
        weights.append(np.full(2 * len(left), 1.0 / d))
    if not rows:
        return sp.coo_matrix((vocab_size, vocab_size))
    X = sp.coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(vocab_size, vocab_size),
    )
    return X.tocsr().tocoo()  # tocsr sums the duplicate (i, j) entries


def weighting(x: np.ndarray, *, x_max: float = 100.0, alpha: float = 0.75) -> np.ndarray:
    """GloVe's weight ``f(x) = (x / x_max) ** alpha``, capped at 1.

    >>> weighting(np.array([1.0, 50.0, 100.0, 500.0]), x_max=100, alpha=1.0)
    array([0.01, 0.5 , 1.  , 1.  ])
    """
    return np.minimum(1.0, (np.asarray(x) / x_max) ** alpha)


def glove_loss(
    W: np.ndarray,
    C: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    x: np.ndarray,
    *,
    x_max: float = 100.0,
    alpha: float = 0.75,
) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """GloVe's loss over the entries ``X[rows, cols] = x`` and its gradients
    ``(dJ/dW, dJ/dC, dJ/db, dJ/dc)``, full-size, as `GloVe.fit` computes them.

    With ``e = f(x) (w_i . c_j + b_i + b'_j - log x)``: ``dJ/dw_i = e c_j``,
    ``dJ/dc_j = e w_i`` and ``dJ/db_i = dJ/db'_j = e``, summed over entries.
    """
    loss, e = _weighted_errors(W, C, b, c, rows, cols, x, x_max=x_max, alpha=alpha)
    grad_W, grad_C = np.zeros_like(W), np.zeros_like(C)
    touched, sums = row_sums(len(W), rows, C[cols], weights=e)
    grad_W[touched] = sums
    touched, sums = row_sums(len(C), cols, W[rows], weights=e)
    grad_C[touched] = sums
    grad_b = np.bincount(rows, weights=e, minlength=len(b))
    grad_c = np.bincount(cols, weights=e, minlength=len(c))
    return loss, (grad_W, grad_C, grad_b, grad_c)


def _weighted_errors(W, C, b, c, rows, cols, x, *, x_max, alpha) -> tuple[float, np.ndarray]:
    """J over the entries and ``e = f(x) * (prediction - log x)`` per entry (B,)."""
    if W.shape != C.shape or b.shape != c.shape or b.shape != (len(W),):
        raise ValueError(
            f"W {W.shape} and C {C.shape} must match; "
            f"b {b.shape} and c {c.shape} must be ({len(W)},)"
        )
    if not (len(rows) == len(cols) == len(x)):
        raise ValueError(f"{len(rows)} rows, {len(cols)} cols and {len(x)} counts")
    if len(x) and np.min(x) <= 0:
        raise ValueError("co-occurrence counts must be positive (log x is the target)")
    diff = np.einsum("bd,bd->b", W[rows], C[cols]) + b[rows] + c[cols] - np.log(x)  # (B,)
    fx = weighting(x, x_max=x_max, alpha=alpha).astype(W.dtype)
    return float(0.5 * (fx * diff * diff).sum()), fx * diff


@dataclass(frozen=True)
class GloVeConfig:
    dim: int = 50  # size of each word vector
    x_max: float = 10.0  # counts above this get full weight (100 in the paper's big corpora)
    alpha: float = 0.75  # exponent of the weighting function
    lr: float = 0.05  # AdaGrad's initial step size
    epochs: int = 25  # passes over the non-zero entries of X
    batch_size: int = 8192  # entries per vectorised update

    def __post_init__(self) -> None:
        for name in ("dim", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.x_max <= 0 or self.lr <= 0 or self.alpha < 0:
            raise ValueError("x_max and lr must be positive and alpha non-negative")


@dataclass
class GloVeHistory:
    loss: list[float] = field(default_factory=list)  # J per epoch (during the epoch)
    seconds: float = 0.0


class GloVe:
    """GloVe vectors for a `Vocab`, trained with AdaGrad on a co-occurrence matrix."""

    def __init__(self, vocab: Vocab, config: GloVeConfig | None = None, *, seed: int = 0) -> None:
        self.vocab = vocab
        self.config = config or GloVeConfig()
        self.rng = np.random.default_rng(seed)
        V, D = len(vocab), self.config.dim

        def init(*shape: int) -> np.ndarray:  # uniform in +-0.5/D, as in glove.c
            return ((self.rng.random(shape, dtype=np.float32) - 0.5) / D).astype(np.float32)

        self.W, self.C, self.b, self.c = init(V, D), init(V, D), init(V), init(V)
        # AdaGrad's running sums of squared gradients, starting at 1 as in glove.c.
        self._sq = [np.ones_like(p) for p in (self.W, self.C, self.b, self.c)]

    @property
    def vectors(self) -> np.ndarray:
        """W + C: the paper's choice, slightly better than either alone."""
        return self.W + self.C

    def keyed_vectors(self) -> KeyedVectors:
        """The vectors as gensim `KeyedVectors` (see `nlpbook.embeddings`)."""
        from nlpbook.embeddings import as_keyed_vectors

        return as_keyed_vectors((self.vocab.words, self.vectors))

    def fit(self, X: sp.spmatrix, *, progress: bool = True) -> GloVeHistory:
        """Train on the non-zero entries of the co-occurrence matrix `X` (V, V)."""
        cfg, V = self.config, len(self.vocab)
        if X.shape != (V, V):
            raise ValueError(f"X has shape {X.shape}, expected ({V}, {V}) for this vocabulary")
        X = sp.coo_matrix(X)
        keep = X.data > 0
        rows, cols, x = X.row[keep], X.col[keep], X.data[keep].astype(np.float32)
        if len(x) == 0:
            raise ValueError("X has no positive entries: nothing to train on")
        history = GloVeHistory()
        start = time.perf_counter()
        for _ in tqdm(range(cfg.epochs), disable=not progress, desc="GloVe"):
            order = self.rng.permutation(len(x))
            total = 0.0
            for lo in range(0, len(x), cfg.batch_size):
                batch = order[lo : lo + cfg.batch_size]
                total += self._step(rows[batch], cols[batch], x[batch])
            history.loss.append(total)
        history.seconds = time.perf_counter() - start
        return history

    def _step(self, rows: np.ndarray, cols: np.ndarray, x: np.ndarray) -> float:
        """One AdaGrad step on a minibatch of entries: each touched row moves by
        lr * g / sqrt(sum of its past g^2), so frequent words take small steps."""
        cfg = self.config
        loss, e = _weighted_errors(
            self.W, self.C, self.b, self.c, rows, cols, x, x_max=cfg.x_max, alpha=cfg.alpha
        )
        # Gradients of the touched rows, computed before any parameter moves.
        grads = [
            row_sums(len(self.W), rows, self.C[cols], weights=e),
            row_sums(len(self.C), cols, self.W[rows], weights=e),
        ]
        for param, sq, (touched, g) in zip((self.W, self.C), self._sq[:2], grads, strict=True):
            sq[touched] += g * g
            param[touched] -= cfg.lr * g / np.sqrt(sq[touched])
        for param, sq, ids in ((self.b, self._sq[2], rows), (self.c, self._sq[3], cols)):
            touched, inverse = np.unique(ids, return_inverse=True)
            g = np.bincount(inverse, weights=e, minlength=len(touched)).astype(np.float32)
            sq[touched] += g * g
            param[touched] -= cfg.lr * g / np.sqrt(sq[touched])
        return loss
