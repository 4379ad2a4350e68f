"""generate() for our GPT and for Hugging Face models, against HF's own generate."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nlpbook.generation import apply_repetition_penalty, filter_logits, generate
from nlpbook.gpt import GPT, GPTConfig

EOS, PAD = 2, 0


def _hf_model(kind: str):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPT2Config(
            n_layer=2,
            n_head=4,
            n_embd=64,
            vocab_size=100,
            n_positions=64,
            initializer_range=0.3,  # livelier than 0.02, which repeats one token
            bos_token_id=1,
            eos_token_id=EOS,
            pad_token_id=PAD,
        )
        return GPT2LMHeadModel(config).eval()
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return LlamaForCausalLM(config).eval()


def _left_padded_batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (3, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :6] = 0
    return ids.masked_fill(mask == 0, PAD), mask


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def models(request):
    hf = _hf_model(request.param)
    return hf, GPT.from_hf(hf)


def test_greedy_equals_hf_generate_on_a_left_padded_batch(models):
    """HF's model.generate(do_sample=False), our generate on the HF model, and our generate
    on our GPT loaded from it: exactly the same tokens, eos and padding included."""
    hf, ours = models
    ids, mask = _left_padded_batch()
    expected = hf.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    kwargs = dict(max_new_tokens=12, eos_token_id=EOS, pad_token_id=PAD, attention_mask=mask)
    assert torch.equal(generate(hf, ids, **kwargs), expected)
    assert torch.equal(generate(ours, ids, **kwargs), expected)


def test_cache_gives_the_same_tokens_as_no_cache(models):
    hf, ours = models
    ids, mask = _left_padded_batch()
    for model in (hf, ours):
        with_cache = generate(model, ids, attention_mask=mask, max_new_tokens=10)
        without = generate(model, ids, attention_mask=mask, max_new_tokens=10, use_cache=False)
        assert with_cache.shape == (3, 18)
        assert torch.equal(with_cache, without)


class _Successor(torch.nn.Module):
    """A fake HF causal LM whose next token is ``NEXT[last token]`` with certainty."""

    NEXT = torch.tensor([0, 2, 3, 7, 4, 7, 6, 7, 8, 9])  # 1 -> 2 -> 3 -> 7; 5 -> 7

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache):
        logits = 10.0 * torch.nn.functional.one_hot(self.NEXT[input_ids], 10).float()
        return SimpleNamespace(logits=logits, past_key_values=None)


def test_finished_rows_keep_emitting_padding_and_generation_stops_early():
    """Row 0 ends (eos 7) at its first step and then receives pad 9; row 1 ends at its
    third step, after which generation stops although max_new_tokens=6."""
    ids = torch.tensor([[5], [1]])
    out = generate(_Successor(), ids, max_new_tokens=6, eos_token_id=7, pad_token_id=9)
    assert out.tolist() == [[5, 7, 9, 9], [1, 2, 3, 7]]
    out = generate(_Successor(), ids, max_new_tokens=6, eos_token_id=[3, 7])
    assert out.tolist() == [[5, 7, 3], [1, 2, 3]], "several eos ids; pad defaults to the first"
    out = generate(_Successor(), ids, max_new_tokens=4)
    assert out.tolist() == [[5, 7, 7, 7, 7], [1, 2, 3, 7, 7]], "without eos nothing stops"


def test_seeded_sampling_is_reproducible_and_top_k_1_is_greedy(models):
    _, ours = models
    ids, mask = _left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=10, do_sample=True, temperature=1.5)
    a = generate(ours, ids, generator=torch.Generator().manual_seed(4), **kwargs)
    b = generate(ours, ids, generator=torch.Generator().manual_seed(4), **kwargs)
    c = generate(ours, ids, generator=torch.Generator().manual_seed(5), **kwargs)
    assert torch.equal(a, b), "the same seed must give the same samples"
    assert not torch.equal(a, c), "another seed should give other samples"
    greedy = generate(ours, ids, attention_mask=mask, max_new_tokens=10)
    top1 = generate(ours, ids, generator=torch.Generator().manual_seed(6), top_k=1, **kwargs)
    assert torch.equal(top1, greedy)


def test_top_k_samples_only_among_the_k_most_likely():
    """With a fixed distribution over 10 tokens, 200 samples with top_k=3 fall in the top 3."""
    torch.manual_seed(7)
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=2, n_embd=8))
    ids = torch.ones(200, 1, dtype=torch.long)
    with torch.no_grad():
        logits = model(ids[:1])[0][0, -1]
    top3 = set(logits.topk(3).indices.tolist())
    out = generate(
        model,
        ids,
        max_new_tokens=1,
        do_sample=True,
        top_k=3,
        temperature=5.0,
        generator=torch.Generator().manual_seed(8),
    )
    drawn = set(out[:, -1].tolist())
    assert drawn <= top3 and len(drawn) > 1


def test_generation_slides_past_block_size_for_our_gpt():
    """A prompt of block_size tokens still gets 5 new tokens (window over the last 8)."""
    torch.manual_seed(9)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ids = torch.randint(0, 10, (2, 8))
    out = generate(model, ids, max_new_tokens=5)
    assert out.shape == (2, 13) and torch.equal(out[:, :8], ids)
    window, _ = model(out[:, 4:12])
    assert torch.equal(out[:, 12], window[:, -1].argmax(-1)), "last token from the last 8"


def test_bad_arguments_fail_with_clear_messages():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ids = torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="the prompt is empty"):
        generate(model, torch.ones(1, 0, dtype=torch.long), max_new_tokens=2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(model, ids, max_new_tokens=2, do_sample=True, temperature=-1.0)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        generate(model, ids, max_new_tokens=-1)
    with pytest.raises(ValueError, match="block_size is 8"):
        generate(model, torch.ones(1, 9, dtype=torch.long), max_new_tokens=2)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        generate(model, ids, max_new_tokens=2, top_k=-3)
    with pytest.raises(ValueError, match="pad prompts on the left"):
        generate(model, ids, max_new_tokens=2, attention_mask=torch.tensor([[1, 1, 0]]))
    with pytest.raises(ValueError, match="must have the shape of input_ids"):
        generate(model, ids, max_new_tokens=2, attention_mask=torch.ones(1, 2))
    assert torch.equal(generate(model, ids, max_new_tokens=0), ids)


def _emitted_token(hf, ids, mask) -> int:
    """A token that the model's beams do produce, to serve as end-of-sequence: with the
    real eos (id 2) a random model almost never stops, which would leave eos untested."""
    free = hf.generate(ids, attention_mask=mask, num_beams=4, max_new_tokens=12, do_sample=False)
    return int(free[:, ids.size(1) :].flatten().mode().values)


@pytest.mark.parametrize("num_beams", [2, 3, 5])
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0, -1.0])
def test_beam_search_equals_hf_generate(models, num_beams, length_penalty):
    """HF's beam search and ours, on the HF model and on our GPT loaded from it: the same
    tokens, for a left-padded batch, with an eos that ends some beams early (the output is
    then shorter than max_new_tokens for some penalties, and padded where rows differ)."""
    hf, ours = models
    ids, mask = _left_padded_batch()
    eos = _emitted_token(hf, ids, mask)
    kwargs = dict(max_new_tokens=12, num_beams=num_beams, length_penalty=length_penalty)
    expected = hf.generate(
        ids, attention_mask=mask, do_sample=False, eos_token_id=eos, pad_token_id=99, **kwargs
    )
    for model in (hf, ours):
        got = generate(model, ids, attention_mask=mask, eos_token_id=eos, pad_token_id=99, **kwargs)
        assert torch.equal(got, expected), (got, expected)


class _Constant(torch.nn.Module):
    """A fake HF causal LM whose next token has the same distribution after any token."""

    PROBS = torch.tensor([0.0, 0.0, 0.0, 0.025, 0.3, 0.2, 0.025, 0.4, 0.025, 0.025])

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache):
        logits = self.PROBS.log().expand(*input_ids.shape, -1)  # (B, T, V)
        return SimpleNamespace(logits=logits, past_key_values=None)


def test_beam_search_stops_once_no_beam_can_improve():
    """Two beams, eos = 7 (p 0.4), no length normalisation. Step 1: "7" (0.4) finishes, beams
    "4" (0.3) and "5" (0.2) run on. Step 2: "4 7" (0.12) finishes; the best running beam,
    "4 4" (0.09), can only fall, so search stops with "7", not after 12 tokens."""
    out = generate(_Constant(), torch.tensor([[1]]), max_new_tokens=12, num_beams=2,
                   length_penalty=0.0, eos_token_id=7)  # fmt: skip
    assert out.tolist() == [[1, 7]]
    # length_penalty 1: "7" scores log(0.4) / 1 = -0.92 and "4 7" log(0.12) / 2 = -1.06,
    # while "4 4" could reach at best log(0.09) / 2 = -1.20: the same answer
    out = generate(_Constant(), torch.tensor([[1]]), max_new_tokens=12, num_beams=2,
                   length_penalty=1.0, eos_token_id=7)  # fmt: skip
    assert out.tolist() == [[1, 7]]
    # length_penalty 2 favours long sequences: "4 4 ... 4 7" with all 12 tokens wins
    out = generate(_Constant(), torch.tensor([[1]]), max_new_tokens=12, num_beams=2,
                   length_penalty=2.0, eos_token_id=7)  # fmt: skip
    assert out.tolist() == [[1] + [4] * 11 + [7]]


PENALTIES = [
    dict(repetition_penalty=1.3),
    dict(no_repeat_ngram_size=2),
    dict(repetition_penalty=1.5, no_repeat_ngram_size=3),
]


@pytest.mark.parametrize("penalties", PENALTIES)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_penalties_equal_hf(models, penalties, num_beams):
    """Repetition penalty and n-gram blocking, greedy and in beam search: HF's tokens."""
    hf, ours = models
    ids = torch.randint(3, 100, (2, 8), generator=torch.Generator().manual_seed(3))
    kwargs = dict(max_new_tokens=15, num_beams=num_beams, **penalties)
    expected = hf.generate(ids, do_sample=False, eos_token_id=EOS, pad_token_id=99, **kwargs)
    got = generate(ours, ids, eos_token_id=EOS, pad_token_id=99, **kwargs)
    assert torch.equal(got, expected)
    if "no_repeat_ngram_size" in penalties:
        n = penalties["no_repeat_ngram_size"]
        for row in got.tolist():
            end = row.index(EOS, 8) + 1 if EOS in row[8:] else len(row)  # padding may repeat
            for t in range(8, end):  # each new token must not complete an earlier n-gram
                earlier = {tuple(row[i : i + n]) for i in range(t - n + 1)}
                assert tuple(row[t - n + 1 : t + 1]) not in earlier, f"repeat at {t} in {row}"


