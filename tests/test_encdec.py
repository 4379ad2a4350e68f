"""The encoder-decoder transformer: masks, the cache, decoding through `generate`, a task
with a language-style tag that it must learn, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlpbook import fit, set_seed
from nlpbook.batching import pad_batch
from nlpbook.encdec import EncoderDecoder, EncoderDecoderConfig, translate
from nlpbook.schedule import warmup_cosine
from nlpbook.seq2seq import TranslationBatches

BOS, EOS = 1, 2
SMALL = dict(d_model=32, n_heads=4, n_enc_layers=2, n_dec_layers=2, max_len=24, dropout=0.0)


def _model(seed: int = 0, vocab: int = 16) -> EncoderDecoder:
    torch.manual_seed(seed)
    return EncoderDecoder(EncoderDecoderConfig(vocab_size=vocab, **SMALL)).eval()


def _greedy_without_cache(model: EncoderDecoder, src: list[int], steps: int) -> list[int]:
    """Greedy decoding written out: the whole target re-read at every step."""
    memory, mask = model.encode(torch.tensor([src]), torch.tensor([len(src)]))
    out = [BOS]
    for _ in range(steps):
        logits = model.decode(torch.tensor([out]), memory, mask)
        out.append(int(logits[0, -1].argmax()))
        if out[-1] == EOS:
            break
    return out[1:-1] if out[-1] == EOS else out[1:]


def test_embedding_and_output_layer_are_tied():
    model = _model()
    assert model.head.weight is model.embed.weight


def test_padding_changes_nothing():
    """A source and a target give the same logits alone and padded in a batch (1e-5)."""
    model = _model()
    a, b = [5, 6, 7, 8], [9, 10]
    src, lengths = pad_batch([a, b])
    tgt = torch.tensor([[BOS, 4, 5], [BOS, 6, 7]])
    batched, _ = model(src, lengths, tgt)
    alone, _ = model(torch.tensor([b]), torch.tensor([2]), tgt[1:])
    torch.testing.assert_close(batched[1:], alone, atol=1e-5, rtol=1e-5)


def test_decoder_is_causal():
    """Changing a later target token leaves the logits of earlier positions unchanged."""
    model = _model()
    src, lengths = torch.tensor([[5, 6, 7]]), torch.tensor([3])
    one, _ = model(src, lengths, torch.tensor([[BOS, 4, 5, 6]]))
    two, _ = model(src, lengths, torch.tensor([[BOS, 4, 5, 11]]))
    torch.testing.assert_close(one[:, :3], two[:, :3], atol=0, rtol=0)
    assert not torch.allclose(one[:, 3], two[:, 3])


def test_cached_decoding_equals_full_forward():
    """Feeding the target one token at a time through the cache gives the full pass's logits."""
    model = _model()
    src, lengths = torch.tensor([[5, 6, 7, 8]]), torch.tensor([4])
    tgt = torch.tensor([[BOS, 9, 4, 12, 3]])
    full, _ = model(src, lengths, tgt)
    decoder = model.bind(src, lengths)
    cache, steps = None, []
    for t in range(tgt.size(1)):
        out = decoder(tgt[:, t : t + 1], past_key_values=cache)
        cache = out.past_key_values
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_translate_greedy_matches_a_written_out_loop(seed):
    """`translate` (batched, cached, through `generate`) equals greedy without a cache."""
    model = _model(seed)
    sources = [[5, 6, 7], [8, 9, 10, 11, 12], [13]]
    expected = [_greedy_without_cache(model, s, steps=10) for s in sources]
    got = translate(model, sources, bos_id=BOS, eos_id=EOS, max_new_tokens=10, batch_size=2)
    assert got == expected


def test_beam_search_is_per_sentence_and_width_one_is_greedy():
    """Beam 1 = greedy; a batch under beam search = each sentence searched alone (the memory
    follows its beams when they are reordered)."""
    model = _model(3)
    sources = [[5, 6, 7], [8, 9, 10, 11, 12], [13, 4]]
    greedy = translate(model, sources, bos_id=BOS, eos_id=EOS, max_new_tokens=8)
    assert translate(model, sources, bos_id=BOS, eos_id=EOS, max_new_tokens=8, num_beams=1) == (
        greedy
    )
    batched = translate(model, sources, bos_id=BOS, eos_id=EOS, max_new_tokens=8, num_beams=3)
    alone = [
        translate(model, [s], bos_id=BOS, eos_id=EOS, max_new_tokens=8, num_beams=3)[0]
        for s in sources
    ]
    assert batched == alone


def test_learns_two_tasks_chosen_by_a_tag(one_thread):
    """Like a target-language tag: tag 3 asks for a copy, tag 4 for the reversal, in one
    model. After 600 steps > 90% of held-out sequences come out exactly right for each."""
    set_seed(0)
    rng = np.random.default_rng(0)
    COPY, REVERSE = 3, 4
    seqs = [rng.integers(5, 16, size=rng.integers(3, 8)).tolist() for _ in range(2400)]
    pairs = [
        ([tag, *s], (s if tag == COPY else s[::-1]) + [EOS])
        for i, s in enumerate(seqs)
        for tag in [(COPY, REVERSE)[i % 2]]
    ]
    config = EncoderDecoderConfig(vocab_size=16, **{**SMALL, "d_model": 64}, label_smoothing=0.0)
    model = EncoderDecoder(config)
    batches = TranslationBatches(pairs[:2000], batch_size=64, bos_id=BOS, pad_id=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = fit(
        model,
        batches,
        optimizer=optimizer,
        scheduler=warmup_cosine(optimizer, warmup_steps=40, total_steps=600, min_lr=1e-4),
        steps=600,
        grad_clip=1.0,
        progress=False,
    )
    assert np.mean(history.loss[-20:]) < 0.1 * np.mean(history.loss[:10])
    test = pairs[2000:]
    out = translate(model, [s for s, _ in test], bos_id=BOS, eos_id=EOS, max_new_tokens=10)
    for tag in (COPY, REVERSE):
        right = [o == t[:-1] for (s, t), o in zip(test, out, strict=True) if s[0] == tag]
        assert np.mean(right) > 0.9, (tag, np.mean(right))


def test_bad_input_is_rejected_with_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match="src_lengths"):
        model.encode(torch.ones(2, 3, dtype=torch.long), torch.tensor([3]))
    with pytest.raises(ValueError, match="max_len=24"):
        model.encode(torch.ones(1, 30, dtype=torch.long), torch.tensor([30]))
    with pytest.raises(ValueError, match="empty"):
        translate(model, [[5], []], bos_id=BOS, eos_id=EOS)
