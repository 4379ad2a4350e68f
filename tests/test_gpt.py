"""Our GPT against Hugging Face's GPT-2 and Llama, causality, the KV cache, training."""

from __future__ import annotations

import pytest
import torch

from nlpbook.gpt import GPT, GPTConfig

HF_TOL = 1e-4  # max abs logit difference to HF in float32 (same maths, other kernels)


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=100, n_positions=32)
    return GPT2LMHeadModel(config).eval()


def _tiny_llama(tie: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        tie_word_embeddings=tie,
    )
    return LlamaForCausalLM(config).eval()


def _hf_positions(mask: torch.Tensor) -> torch.Tensor:
    """Hugging Face generate's position ids: real tokens counted from 0, padding at 0."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


@pytest.fixture(scope="module", params=["gpt2", "llama", "llama-tied"])
def pair(request):
    """A tiny random HF model and our GPT loaded from it."""
    hf = _tiny_gpt2() if request.param == "gpt2" else _tiny_llama(tie=request.param.endswith("d"))
    return hf, GPT.from_hf(hf)


def test_from_hf_reads_the_sizes_and_ties_as_the_checkpoint_says(pair):
    hf, ours = pair
    c = ours.config
    assert (c.n_layer, c.n_embd, c.vocab_size) == (2, 64, 100)
    if c.positions == "rope":
        assert (c.n_head, c.n_kv_head, c.d_ff, c.rope_theta) == (4, 2, 96, 500.0)
        assert (c.norm, c.mlp, c.bias) == ("rms", "swiglu", False)
    else:
        assert (c.mlp, c.norm, c.bias, c.block_size) == ("gelu_tanh", "layer", True, 32)
    tied = ours.lm_head.weight is ours.tok_emb.weight
    assert tied == hf.config.tie_word_embeddings
    assert not ours.training, "from_hf returns a model in eval mode"


def test_logits_equal_hugging_face(pair):
    """Same ids, same logits within 1e-4 (float32)."""
    hf, ours = pair
    idx = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(idx)[0] - hf(idx).logits).abs().max().item()
    assert diff <= HF_TOL, f"max abs logit difference {diff:.2e} > {HF_TOL}"


def test_logits_equal_hugging_face_with_left_padding(pair):
    """Left-padded rows: logits of the real tokens equal HF's (1e-4), given HF the
    positions its generate uses; and equal those of each row run alone without padding."""
    hf, ours = pair
    idx = torch.randint(0, 100, (3, 10), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(idx)
    mask[1, :3] = 0
    mask[2, :7] = 0
    with torch.no_grad():
        logits, _ = ours(idx, attention_mask=mask)
        ref = hf(idx, attention_mask=mask, position_ids=_hf_positions(mask)).logits
        assert logits.isfinite().all(), "padding positions must not produce NaN"
        real = mask.bool()
        diff = (logits - ref)[real].abs().max().item()
        assert diff <= HF_TOL, f"max abs difference on real tokens {diff:.2e} > {HF_TOL}"
        for row in range(3):
            alone, _ = ours(idx[row : row + 1, mask[row].bool()])
            torch.testing.assert_close(logits[row, real[row]], alone[0], atol=1e-5, rtol=1e-5)


def test_changing_later_tokens_does_not_change_earlier_logits(pair):
    """Causality: replace tokens t+1.. and the logits at <= t stay the same (1e-6)."""
    _, ours = pair
    idx = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(3))
    other = idx.clone()
    other[:, 6:] = (other[:, 6:] + 7) % 100
    with torch.no_grad():
        a, b = ours(idx)[0], ours(other)[0]
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-6, rtol=1e-6)
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-3, "later logits must see the change"


def test_cached_forward_token_by_token_equals_full_forward(pair):
    """A 4-token prompt, then one token at a time through the KV cache: logits equal the
    full forward's within 1e-5, also with a left-padded row."""
    _, ours = pair
    idx = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(idx)
    mask[1, :2] = 0
    with torch.no_grad():
        for m in (None, mask):
            full, _ = ours(idx, attention_mask=m)
            cache = ours.new_cache(2)
            parts = [
                ours(idx[:, :4], attention_mask=None if m is None else m[:, :4], cache=cache)[0]
            ]
            for t in range(4, 9):
                sub = None if m is None else m[:, : t + 1]
                parts.append(ours(idx[:, t : t + 1], attention_mask=sub, cache=cache)[0])
            assert cache.length == 9
            got = torch.cat(parts, dim=1)
            keep = torch.ones_like(idx, dtype=torch.bool) if m is None else m.bool()
            torch.testing.assert_close(got[keep], full[keep], atol=1e-5, rtol=1e-5)


