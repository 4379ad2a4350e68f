"""Masked-LM data and loss: BERT's 80/10/10 corruption (against Hugging Face's collator),
packing, the sparse loss (against BERTForMaskedLM's own), the tied decoder, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from transformers import BertTokenizerFast, DataCollatorForLanguageModeling

import nlpbook
from nlpbook import set_seed
from nlpbook.bert import IGNORE_INDEX, BERTConfig, BERTForMaskedLM
from nlpbook.mlm import (
    mask_tokens,
    masked_lm_loss,
    masked_predictions,
    pack_blocks,
    span_corruption,
)

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = [PAD, UNK, CLS, SEP, MASK]
V = 1000


def _batch(B: int = 400, T: int = 500, seed: int = 0) -> torch.Tensor:
    """[CLS] words [SEP] [PAD]...: ordinary ids in [5, V), rows of different lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    positions = torch.arange(T)
    ids[:, 0] = CLS
    ids[positions >= lengths[:, None] - 1] = PAD
    ids[torch.arange(B), lengths - 1] = SEP
    return ids


def _kinds(original: torch.Tensor, inputs: torch.Tensor, chosen: torch.Tensor) -> dict:
    """Fractions of the chosen tokens that became [MASK], another token, or stayed."""
    n = chosen.sum().item()
    masked = (chosen & (inputs == MASK)).sum().item()
    kept = (chosen & (inputs == original)).sum().item()
    return {"mask": masked / n, "random": (n - masked - kept) / n, "kept": kept / n}


def _mask(ids, **kwargs):
    return mask_tokens(ids, mask_token_id=MASK, vocab_size=V, special_ids=SPECIALS, **kwargs)


def test_proportions_on_a_large_sample():
    """15% of ordinary tokens chosen; of those 80/10/10 (each within 1 point, ~200k tokens).

    A random replacement draws the original token or [MASK] with chance 2/V, which moves
    the measured shares by about 0.02 points: far inside the tolerance.
    """
    ids = _batch()
    inputs, labels = _mask(ids, generator=torch.Generator().manual_seed(0))
    chosen = labels != IGNORE_INDEX
    ordinary = ~torch.isin(ids, torch.tensor(SPECIALS))
    assert ordinary.sum() > 100_000
    assert chosen.sum() / ordinary.sum() == pytest.approx(0.15, abs=0.01)
    kinds = _kinds(ids, inputs, chosen)
    assert kinds == pytest.approx({"mask": 0.8, "random": 0.1, "kept": 0.1}, abs=0.01)
    # labels hold the original token where chosen; unchosen tokens are untouched
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    # random replacements are spread over the whole vocabulary, not a few ids: ~2,000
    # uniform draws from 1,000 ids cover 1 - exp(-2) = 86% of them
    replaced = inputs[chosen & (inputs != MASK) & (inputs != ids)]
    assert replaced.float().mean().item() == pytest.approx((V - 1) / 2, rel=0.05)
    assert replaced.unique().numel() > 0.8 * V


def test_special_tokens_and_padding_are_never_chosen():
    ids = _batch(B=200, T=64)
    inputs, labels = _mask(ids, prob=1.0, generator=torch.Generator().manual_seed(1))
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])
    assert (labels[~special] == ids[~special]).all()  # prob=1: every ordinary token chosen
    assert ids.equal(_batch(B=200, T=64))  # the input was not modified


def test_same_seed_same_masks_other_seed_other_masks():
    ids = _batch(B=8, T=128)
    a = _mask(ids, generator=torch.Generator().manual_seed(7))
    b = _mask(ids, generator=torch.Generator().manual_seed(7))
    c = _mask(ids, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    # one generator drawn twice gives two different masks: dynamic masking
    g = torch.Generator().manual_seed(7)
    first, second = _mask(ids, generator=g), _mask(ids, generator=g)
    assert torch.equal(first[1], a[1]) and not torch.equal(second[1], a[1])


def test_agrees_in_distribution_with_hugging_face_collator():
    """Same inputs through HF's DataCollatorForLanguageModeling and ours: the share of
    chosen tokens agrees within 0.3 points and the [MASK]/random/kept shares within 0.8,
    and both leave the special tokens alone.

    With ~750k ordinary tokens (~110k chosen), the standard deviation of the difference of
    two independent estimates is ~0.05 points for the chosen share and ~0.17 for the
    [MASK] share (0.19 measured over six seeds): the tolerances are four of them or more.
    """
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(5, V)]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)})
    assert tokenizer.mask_token_id == MASK and len(tokenizer) == V
    # different seeds: the two must agree in distribution, not by drawing the same numbers
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=1)
    ids = _batch(B=1000, T=1000, seed=3)
    special = torch.isin(ids, torch.tensor(SPECIALS))
    hf_inputs, hf_labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=special)
    inputs, labels = _mask(ids, generator=torch.Generator().manual_seed(0))
    ours_chosen, theirs_chosen = labels != IGNORE_INDEX, hf_labels != IGNORE_INDEX
    assert not theirs_chosen[special].any() and not ours_chosen[special].any()
    rate = ours_chosen.sum() / (~special).sum()
    hf_rate = theirs_chosen.sum() / (~special).sum()
    assert rate.item() == pytest.approx(hf_rate.item(), abs=0.003)
    ours_kinds = _kinds(ids, inputs, ours_chosen)
    theirs_kinds = _kinds(ids, hf_inputs, theirs_chosen)
    assert ours_kinds == pytest.approx(theirs_kinds, abs=0.008)


