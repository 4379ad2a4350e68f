"""Language-model batches and the held-out loss, checked on cases worked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nlpbook.lmdata import RandomChunks, mean_loss


class _Counting(nn.Module):
    """Uniform logits over V ids; remembers how many positions it was asked to predict."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab, self.seen = vocab, 0
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        self.seen += x.numel()
        return torch.zeros(*x.shape, self.vocab), None


def test_random_chunks_targets_are_inputs_shifted_and_seeded():
    ids = torch.arange(100)
    x, y = next(iter(RandomChunks(ids, block_size=8, batch_size=4, seed=3)))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y, x + 1)
    again, _ = next(iter(RandomChunks(ids, block_size=8, batch_size=4, seed=3)))
    assert torch.equal(x, again)


@pytest.mark.parametrize("n, block", [(100, 8), (97, 8), (10, 9), (2, 5)])
def test_mean_loss_predicts_every_id_once(n, block):
    """Uniform logits over 7 ids: loss log(7), and exactly n - 1 predictions are made."""
    model = _Counting(7)
    loss = mean_loss(model, torch.zeros(n, dtype=torch.long), block_size=block, batch_size=3)
    assert loss == pytest.approx(math.log(7), rel=1e-6)
    assert model.seen == n - 1


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="more than 8 ids"):
        RandomChunks(torch.arange(8), block_size=8, batch_size=2)
    with pytest.raises(ValueError, match="at least 2 ids"):
        mean_loss(_Counting(3), torch.zeros(1, dtype=torch.long), block_size=4)
