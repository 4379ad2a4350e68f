"""Metrics of generated text, checked on hand-worked token lists and on tiny models."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from nlpbook.generation import generate
from nlpbook.gpt import GPT
from nlpbook.textmetrics import (
    STRATEGIES,
    continuation_logits,
    continuation_loglik,
    continuations,
    distinct_n,
    hf_arguments,
    measure_decoding,
    ngrams,
    passage_openings,
    repeated,
    repetition_rate,
)


def test_distinct_n_by_hand():
    # "a b a b c" and "c d": unigrams a b a b c c d -> 4 distinct of 7
    texts = [[1, 2, 1, 2, 3], [3, 4]]
    assert distinct_n(texts, 1) == pytest.approx(4 / 7)
    # bigrams (1,2) (2,1) (1,2) (2,3) | (3,4): 4 distinct of 5; none crosses between texts
    assert distinct_n(texts, 2) == pytest.approx(4 / 5)
    assert distinct_n([[5, 6, 7]], 3) == 1.0
    assert distinct_n([[5, 6]], 3) == 0.0, "no trigram at all"
    assert distinct_n([], 1) == 0.0


def test_repeated_and_repetition_rate_by_hand():
    loop = [7, 8, 9, 7, 8, 9, 7, 8]
    # 4-grams: 7897 8978 9789 7897 8978: the last two repeat the first two
    assert repeated(loop, 4) == [False] * 6 + [True, True]
    assert repetition_rate(loop, 4) == pytest.approx(2 / 5)
    assert repetition_rate(loop, 1) == pytest.approx(5 / 8), "3 distinct of 8 unigrams"
    assert repetition_rate([1, 2, 3, 4, 5], 2) == 0.0
    assert repetition_rate([3] * 10, 4) == pytest.approx(6 / 7), "one 4-gram, seven times"
    assert repetition_rate([1, 2], 4) == 0.0 and repeated([1, 2], 4) == [False, False]
    # repetition rate of one text is 1 - its distinct-n
    assert repetition_rate(loop, 3) == pytest.approx(1 - distinct_n([loop], 3))
    with pytest.raises(ValueError, match="n must be >= 1"):
        ngrams([1, 2], 0)


def test_continuations_stop_after_the_first_eos():
    ids = torch.tensor([[0, 5, 6, 2, 2, 2], [5, 5, 7, 8, 9, 1], [5, 5, 3, 2, 1, 2]])
    assert continuations(ids, 2, eos_token_id=2) == [[6, 2], [7, 8, 9, 1], [3, 2]]
    assert continuations(ids, 2, eos_token_id=[1, 3]) == [[6, 2, 2, 2], [7, 8, 9, 1], [3]]
    assert continuations(ids, 4) == [[2, 2], [9, 1], [1, 2]], "without eos: every token"


class _Bigram(torch.nn.Module):
    """A fake HF causal LM: after token a, the next token is b with probability P[a, b]."""

    P = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]])

    def forward(self, input_ids, attention_mask, position_ids):
        return SimpleNamespace(logits=self.P.log()[input_ids])  # (B, T, V)


def test_continuation_loglik_by_hand():
    """Prompt [0] then 1, 1, 2 scores log(0.25) + log(0.8) + log(0.1); prompt [1] then 0 scores
    log(0.1). Row 1 is left-padded (pad id 2, mask 0): padding changes nothing."""
    prompts = torch.tensor([[2, 0], [2, 1]])
    mask = torch.tensor([[0, 1], [0, 1]])
    mean, per_text = continuation_loglik(_Bigram(), prompts, [[1, 1, 2], [0]], attention_mask=mask)
    first = math.log(0.25) + math.log(0.8) + math.log(0.1)
    assert per_text == pytest.approx([first / 3, math.log(0.1)], abs=1e-6)
    assert mean == pytest.approx((first + math.log(0.1)) / 4, abs=1e-6), "pooled over 4 tokens"
    with pytest.raises(ValueError, match="one continuation per prompt"):
        continuation_loglik(_Bigram(), prompts, [[1]])
    logits, tokens, keep = continuation_logits(
        _Bigram(), prompts, [[1, 1, 2], [0]], attention_mask=mask
    )
    assert logits.shape == (2, 3, 3) and tokens.tolist() == [[1, 1, 2], [0, 0, 0]]
    assert keep.tolist() == [[1, 1, 1], [1, 0, 0]]
    # row 1 predicts its first token from the prompt's last token, 1: row 1 of P
    torch.testing.assert_close(logits[1, 0].softmax(-1), _Bigram.P[1])


@pytest.fixture(scope="module")
def llama_pair():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64)  # fmt: skip
    hf = LlamaForCausalLM(config).eval()
    return hf, GPT.from_hf(hf).eval()


def test_continuation_loglik_equals_hf_loss_and_ignores_padding(llama_pair):
    """The mean log-likelihood of one unpadded continuation is minus HF's own cross-entropy
    on it (labels -100 on the prompt), 1e-5; the same rows in a left-padded batch, with a
    shorter continuation padded on the right, score the same (1e-5)."""
    hf, ours = llama_pair
    g = torch.Generator().manual_seed(1)
    prompt, text = (
        torch.randint(0, 50, (1, 6), generator=g),
        torch.randint(0, 50, (9,), generator=g),
    )
    full = torch.cat([prompt[0], text])[None]
    labels = full.clone()
    labels[0, :6] = -100
    with torch.no_grad():
        expected = -hf(full, labels=labels).loss.item()
    for model in (hf, ours):
        mean, _ = continuation_loglik(model, prompt, [text.tolist()])
        assert mean == pytest.approx(expected, abs=1e-5)
    short = torch.randint(0, 50, (3,), generator=g)
    alone, _ = continuation_loglik(hf, short[None], [text[:4].tolist()])
    batch = torch.stack([torch.cat([torch.zeros(3, dtype=torch.long), short]), prompt[0]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    for model in (hf, ours):
        _, per_text = continuation_loglik(
            model, batch, [text[:4].tolist(), text.tolist()], attention_mask=mask
        )
        assert per_text == pytest.approx([alone, expected], abs=1e-5)


def test_measure_decoding_greedy_and_sampling(llama_pair):
    """Greedy: the texts are generate's tokens, and nothing is more likely token by token than
    the argmax, so greedy's log-likelihood beats sampling at temperature 1.5. Seeded
    sampling repeats itself."""
    _, ours = llama_pair
    ids = torch.randint(0, 50, (4, 5), generator=torch.Generator().manual_seed(2))
    greedy = measure_decoding(ours, ids, max_new_tokens=12)
    assert greedy.texts == generate(ours, ids, max_new_tokens=12)[:, 5:].tolist()
    assert greedy.tokens == 48 and greedy.seconds > 0
    hot = dict(do_sample=True, temperature=1.5)
    a = measure_decoding(ours, ids, max_new_tokens=12, seed=3, **hot)
    b = measure_decoding(ours, ids, max_new_tokens=12, seed=3, **hot)
    assert a.texts == b.texts and a.loglik == b.loglik
    assert greedy.loglik > a.loglik
    assert greedy.repetition == pytest.approx(sum(repetition_rate(t, 4) for t in greedy.texts) / 4)
    assert set(greedy.row()) >= {"tokens/s", "log-lik/token", "distinct-2", "repetition"}


def test_strategies_are_valid_generate_arguments(llama_pair):
    _, ours = llama_pair
    ids = torch.ones(1, 2, dtype=torch.long)
    assert {"greedy", "beam 4", "top-k 50", "top-p 0.9", "temperature 1.3"} <= set(STRATEGIES)
    for strategy in STRATEGIES.values():
        assert generate(ours, ids, max_new_tokens=2, **strategy).shape == (1, 4)


def test_passage_openings_by_hand():
    """Four passages; B has too few lines for an opening of 2 and D is too close to the end
    to be followed by 6 characters: the two openings are A's and C's."""
    text = "A:\nhi\nyou\n\nB:\nno\n\nC:\nyes\nthen\nmore\n\nD:\nok\nbye\n"
    got = passage_openings(text, n=2, lines=2, rest_chars=6)
    assert got == [("A:\nhi\n", "you\n\nB"), ("C:\nyes\n", "then\nm")]
    assert passage_openings(text, n=1, lines=3, rest_chars=1) == [("C:\nyes\nthen\n", "m")]
    with pytest.raises(ValueError, match="fewer than n=3"):
        passage_openings(text, n=3, lines=2, rest_chars=6)


def test_hf_arguments_switch_off_hf_default_top_k():
    assert hf_arguments({}) == {"do_sample": False}
    assert hf_arguments(dict(do_sample=True, temperature=0.7)) == {
        "do_sample": True,
        "top_k": 0,
        "temperature": 0.7,
    }
    assert hf_arguments(dict(do_sample=True, top_k=50))["top_k"] == 50, "ours wins when given"
