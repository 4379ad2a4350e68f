"""Language-model batches, the held-out loss and perplexity: by hand and against HF's loss."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nlpbook.lmdata import RandomChunks, mean_loss, perplexity


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


class _Fixed(nn.Module):
    """Next-token probabilities (1/2, 1/4, 1/8, 1/8) at every position, as a HF-style output."""

    def __init__(self) -> None:
        super().__init__()
        self.log_probs = nn.Parameter(torch.tensor([0.5, 0.25, 0.125, 0.125]).log())

    def forward(self, x):
        return SimpleNamespace(logits=self.log_probs.expand(*x.shape, 4))


def test_perplexity_by_hand():
    """Targets 1, 0, 2, 3 cost ln 4, ln 2, ln 8, ln 8: mean 2.25 ln 2, perplexity 2 ** 2.25."""
    ids = torch.tensor([0, 1, 0, 2, 3])
    for block in (1, 2, 4, 9):  # however the text is cut, each target is predicted once
        assert perplexity(_Fixed(), ids, block_size=block) == pytest.approx(2**2.25, rel=1e-6)


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def test_perplexity_is_exp_of_hugging_face_loss_on_the_same_windows():
    """3 windows of 9 ids overlapping by one: exp(mean of HF's 3 losses), to 1e-5."""
    model = _tiny_llama()
    ids = torch.randint(50, (3 * 8 + 1,), generator=torch.Generator().manual_seed(1))
    windows = torch.stack([ids[s : s + 9] for s in (0, 8, 16)])  # (3, 9)
    with torch.no_grad():
        losses = [model(input_ids=w[None], labels=w[None]).loss for w in windows]
    expected = math.exp(torch.stack(losses).mean().item())
    for batch_size in (1, 2, 8):
        ppl = perplexity(model, ids, block_size=8, batch_size=batch_size)
        assert ppl == pytest.approx(expected, rel=1e-5)
    assert 1 < expected < 100  # a random model: near the vocabulary size, not a degenerate case


def test_perplexity_of_our_gpt_equals_hugging_face_with_the_same_weights():
    """The book's GPT loaded from the HF model scores the same text the same, to 1e-5."""
    from nlpbook.gpt import GPT

    hf = _tiny_llama()
    ours = GPT.from_hf(hf).eval()
    ids = torch.randint(50, (40,), generator=torch.Generator().manual_seed(2))
    theirs = perplexity(hf, ids, block_size=16)
    assert perplexity(ours, ids, block_size=16) == pytest.approx(theirs, rel=1e-5)
