"""The synthetic recall task: the answer sits where the distance says, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlpbook.synthetic import PAD, RecallData, recall


def test_one_sequence_read_by_hand():
    data = recall(1, length=8, n_symbols=5, distances=3, seed=1)
    ids = data.ids[0].tolist()
    # length 8, distance 3: the marked symbol is at position 8 - 1 - 3 = 4, three tokens follow
    marked = [i for i, t in enumerate(ids) if t > 5]
    assert marked == [4] == data.key_positions.tolist()
    assert data.targets.tolist() == [ids[4] - 1 - 5]
    assert len(ids[5:]) == data.distances.item() == 3
    assert all(1 <= t <= 5 for i, t in enumerate(ids) if i != 4)


def test_every_sequence_has_exactly_one_marked_symbol_at_its_distance():
    data = recall(500, length=30, n_symbols=7, seed=0)
    assert isinstance(data, RecallData) and len(data) == 500
    assert data.ids.shape == (500, 30) and data.ids.dtype == torch.long
    marked = data.ids > 7  # ids 8..14 are the marked symbols
    assert (marked.sum(dim=1) == 1).all()
    assert (marked.int().argmax(dim=1) == data.key_positions).all()
    assert (data.key_positions + 1 + data.distances == 30).all()
    rows = torch.arange(500)
    assert (data.ids[rows, data.key_positions] == 1 + 7 + data.targets).all()
    # no padding, ids in range, every class and every distance 0..29 appears
    assert (data.ids != PAD).all() and int(data.ids.max()) < data.vocab_size == 15
    assert sorted(set(data.targets.tolist())) == list(range(7))
    assert sorted(set(data.distances.tolist())) == list(range(30))
    assert data.lengths.tolist() == [30] * 500


def test_distances_are_drawn_from_the_given_list_only():
    data = recall(300, length=20, n_symbols=4, distances=[0, 5, 19], seed=3)
    assert set(data.distances.tolist()) == {0, 5, 19}
    last = data.distances == 0  # the marked symbol is the last token
    assert (data.ids[last, -1] == 1 + 4 + data.targets[last]).all()
    first = data.distances == 19  # ... or the very first
    assert (data.ids[first, 0] == 1 + 4 + data.targets[first]).all()
    assert (data.ids[first, 1:] <= 4).all()


def test_same_seed_same_data_and_generators_are_accepted():
    a = recall(50, length=12, n_symbols=6, seed=7)
    b = recall(50, length=12, n_symbols=6, seed=7)
    c = recall(50, length=12, n_symbols=6, seed=8)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.ids, c.ids)
    rng = np.random.default_rng(7)
    first = recall(5, length=12, n_symbols=6, seed=rng)
    second = recall(5, length=12, n_symbols=6, seed=rng)
    assert not torch.equal(first.ids, second.ids)  # the generator moves on


def test_targets_are_uniform_over_symbols():
    data = recall(20_000, length=10, n_symbols=4, seed=0)
    counts = torch.bincount(data.targets, minlength=4).float() / 20_000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be at least 1"),
        (dict(length=0), "length must be at least 1"),
        (dict(n_symbols=1), "n_symbols must be at least 2"),
        (dict(distances=10), r"distances must lie in 0\.\.9"),
        (dict(distances=[-1, 2]), r"distances must lie in 0\.\.9"),
        (dict(distances=[]), "non-empty list of ints"),
        (dict(distances=[1.5]), "non-empty list of ints"),
    ],
)
def test_bad_input_says_what_was_expected(kwargs, message):
    args = dict(n=4, length=10, n_symbols=5) | kwargs
    with pytest.raises(ValueError, match=message):
        recall(args.pop("n"), **args)
