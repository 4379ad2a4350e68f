"""Synthetic tasks that isolate one ability of a sequence model, with the answer known exactly.

`recall` tests long-range memory. Every sequence is random symbols, one of which is
*marked* (written with a second set of ids); the model must say which symbol was marked.
The *distance* is how many tokens follow the marked one, i.e. how long the model must
remember it::

    tokens    s7  s3  S5  s1  s8  s3          (S5: symbol 5, marked; length 6, distance 3)
    answer    5

A recurrent network reading left to right has to carry the symbol through `distance`
updates of its state; self-attention can look it up in one step, however far back it is.

Token ids: 0 is padding (never generated, so the data suit models that reserve it),
symbol ``s`` (0-based) is id ``1 + s`` and its marked form is id ``1 + n_symbols + s``.
The targets are symbol numbers, so a classifier needs ``n_symbols`` classes and an
embedding table of ``2 * n_symbols + 1`` ids (`RecallData.vocab_size`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

PAD = 0


@dataclass(frozen=True)
class RecallData:
    """Recall sequences: ``ids`` (N, T), ``targets`` (N,) and ``distances`` (N,)."""

    ids: Tensor  # (N, T) token ids, all positions real (no padding)
    targets: Tensor  # (N,) the marked symbol, 0 .. n_symbols - 1
    distances: Tensor  # (N,) tokens after the marked one: 0 means it is the last token
    n_symbols: int

    @property
    def vocab_size(self) -> int:
        """Ids a model must embed: padding, the symbols and their marked forms."""
        return 2 * self.n_symbols + 1

    @property
    def key_positions(self) -> Tensor:
        """(N,) where the marked symbol sits in each sequence."""
        return self.ids.size(1) - 1 - self.distances

    @property
    def lengths(self) -> Tensor:
        """(N,) every sequence is full length; classifiers take ``(ids, lengths)``."""
        return torch.full((len(self),), self.ids.size(1), dtype=torch.long)

    def __len__(self) -> int:
        return self.ids.size(0)


def recall(
    n: int,
    *,
    length: int,
    n_symbols: int,
    distances: int | Sequence[int] | None = None,
    seed: int | np.random.Generator = 0,
) -> RecallData:
    """`n` sequences of `length` symbols, one of them marked, `distance` tokens from the end.

    `distances` is one distance for every sequence, a list to draw from uniformly (e.g.
    powers of two, so that short and long distances are equally common), or None for
    every possible distance 0 .. length - 1. The unmarked tokens are uniform random
    symbols (the marked symbol may appear among them unmarked). `seed`, an int or a NumPy
    `Generator`, decides everything: the same seed gives the same data.

    >>> data = recall(2, length=5, n_symbols=4, distances=[1], seed=0)
    >>> data.ids.shape, data.distances.tolist(), data.vocab_size
    (torch.Size([2, 5]), [1, 1], 9)
    >>> bool((data.ids[:, 3] == 1 + 4 + data.targets).all())   # position 5 - 1 - 1 = 3
    True
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    if n_symbols < 2:
        raise ValueError(f"n_symbols must be at least 2, got {n_symbols}")
    choices = np.arange(length) if distances is None else np.atleast_1d(distances)
    if choices.size == 0 or choices.ndim != 1 or not np.issubdtype(choices.dtype, np.integer):
        raise ValueError(f"distances must be an int or a non-empty list of ints, got {distances!r}")
    if choices.min() < 0 or choices.max() > length - 1:
        raise ValueError(
            f"distances must lie in 0..{length - 1} for sequences of length {length}, "
            f"got {sorted(set(choices.tolist()))}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    symbols = rng.integers(0, n_symbols, size=(n, length))  # (N, T)
    dist = rng.choice(choices, size=n)  # (N,)
    rows, key = np.arange(n), length - 1 - dist  # key: (N,) position of the marked symbol
    ids = 1 + symbols
    ids[rows, key] += n_symbols  # the marked form of the same symbol
    return RecallData(
        ids=torch.from_numpy(ids).long(),
        targets=torch.from_numpy(symbols[rows, key]).long(),
        distances=torch.from_numpy(dist).long(),
        n_symbols=n_symbols,
    )