def test_keeping_attention_weights_changes_nothing_but_keeps_them(pair):
    """keep_weights switches every layer to the readable attention: logits equal the fused
    path's (1e-5), and each layer keeps (B, H, T, T) weights that hide padding and future."""
    _, ours = pair
    idx = torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(8))
    mask = torch.tensor([[1] * 6, [0, 0] + [1] * 4])
    with torch.no_grad():
        fused, _ = ours(idx, attention_mask=mask)
        try:
            for block in ours.blocks:
                block.attn.keep_weights = True
            readable, _ = ours(idx, attention_mask=mask)
        finally:
            for block in ours.blocks:
                block.attn.keep_weights = False
    torch.testing.assert_close(readable, fused, atol=1e-5, rtol=1e-5)
    w = ours.blocks[1].attn.last_weights
    assert w.shape == (2, 4, 6, 6)
    assert (w.triu(diagonal=1) == 0).all() and (w[1, :, 2:, :2] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 6), atol=1e-5, rtol=0)


def test_batched_equals_one_at_a_time(pair):
    _, ours = pair
    idx = torch.randint(0, 100, (4, 7), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        batched, _ = ours(idx)
        for row in range(4):
            alone, _ = ours(idx[row : row + 1])
            torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)


def test_loss_is_cross_entropy_over_all_positions_and_ignores_minus_100():
    torch.manual_seed(6)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    idx = torch.randint(0, 11, (2, 8))
    targets = torch.randint(0, 11, (2, 8))
    logits, loss = model(idx, targets)
    expected = -logits.log_softmax(-1).gather(-1, targets[..., None]).mean()
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)
    targets[:, :5] = -100
    _, loss = model(idx, targets)
    # only the last 3 positions of each row count
    expected = -logits[:, 5:].log_softmax(-1).gather(-1, targets[:, 5:, None]).mean()
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("preset", ["gpt2", "llama"])
def test_a_tiny_gpt_learns_a_repeating_text(preset):
    """On 'abcdefg' repeated, 120 AdamW steps cut the loss from ~ln(8) to a tenth of it."""
    torch.manual_seed(7)
    sizes = dict(vocab_size=8, block_size=16, n_layer=2, n_head=2, n_embd=32, d_ff=64)
    config = GPTConfig.gpt2(**sizes) if preset == "gpt2" else GPTConfig.llama(**sizes, n_kv_head=1)
    model = GPT(config)
    data = torch.arange(7).repeat(40)
    optimizer = model.configure_optimizer(lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(120):
        starts = torch.randint(0, len(data) - 17, (8,))
        x = torch.stack([data[s : s + 16] for s in starts])  # (B, T)
        y = torch.stack([data[s + 1 : s + 17] for s in starts])
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 1.5, f"the first loss {losses[0]:.2f} should be near ln(8) = 2.08"
    assert losses[-1] < 0.1 * losses[0], f"loss fell from {losses[0]:.3f} only to {losses[-1]:.3f}"


def test_presets_and_num_params():
    assert GPTConfig.gpt2().n_embd == 768 and GPTConfig.gpt2(n_layer=2).n_layer == 2
    llama = GPTConfig.llama()
    assert (llama.n_head, llama.n_kv_head, llama.positions) == (9, 3, "rope")
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=2, n_embd=8))
    assert model.num_params() == model.num_params(non_embedding=False) - 4 * 8