def test_whole_word_masking_chooses_every_piece_of_a_word_or_none():
    # ids 500.. are '##' pieces that continue the word before them
    continues = torch.zeros(V, dtype=torch.bool)
    continues[500:] = True
    ids = _batch(B=300, T=200, seed=4)
    inputs, labels = _mask(
        ids, generator=torch.Generator().manual_seed(0), continues_word=continues
    )
    chosen = labels != IGNORE_INDEX
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert not chosen[special].any()
    # a continuation piece is chosen exactly when the ordinary token before it is
    follows = ~special[:, 1:] & ~special[:, :-1] & continues[ids[:, 1:]]
    assert torch.equal(chosen[:, 1:][follows], chosen[:, :-1][follows])
    assert follows.sum() > 10_000
    # words (not tokens) are chosen with probability 0.15
    starts = ~special & ~continues[ids]
    assert chosen[starts].float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert _kinds(ids, inputs, chosen) == pytest.approx(
        {"mask": 0.8, "random": 0.1, "kept": 0.1}, abs=0.01
    )


def test_mask_tokens_errors_say_what_was_expected():
    ids = _batch(B=2, T=8)
    with pytest.raises(ValueError, match=r"prob must be in \(0, 1\], got 0"):
        _mask(ids, prob=0.0)
    with pytest.raises(ValueError, match=r"integer ids \(B, T\)"):
        _mask(ids.float())
    with pytest.raises(ValueError, match=r"must lie in \[0, 1000\), got values from 0 to 1000"):
        _mask(torch.tensor([[0, 1000]]))
    with pytest.raises(ValueError, match="special_ids must include mask_token_id 4"):
        mask_tokens(ids, mask_token_id=MASK, vocab_size=V, special_ids=[PAD, CLS, SEP])
    with pytest.raises(ValueError, match=r"bool table of shape \(1000,\)"):
        _mask(ids, continues_word=torch.zeros(10, dtype=torch.bool))


def test_pack_blocks_by_hand():
    blocks = pack_blocks([[5, 6, 7, 8], [9], [10, 11, 12]], block_size=5, cls_id=CLS, sep_id=SEP)
    # stream 5 6 7 8 [SEP] 9 [SEP] 10 11 12 -> pieces of 3, the last (12) dropped
    assert blocks.tolist() == [
        [CLS, 5, 6, 7, SEP],
        [CLS, 8, SEP, 9, SEP],
        [CLS, SEP, 10, 11, SEP],
    ]
    with pytest.raises(ValueError, match="make no block"):
        pack_blocks([[5]], block_size=5, cls_id=CLS, sep_id=SEP)
    with pytest.raises(ValueError, match="at least 3"):
        pack_blocks([[5, 6]], block_size=2, cls_id=CLS, sep_id=SEP)


def _small_model() -> BERTForMaskedLM:
    set_seed(0)
    config = BERTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return BERTForMaskedLM(config)


def test_decoder_is_tied_to_the_input_embeddings():
    """One (V, C) matrix, stored once, updated once: the head's decoder is the embedding."""
    model = _small_model()
    assert model.head.decoder.weight is model.bert.embed.weight
    names = [n for n, p in model.named_parameters() if p is model.bert.embed.weight]
    assert names == ["bert.embed.weight"]  # counted once by parameters()
    total = sum(p.numel() for p in model.parameters())
    untied = total + V * 16  # what a separate decoder matrix would add
    assert total < untied
    ids = _batch(B=4, T=32)
    inputs, labels = _mask(ids, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.bert.embed.weight.detach().clone()
    masked_lm_loss(model, inputs, labels).backward()
    opt.step()
    assert not torch.equal(model.bert.embed.weight, before)
    assert model.head.decoder.weight is model.bert.embed.weight
    state = model.state_dict()
    assert torch.equal(state["head.decoder.weight"], state["bert.embed.weight"])


def test_sparse_loss_equals_the_models_loss_and_gradients():
    """masked_lm_loss (head on labelled positions only) == BERTForMaskedLM's loss, and the
    same gradients (abs 1e-6)."""
    model = _small_model()
    ids = _batch(B=6, T=32, seed=5)
    attention = (ids != PAD).long()
    inputs, labels = _mask(ids, generator=torch.Generator().manual_seed(2))
    _, expected = model(inputs, attention, labels=labels)
    expected.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    got = masked_lm_loss(model, inputs, labels, attention)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], rtol=0, atol=1e-6, msg=name)
    nothing = torch.full_like(labels, IGNORE_INDEX)
    assert torch.isnan(masked_lm_loss(model, inputs, nothing))
    with pytest.raises(ValueError, match=r"labels has shape \(6, 31\)"):
        masked_lm_loss(model, inputs, labels[:, 1:])


