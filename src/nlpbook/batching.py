"""Padding and batching id sequences of different lengths.

`pad_batch` turns a list of sequences into one padded tensor and the lengths that models
use to ignore the padding; `bucket_batches` groups sequences of similar length so that
little of each batch is padding. The classifiers, the translators and fine-tuning all
batch this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def pad_batch(sequences: Sequence[Sequence[int]], *, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad id sequences into ``ids`` (B, T) and their ``lengths`` (B,).

    >>> ids, lengths = pad_batch([[5, 6, 7], [8]])
    >>> ids.tolist(), lengths.tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1])
    """
    if len(sequences) == 0:
        raise ValueError("cannot pad an empty batch")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if lengths.min() == 0:
        raise ValueError(f"sequence {int(lengths.argmin())} of the batch is empty")
    ids = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, lengths


def bucket_batches(
    lengths: Sequence[int], *, batch_size: int, shuffle: bool = True, seed: int = 0
) -> list[np.ndarray]:
    """Batches of indices whose sequences have similar lengths, which cuts padding.

    Indices are shuffled, cut into chunks of 50 batches, sorted by length inside each
    chunk and split into batches; the batch order is shuffled again. Without `shuffle`
    the batches simply follow the sorted lengths (good for evaluation).

    >>> [b.tolist() for b in bucket_batches([3, 1, 2, 1], batch_size=2, shuffle=False)]
    [[1, 3], [2, 0]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = 50 * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
