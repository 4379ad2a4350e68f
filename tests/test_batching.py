"""Padding and length-bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest

from nlpbook.batching import bucket_batches, pad_batch


def test_pad_batch_and_its_errors():
    ids, lengths = pad_batch([[4], [5, 6, 7], [8, 9]], pad_id=0)
    assert ids.tolist() == [[4, 0, 0], [5, 6, 7], [8, 9, 0]]
    assert lengths.tolist() == [1, 3, 2]
    with pytest.raises(ValueError, match="sequence 1 of the batch is empty"):
        pad_batch([[1], []])
    with pytest.raises(ValueError, match="empty batch"):
        pad_batch([])


def test_bucket_batches_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000)
    batches = bucket_batches(lengths, batch_size=10, seed=1)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.2 * np.ptp(lengths)  # sorted within chunks: little padding
    assert [b.tolist() for b in batches] == [
        b.tolist() for b in bucket_batches(lengths, batch_size=10, seed=1)
    ]
