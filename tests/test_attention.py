"""Attention from scratch against PyTorch's, masks, grouped-query attention, positions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nlpbook.attention import (
    MultiHeadAttention,
    RotaryEmbedding,
    SinusoidalPositions,
    apply_rotary,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)

TOL = dict(atol=1e-6, rtol=1e-5)  # float32 round-off of the same maths in another order


def _qkv(B=2, H=3, Tq=5, Tk=5, hs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, T, hs, generator=g) for T in (Tq, Tk, Tk))


def test_masks_by_hand():
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert causal_mask(2, past=2).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    m = padding_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert m.shape == (2, 1, 1, 3) and m.dtype == torch.bool
    assert m[:, 0, 0].int().tolist() == [[1, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"expected attention_mask \(B, T\)"):
        padding_mask(torch.ones(3))
    with pytest.raises(ValueError, match="only 0"):
        padding_mask(torch.tensor([[1, 2]]))


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "causal+padding"])
def test_ours_equals_pytorch_sdpa(kind):
    """Outputs agree with F.scaled_dot_product_attention within 1e-6."""
    q, k, v = _qkv()
    lengths = torch.tensor([5, 3])
    pad = padding_mask((torch.arange(5) < lengths[:, None]).long())  # (B, 1, 1, T)
    mask = {"none": None, "causal": None, "padding": pad, "causal+padding": pad & causal_mask(5)}
    is_causal = kind == "causal"
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask[kind], is_causal=is_causal)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[kind], is_causal=is_causal)
    torch.testing.assert_close(ours, theirs, **TOL)
    assert weights.shape == (2, 3, 5, 5)


def test_weights_sum_to_one_and_are_exactly_zero_on_hidden_keys():
    q, k, v = _qkv(Tq=4, Tk=6)
    keep = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    _, w = scaled_dot_product_attention(q, k, v, mask=padding_mask(keep))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 4), atol=1e-6, rtol=0)
    hidden = ~padding_mask(keep).expand_as(w)
    assert (w[hidden] == 0).all(), "weights on padding keys must be exactly 0"
    assert (w[~hidden] > 0).all()
    _, w = scaled_dot_product_attention(q, q, q, is_causal=True)
    assert (w.triu(diagonal=1) == 0).all(), "a query must give exactly 0 weight to the future"
    assert torch.equal(w[..., 0, 0], torch.ones(2, 3)), "the first query sees only itself"


def test_fully_masked_rows_give_zeros_like_pytorch():
    q, k, v = _qkv(Tq=2, Tk=3)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    ours, w = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not ours.isnan().any() and (w[..., 1, :] == 0).all()
    torch.testing.assert_close(ours, theirs, **TOL)


def test_sdpa_rejects_bad_input():
    q, k, v = _qkv(Tq=2, Tk=3)
    with pytest.raises(ValueError, match="is_causal needs as many queries as keys"):
        scaled_dot_product_attention(q, k, v, is_causal=True)
    with pytest.raises(TypeError, match="mask must be boolean"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"expected q, k, v of shape \(B, H, T, hs\)"):
        scaled_dot_product_attention(q[0], k, v)


def _copy_to_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    C, H = ours.d_model, ours.n_heads
    theirs = nn.MultiheadAttention(C, H, batch_first=True)
    with torch.no_grad():
        w = [ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]
        theirs.in_proj_weight.copy_(torch.cat(w))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.o_proj.weight)
        theirs.out_proj.bias.copy_(ours.o_proj.bias)
    return theirs.eval()


@pytest.mark.parametrize("keep_weights", [False, True])
def test_multihead_attention_equals_torch_multiheadattention(keep_weights):
    """Same weights, same outputs (1e-5) with a causal and a padding mask; with
    keep_weights the per-head weights equal PyTorch's too."""
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4).eval()
    ours.keep_weights = keep_weights
    theirs = _copy_to_torch_mha(ours)
    x = torch.randn(2, 6, 16)
    real = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    out = ours(x, mask=padding_mask(real))
    ref, ref_w = theirs(x, x, x, key_padding_mask=real == 0, average_attn_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if keep_weights:
        torch.testing.assert_close(ours.last_weights, ref_w, atol=1e-6, rtol=1e-5)
    else:
        assert ours.last_weights is None, "weights are kept only when asked"
    out = ours(x, is_causal=True)
    ref, _ = theirs(x, x, x, attn_mask=~causal_mask(6), is_causal=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("keep_weights", [False, True])
def test_grouped_query_attention_equals_mha_with_shared_kv_heads(keep_weights):
    """4 query heads sharing 2 k/v heads == plain 4-head attention whose k/v weights repeat
    each k/v head for its 2 query heads (1e-5), on the fused and on the readable path."""
    torch.manual_seed(1)
    gqa = MultiHeadAttention(16, 4, n_kv_heads=2, bias=False)
    mha = MultiHeadAttention(16, 4, n_kv_heads=4, bias=False)
    assert gqa.k_proj.weight.shape == (8, 16), "2 kv heads of size 4"
    with torch.no_grad():
        for name in ("q_proj", "o_proj"):
            getattr(mha, name).weight.copy_(getattr(gqa, name).weight)
        for name in ("k_proj", "v_proj"):
            w = getattr(gqa, name).weight.view(2, 4, 16)  # (Hkv, hs, C)
            getattr(mha, name).weight.copy_(w.repeat_interleave(2, dim=0).reshape(16, 16))
    gqa.keep_weights = mha.keep_weights = keep_weights
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(gqa(x, is_causal=True), mha(x, is_causal=True), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        MultiHeadAttention(16, 4, n_kv_heads=3)


def test_rope_scores_depend_only_on_the_relative_offset():
    """q rotated to position m, k to position n: q.k is the same for (m, n) = (3, 1),
    (10, 8) and (40, 38), within 1e-4; it differs for another offset."""
    torch.manual_seed(2)
    rope = RotaryEmbedding(8, max_len=64)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m: int, n: int) -> float:
        qm = apply_rotary(q, *rope(torch.tensor([m])))
        kn = apply_rotary(k, *rope(torch.tensor([n])))
        return float((qm * kn).sum())

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-4)
    assert score(3, 1) == pytest.approx(score(40, 38), abs=1e-4)
    assert abs(score(3, 1) - score(3, 2)) > 1e-3
    rotated = apply_rotary(q, *rope(torch.tensor([5])))
    torch.testing.assert_close(rotated.norm(), q.norm(), **TOL)  # a rotation keeps lengths


def test_rope_equals_hugging_face_llama():
    """cos/sin and the rotated q equal transformers' Llama functions exactly (1e-6)."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaRotaryEmbedding,
        apply_rotary_pos_emb,
    )

    config = LlamaConfig(hidden_size=32, num_attention_heads=2, rope_theta=500.0)
    config.rope_parameters = {"rope_type": "default", "rope_theta": 500.0}
    positions = torch.tensor([[0, 1, 2, 7], [0, 0, 3, 4]])
    x = torch.randn(2, 2, 4, 16)
    cos_hf, sin_hf = LlamaRotaryEmbedding(config)(x, positions)
    cos, sin = RotaryEmbedding(16, base=500.0, max_len=16)(positions)
    torch.testing.assert_close(cos, cos_hf, **TOL)
    torch.testing.assert_close(sin, sin_hf, **TOL)
    q_hf, _ = apply_rotary_pos_emb(x, x, cos_hf, sin_hf)
    torch.testing.assert_close(apply_rotary(x, cos, sin), q_hf, **TOL)
    with pytest.raises(ValueError, match="positions must lie in 0..15"):
        RotaryEmbedding(16, max_len=16)(torch.tensor([16]))


def test_sinusoidal_positions_by_hand():
    """PE[pos, 2i] = sin(pos / 10000^(2i/C)), PE[pos, 2i+1] = cos(...), with C = 6."""
    pe = SinusoidalPositions(50, 6)
    table = pe(50)
    assert table.shape == (50, 6)
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert table[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-7)
    assert table[7, 3].item() == pytest.approx(math.cos(7 / 10000 ** (2 / 6)), abs=1e-7)
    assert table[42, 4].item() == pytest.approx(math.sin(42 / 10000 ** (4 / 6)), abs=1e-7)
    torch.testing.assert_close(pe(torch.tensor([[3, 1]])), table[[3, 1]][None])
    with pytest.raises(ValueError, match="max_len is 50"):
        pe(51)
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositions(10, 5)
