"""The shared block: norms, variants and the KV cache."""

from __future__ import annotations

import pytest
import torch

from nlpbook.attention import RotaryEmbedding
from nlpbook.transformer import Block, KVCache, RMSNorm


def test_rmsnorm_equals_hugging_face_llama_rmsnorm():
    """Same weight and eps, outputs equal within 1e-6; the output has unit RMS."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(0)
    ours, theirs = RMSNorm(8, eps=1e-5), LlamaRMSNorm(8, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = 3 * torch.randn(4, 5, 8)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-5)
    unit = RMSNorm(8)(x)
    torch.testing.assert_close(unit.pow(2).mean(-1), torch.ones(4, 5), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "options",
    [
        dict(norm="layer", mlp="gelu", prenorm=False),  # BERT
        dict(norm="layer", mlp="gelu_tanh", prenorm=True),  # GPT-2
        dict(norm="rms", mlp="swiglu", bias=False, n_kv_heads=2),  # Llama
    ],
)
def test_block_variants_have_the_expected_parts_and_shapes(options):
    torch.manual_seed(1)
    block = Block(d_model=16, n_heads=4, d_ff=32, **options)
    names = {n for n, _ in block.named_parameters()}
    if options["mlp"] == "swiglu":
        assert {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"} <= names
        assert not any(n.endswith("bias") for n in names), "bias=False removes every bias"
    else:
        assert {"mlp.fc.weight", "mlp.proj.weight", "norm1.bias", "attn.q_proj.bias"} <= names
    x = torch.randn(2, 5, 16)
    assert block(x, is_causal=True).shape == (2, 5, 16)


def test_post_ln_block_output_is_normalised():
    """A post-LN block ends with LayerNorm: each output vector has mean 0 and variance 1."""
    torch.manual_seed(2)
    y = Block(d_model=16, n_heads=2, d_ff=32, prenorm=False)(5 * torch.randn(2, 3, 16))
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 3), atol=1e-3, rtol=0)


def test_block_rejects_unknown_options():
    with pytest.raises(ValueError, match="mlp must be"):
        Block(d_model=8, n_heads=2, d_ff=16, mlp="relu")
    with pytest.raises(ValueError, match="norm must be"):
        Block(d_model=8, n_heads=2, d_ff=16, norm="batch")


def test_kv_cache_token_by_token_equals_full_causal_pass():
    """Llama-style blocks with RoPE: feeding 3 prompt tokens and then one token at a time
    through a KVCache gives the full causal pass's outputs within 1e-5."""
    torch.manual_seed(3)
    blocks = [
        Block(d_model=16, n_heads=4, n_kv_heads=2, d_ff=32, norm="rms", mlp="swiglu", bias=False)
        for _ in range(2)
    ]
    rope = RotaryEmbedding(4, max_len=16)
    x = torch.randn(2, 7, 16)

    def run(x, positions, cache=None):
        for i, block in enumerate(blocks):
            layer = None if cache is None else cache.layers[i]
            x = block(x, is_causal=True, rope=rope(positions), cache=layer)
        return x

    full = run(x, torch.arange(7))
    cache = KVCache(2, batch_size=2)
    parts = [run(x[:, :3], torch.arange(3), cache)]
    for t in range(3, 7):
        parts.append(run(x[:, t : t + 1], torch.tensor([t]), cache))
    assert cache.length == 7 and cache.layers[0].k.shape == (2, 2, 7, 4)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    cache.reorder(torch.tensor([1]))
    assert cache.layers[1].v.shape == (1, 2, 7, 4) and cache.batch_size == 1