def test_repetition_penalty_ignores_padding():
    """Padding is not text: a left-padded row is penalised like the same row unpadded."""
    scores = torch.tensor([[1.0, 2.0, -3.0, 4.0]])
    padded = apply_repetition_penalty(
        scores, torch.tensor([[0, 0, 2, 3]]), torch.tensor([[0, 0, 1, 1]]), penalty=2.0
    )
    assert padded.tolist() == [[1.0, 2.0, -6.0, 2.0]], "token 0 is padding: not penalised"


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(1.0, 0, 0.9), (0.7, 0, 1.0), (1.3, 50, 1.0), (0.8, 20, 0.5), (1.0, 0, 0.01), (1.0, 5, 1.0)],
)
def test_filter_logits_equals_hf_warpers(temperature, top_k, top_p):
    """Our filter_logits against HF's temperature, top-k and top-p warpers, in HF's order,
    on random logits (1e-6: the same arithmetic; -inf at exactly the same places)."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    logits = 3 * torch.randn(4, 200, generator=torch.Generator().manual_seed(5))
    warpers = LogitsProcessorList()
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    expected = warpers(torch.zeros(4, 1, dtype=torch.long), logits.clone())
    got = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    assert torch.equal(got.isinf(), expected.isinf())
    kept = ~got.isinf()
    torch.testing.assert_close(got[kept], expected[kept], atol=1e-6, rtol=0)


def test_top_p_keeps_the_smallest_set_reaching_p():
    """Probabilities 0.5, 0.3, 0.15, 0.05: p=0.8 keeps two tokens, p=0.81 three, p=1 all."""
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    kept = lambda p: (~filter_logits(logits, top_p=p).isinf()).sum().item()  # noqa: E731
    assert [kept(0.5), kept(0.8), kept(0.81), kept(0.96), kept(1.0)] == [1, 2, 3, 4, 4]


def test_seeded_top_p_sampling_is_reproducible_and_stays_in_the_nucleus(models):
    _, ours = models
    ids = torch.ones(300, 1, dtype=torch.long)
    with torch.no_grad():
        logits = ours(ids[:1])[0][0, -1]
    nucleus = set(torch.nonzero(~filter_logits(logits, top_p=0.6).isinf()).flatten().tolist())
    kwargs = dict(max_new_tokens=1, do_sample=True, top_p=0.6)
    a = generate(ours, ids, generator=torch.Generator().manual_seed(1), **kwargs)
    b = generate(ours, ids, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(a, b)
    assert set(a[:, -1].tolist()) == nucleus, "every nucleus token is drawn in 300 tries"


def test_beam_search_of_width_1_is_greedy(models):
    """The beam-search loop itself, run with one beam, makes the greedy choices."""
    from nlpbook.generation import _beam_search, _Stepper

    hf, ours = models
    ids, mask = _left_padded_batch()
    for model in (hf, ours):
        beams = _beam_search(_Stepper(model, use_cache=True), ids, mask, num_beams=1,
                             max_new_tokens=10, length_penalty=1.0, eos=[], pad=None,
                             penalize=lambda s, i, m: s)  # fmt: skip
        assert torch.equal(beams, generate(model, ids, attention_mask=mask, max_new_tokens=10))


def test_wide_beam_search_finds_the_most_likely_continuation():
    """On a 5-token vocabulary, beams as wide as all 25 two-token prefixes search every
    3-token continuation: the result is the brute-force argmax of the log-likelihood,
    which greedy decoding misses here."""
    torch.manual_seed(9)
    model = GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # a peaked model, where greedy choices matter

    def loglik(seq):
        logits, _ = model(torch.tensor([seq[:-1]]))
        logp = logits[0].log_softmax(-1)
        return sum(logp[t - 1, seq[t]].item() for t in range(1, len(seq)))

    prompt = [1, 3]
    import itertools

    best = max(itertools.product(range(5), repeat=3), key=lambda c: loglik(prompt + list(c)))
    ids = torch.tensor([prompt])
    beam = generate(model, ids, max_new_tokens=3, num_beams=25)[0, 2:].tolist()
    greedy = generate(model, ids, max_new_tokens=3)[0, 2:].tolist()
    assert beam == list(best)
    assert greedy != beam, "the test needs a case where greedy is not optimal"
    assert loglik(prompt + greedy) < loglik(prompt + beam)


def test_bad_decoding_arguments_fail_with_clear_messages(models):
    hf, ours = models
    ids = torch.ones(1, 3, dtype=torch.long)
    for model in (hf, ours):
        for bad, match in [
            (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
            (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
            (dict(num_beams=0), "num_beams must be >= 1"),
            (dict(num_beams=2, do_sample=True), "beam search .* or sampling"),
            (dict(repetition_penalty=0.0), "repetition_penalty must be > 0"),
            (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size must be >= 0"),
            (dict(temperature=-0.5, do_sample=True), "temperature must be > 0"),
        ]:
            with pytest.raises(ValueError, match=match):
                generate(model, ids, max_new_tokens=2, **bad)
    with pytest.raises(ValueError, match="context .* is 64"):
        generate(hf, torch.ones(1, 65, dtype=torch.long), max_new_tokens=1)
    with pytest.raises(ValueError, match="exceed the model's context of 64"):
        generate(hf, torch.ones(1, 60, dtype=torch.long), max_new_tokens=10)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        filter_logits(torch.zeros(3), top_k=-1)