def test_bad_input_fails_with_a_clear_message():
    model = GPT(GPTConfig(vocab_size=10, block_size=6, n_layer=1, n_head=2, n_embd=8))
    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="block_size is 6"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must lie in 0..9, got 0..10"):
        model(torch.tensor([[0, 10]]))
    with pytest.raises(ValueError, match=r"expected attention_mask of shape \(2, 4\)"):
        model(ids, attention_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"expected idx \(B, T\) of int64"):
        model(torch.zeros(4))
    with pytest.raises(ValueError, match="targets"):
        model(ids, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected positions \(4,\) or \(2, 4\)"):
        model(ids, positions=torch.arange(3))
    with pytest.raises(ValueError, match=r"positions must lie in 0..5"):
        model(ids, positions=torch.arange(3, 7))
    cache = model.new_cache(2)
    model(ids, cache=cache)
    with pytest.raises(ValueError, match=r"7 tokens \(4 cached \+ 3 new\)"):
        model(ids[:, :3], cache=cache)
    with pytest.raises(ValueError, match="positions must be 'learned' or 'rope'"):
        GPT(GPTConfig(vocab_size=10, block_size=6, positions="alibi"))


def test_from_hf_rejects_other_architectures():
    from transformers import BertConfig, BertModel, OPTConfig, OPTForCausalLM

    bert = BertModel(
        BertConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            vocab_size=50,
        )
    )
    with pytest.raises(
        ValueError, match="supports GPT2LMHeadModel and LlamaForCausalLM, got BertModel"
    ):
        GPT.from_hf(bert)
    opt = OPTForCausalLM(
        OPTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            ffn_dim=32,
            vocab_size=50,
            word_embed_proj_dim=16,
        )
    )
    with pytest.raises(ValueError, match="got OPTForCausalLM"):
        GPT.from_hf(opt)


@pytest.fixture(scope="module")
def smollm2():
    """The real SmolLM2-135M-Instruct (HF) and our GPT loaded from it, once per module.

    The first load converts the book's GGUF asset into the user cache (20-50 s); the hub
    stays offline."""
    import huggingface_hub.constants

    from nlpbook.pretrained import load_causal_lm

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        tokenizer, hf = load_causal_lm("smollm2-135m-instruct")
    return tokenizer, hf, GPT.from_hf(hf)


def test_smollm2_real_weights_give_hf_logits(smollm2):
    """30 layers of real weights: logits equal HF's within 1e-3 on a real sentence."""
    tokenizer, hf, ours = smollm2
    assert ours.config.n_layer == 30 and ours.config.n_kv_head == 3 and ours.config.tie_weights
    ids = tokenizer(
        "The capital of France is Paris, and the capital of Italy is", return_tensors="pt"
    )
    with torch.no_grad():
        ref = hf(ids.input_ids).logits
        logits, _ = ours(ids.input_ids)
    diff = (logits - ref).abs().max().item()
    assert diff <= 1e-3, f"max abs logit difference {diff:.2e} > 1e-3 (logits reach ~30)"
    assert tokenizer.decode(logits[0, -1].argmax()) == " Rome"


def test_smollm2_greedy_generation_equals_hf_generate(smollm2):
    """20 greedy tokens for a left-padded batch of two prompts: the same tokens as HF."""
    from nlpbook.generation import generate

    tokenizer, hf, ours = smollm2
    tokenizer.padding_side = "left"
    prompts = ["Once upon a time, in a small village,", "The three primary colours are"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    assert (batch.attention_mask == 0).any(), "the prompts should need padding"
    eos, pad = hf.generation_config.eos_token_id, tokenizer.pad_token_id
    expected = hf.generate(
        **batch, max_new_tokens=20, do_sample=False, eos_token_id=eos, pad_token_id=pad
    )
    got = generate(
        ours,
        batch.input_ids,
        attention_mask=batch.attention_mask,
        max_new_tokens=20,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    assert torch.equal(got, expected), tokenizer.batch_decode(got)


@pytest.mark.parametrize("num_beams, length_penalty", [(3, 1.0), (4, 0.0)])
def test_smollm2_beam_search_equals_hf_generate(smollm2, num_beams, length_penalty):
    """Beam search on the real weights, a left-padded batch, with the chat's end token:
    our GPT gives HF's tokens for several widths and length penalties."""
    from nlpbook.generation import generate

    tokenizer, hf, ours = smollm2
    tokenizer.padding_side = "left"
    prompts = ["The capital of France is", "Write a haiku about the sea:\n"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    eos, pad = hf.generation_config.eos_token_id, tokenizer.pad_token_id
    kwargs = dict(max_new_tokens=10, num_beams=num_beams, length_penalty=length_penalty)
    expected = hf.generate(**batch, do_sample=False, eos_token_id=eos, pad_token_id=pad, **kwargs)
    got = generate(
        ours,
        batch.input_ids,
        attention_mask=batch.attention_mask,
        eos_token_id=eos,
        pad_token_id=pad,
        **kwargs,
    )
    assert torch.equal(got, expected), tokenizer.batch_decode(got)