def test_masked_predictions_score_by_hand():
    model = _small_model().train()
    ids = _batch(B=10, T=32, seed=6)
    inputs, labels = _mask(ids, prob=0.3, generator=torch.Generator().manual_seed(3))
    nll, top = masked_predictions(model, inputs, labels, batch_size=3, top_k=5)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        logits, loss = model(inputs, labels=labels)
    chosen = labels != IGNORE_INDEX
    targets = labels[chosen]
    assert nll.shape == targets.shape and top.shape == (targets.numel(), 5)
    torch.testing.assert_close(nll.mean(), loss, rtol=0, atol=1e-5)
    torch.testing.assert_close(nll, F.cross_entropy(logits[chosen], targets, reduction="none"))
    assert torch.equal(top[:, 0], logits[chosen].argmax(-1))
    assert torch.equal(top, logits[chosen].topk(5).indices)


def test_masked_predictions_ignore_padding_given_the_attention_mask():
    """A sequence padded to 32 tokens scores as it does alone (abs 1e-5)."""
    model = _small_model()
    ids = torch.randint(5, V, (2, 32), generator=torch.Generator().manual_seed(7))
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[0, 19], ids[0, 20:] = SEP, PAD  # row 0: 20 real tokens, then padding
    inputs, labels = _mask(ids, prob=0.5, generator=torch.Generator().manual_seed(4))
    attention = (ids != PAD).long()
    padded_nll, padded_top = masked_predictions(model, inputs, labels, attention_mask=attention)
    alone_nll, alone_top = masked_predictions(model, inputs[:1, :20], labels[:1, :20])
    n = alone_nll.numel()
    assert n > 3
    torch.testing.assert_close(padded_nll[:n], alone_nll, rtol=0, atol=1e-5)
    assert torch.equal(padded_top[:n], alone_top)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 31\)"):
        masked_predictions(model, inputs, labels, attention_mask=attention[:, 1:])


def test_dynamic_masking_trains_with_the_shared_loop():
    """nlpbook.fit with a loss_fn that masks each batch anew: the loss falls on text with
    a rule to learn (every block repeats one token, so any neighbour gives the answer)."""
    set_seed(0)
    config = BERTConfig(vocab_size=25, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
    model = BERTForMaskedLM(config)
    ids = torch.randint(5, 25, (64, 1), generator=torch.Generator().manual_seed(0)).expand(64, 14)
    blocks = torch.cat([torch.full((64, 1), CLS), ids, torch.full((64, 1), SEP)], dim=1)
    g = torch.Generator().manual_seed(0)

    def loss_fn(model, batch):
        inputs, labels = mask_tokens(
            batch, mask_token_id=MASK, vocab_size=25, special_ids=SPECIALS, generator=g
        )
        return masked_lm_loss(model, inputs, labels)

    batches = torch.utils.data.DataLoader(blocks, batch_size=16, shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    history = nlpbook.fit(model, batches, optimizer=opt, steps=100, loss_fn=loss_fn, progress=False)
    assert sum(history.loss[-20:]) / 20 < 0.5 * sum(history.loss[:10]) / 10


def test_span_corruption_hides_spans_that_the_target_restores():
    """Inputs and targets, merged at the sentinels, give back the text; the noise is
    round(density * n) tokens in round(noise / mean span) spans; the text starts with a gap."""
    tokens = list(range(100, 140))  # 40 tokens
    sentinels = [-1, -2, -3, -4, -5, -6, -7]
    for seed in range(5):
        inputs, targets = span_corruption(
            tokens, sentinels=sentinels, noise_density=0.15, mean_span_length=3.0,
            rng=np.random.default_rng(seed),
        )  # fmt: skip
        spans = [s for s in sentinels if s in inputs]
        assert spans == sentinels[: len(spans)] == [t for t in targets if t < 0][:-1]
        assert len(spans) == 2 and targets[-1] == sentinels[2]  # round(6 / 3) spans
        assert len(targets) - len(spans) - 1 == 6  # round(0.15 * 40) hidden tokens
        assert inputs[0] == tokens[0]
        hidden, span = {}, None
        for t in targets:
            span = t if t < 0 else span
            if t >= 0:
                hidden.setdefault(span, []).append(t)
        restored = [x for t in inputs for x in (hidden[t] if t < 0 else [t])]
        assert restored == tokens


def test_span_corruption_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        span_corruption([1], sentinels=[-1, -2], rng=rng)
    with pytest.raises(ValueError, match="sentinels"):
        span_corruption(list(range(40)), sentinels=[-1], noise_density=0.5, rng=rng)
