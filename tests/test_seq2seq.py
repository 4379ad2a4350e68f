"""The translator's parts: attention, decoding, a task it must learn, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlpbook import fit, set_seed
from nlpbook.batching import pad_batch
from nlpbook.seq2seq import (
    AdditiveAttention,
    Seq2Seq,
    Seq2SeqConfig,
    TranslationBatches,
    beam_search,
    bleu,
    detokenize,
    encode_pairs,
    greedy_decode,
)
from nlpbook.vocab import TokenVocab, tokenize

SMALL = dict(embed_dim=16, hidden_size=24, attn_dim=20, dropout=0.0)


def _model(attention=True, seed=0, vocab=15):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(vocab, vocab, attention=attention, **SMALL)).eval()


def test_attention_weights_sum_to_one_and_ignore_padding():
    """Weights on padding are exactly 0, the rest sum to 1 (1e-6); padding values change nothing."""
    torch.manual_seed(0)
    attn = AdditiveAttention(6, 8, 5)
    query, values = torch.randn(3, 6), torch.randn(3, 4, 8)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    context, weights = attn(query, attn.project_keys(values), values, mask)
    assert weights.shape == (3, 4) and context.shape == (3, 8)
    torch.testing.assert_close(weights.sum(1), torch.ones(3), atol=1e-6, rtol=0)
    assert torch.all(weights[~mask] == 0)
    noisy = values.clone()
    noisy[~mask] = 100.0
    context2, weights2 = attn(query, attn.project_keys(noisy), noisy, mask)
    torch.testing.assert_close(context2, context)
    torch.testing.assert_close(weights2, weights)
    torch.testing.assert_close(weights[2], torch.tensor([1.0, 0, 0, 0]))


@pytest.mark.parametrize("attention", [True, False])
def test_batched_greedy_equals_one_sentence_at_a_time(attention):
    model = _model(attention)
    sentences = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [4]]
    src, lengths = pad_batch(sentences)
    batched = greedy_decode(model, src, lengths, max_len=8)
    for sentence, together in zip(sentences, batched, strict=True):
        (alone,) = greedy_decode(
            model, torch.tensor([sentence]), torch.tensor([len(sentence)]), max_len=8
        )
        assert alone.ids == together.ids
        assert alone.score == pytest.approx(together.score, abs=1e-4)
        if attention:
            assert together.attention.shape == (len(together.ids), len(sentence))
            torch.testing.assert_close(alone.attention, together.attention, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(together.attention.sum(1), torch.ones(len(together.ids)))
        else:
            assert together.attention is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_of_width_one_is_greedy(seed):
    model = _model(seed=seed)
    sentence = [5, 9, 7, 12, 4]
    (greedy,) = greedy_decode(model, torch.tensor([sentence]), torch.tensor([5]), max_len=10)
    beam = beam_search(model, sentence, width=1, max_len=10)
    assert beam.ids == greedy.ids
    assert beam.score == pytest.approx(greedy.score, abs=1e-4)
    torch.testing.assert_close(beam.attention, greedy.attention, atol=1e-5, rtol=1e-5)


def test_exhaustive_beam_finds_the_best_translation_by_brute_force():
    """With a beam wider than all candidates, beam search returns the finished sequence of
    highest log-probability per token, found by scoring every sequence of <= 3 tokens."""
    import itertools

    model = _model(seed=4, vocab=6)  # ids 0..5, <eos> = 3
    sentence = [4, 5, 4]
    src, src_len = torch.tensor([sentence]), torch.tensor([3])
    best, best_ids = -float("inf"), None
    for n in range(3):
        for prefix in itertools.product([0, 1, 2, 4, 5], repeat=n):
            ids = [*prefix, 3]
            tgt_in = torch.tensor([[2, *ids[:-1]]])
            with torch.no_grad():
                logits, _ = model(src, src_len, tgt_in)
            logp = torch.log_softmax(logits[0], dim=-1)[torch.arange(len(ids)), ids].sum()
            if float(logp) / len(ids) > best:
                best, best_ids = float(logp) / len(ids), ids
    beam = beam_search(model, sentence, width=200, max_len=3, length_penalty=1.0)
    assert beam.ids == best_ids
    assert beam.score / len(beam.ids) == pytest.approx(best, abs=1e-5)


def test_learns_to_reverse_sequences():
    """A small attention model learns to reverse 3-7 symbols: loss falls 10x, >90% exact."""
    set_seed(0)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(4, 14, size=rng.integers(3, 8)).tolist() for _ in range(1200)]
    pairs = [(s, s[::-1] + [3]) for s in seqs]
    model = Seq2Seq(Seq2SeqConfig(14, 14, embed_dim=32, hidden_size=64, attn_dim=32, dropout=0.0))
    batches = TranslationBatches(pairs[:1000], batch_size=64)
    history = fit(
        model,
        batches,
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3),
        steps=300,
        grad_clip=1.0,
        progress=False,
    )
    assert np.mean(history.loss[-20:]) < 0.1 * np.mean(history.loss[:10])
    test = [s for s, _ in pairs[1000:]]
    src, lengths = pad_batch(test)
    out = greedy_decode(model, src, lengths, max_len=10)
    exact = np.mean([tr.ids == s[::-1] + [3] for tr, s in zip(out, test, strict=True)])
    assert exact > 0.9


def test_bad_input_is_rejected_with_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match="src_lengths"):
        model.encode(torch.ones(2, 3, dtype=torch.long), torch.tensor([3]))
    with pytest.raises(ValueError, match="lie in 1..3"):
        model.encode(torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="tgt_in"):
        model(
            torch.ones(2, 3, dtype=torch.long),
            torch.tensor([3, 3]),
            torch.ones(1, 2, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="targets"):
        model(
            torch.ones(1, 3, dtype=torch.long),
            torch.tensor([3]),
            torch.ones(1, 2, dtype=torch.long),
            torch.ones(1, 3, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="non-empty sentence"):
        beam_search(model, [])
    vocab = TokenVocab(("<pad>", "<unk>", "<bos>", "<eos>", "ein", "hund", "a", "dog"))
    with pytest.raises(ValueError, match="pair 1 has an empty side"):
        encode_pairs([("ein hund", "a dog"), ("  ", "a dog")], vocab, vocab, tokenize=tokenize)
    # unknown words are mapped to <unk> (id 1), not an error
    assert encode_pairs([("ein Hund bellt", "a dog")], vocab, vocab, tokenize=tokenize) == [
        ([4, 5, 1], [6, 7, 3])
    ]
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu(["a", "b"], ["a"])


def test_bleu_is_sacrebleu_and_detokenize_stops_at_eos():
    vocab = TokenVocab(("<pad>", "<unk>", "<bos>", "<eos>", "a", "dog", "runs", "."))
    text = detokenize([4, 5, 6, 7, 3, 5], vocab)
    assert text == "a dog runs ."
    assert bleu([text], ["A dog runs."]).score == pytest.approx(100.0)
    assert bleu([text], ["A dog runs."], lowercase=False).score < 100.0
    assert bleu(["a cat sleeps ."], ["A dog runs."]).score < 20.0


def test_unknown_words_are_dropped_before_bleu_and_refused_by_it():
    """``<unk>`` is not a word: left in, sacrebleu splits it into ``< unk >``, three tokens
    that lengthen the hypothesis and hide a brevity penalty; `bleu` refuses it."""
    vocab = TokenVocab(("<pad>", "<unk>", "<bos>", "<eos>", "a", "dog", "runs", "."))
    assert detokenize([2, 4, 1, 5, 0, 3], vocab) == "a dog"
    assert detokenize([4, 1, 5, 3], vocab, keep_unk=True) == "a <unk> dog"
    with pytest.raises(ValueError, match=r"hypothesis 1 contains \['<unk>'\]"):
        bleu(["a dog runs .", "a <unk> runs ."], ["A dog runs.", "A cat runs."])
    # what the check prevents: 13a turns "<unk>" into three tokens, ratio 7/4 instead of 2/4
    import sacrebleu

    inflated = sacrebleu.corpus_bleu(["a <unk> ."], [["a dog runs ."]], force=True)
    assert (inflated.sys_len, inflated.ref_len) == (5, 4)
    dropped = bleu([detokenize([4, 1, 7], vocab)], ["a dog runs ."])
    assert (dropped.sys_len, dropped.ref_len) == (2, 4) and dropped.bp < 1.0
