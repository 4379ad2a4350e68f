"""generate() for our GPT and for Hugging Face models, against HF's own generate."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nlpbook.generation import generate
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
