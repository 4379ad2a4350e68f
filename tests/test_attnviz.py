"""Attention extraction against Hugging Face, head-role measures and rollout by hand, and the
interactive view driven in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nlpbook.attnviz import (
    attention_maps,
    attention_view_html,
    hf_attention_maps,
    key_share,
    offset_share,
    rollout,
)
from nlpbook.bert import BERT
from nlpbook.gpt import GPT
from nlpbook.pretrained import load_encoder

MAP_TOL = 1e-5  # max abs difference of attention weights, ours vs HF, float32
CHROMIUM = "/usr/bin/chromium"
SENTENCES = ["The cat sat on the mat.", "Attention weights are not explanations, are they?"]


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm-l6", device="cpu")


def test_our_bert_gives_the_attention_maps_of_hugging_face_on_minilm(minilm):
    tokenizer, hf = minilm
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    ours = attention_maps(BERT.from_hf(hf), batch.input_ids, batch.attention_mask)
    theirs = hf_attention_maps(hf, **batch)
    assert (
        ours.shape == theirs.shape == (6, 2, 12, batch.input_ids.size(1), batch.input_ids.size(1))
    )
    assert (ours - theirs).abs().max().item() < MAP_TOL
    real = batch.attention_mask.bool()  # rows of real queries sum to one over the keys
    sums = ours.sum(-1)  # (L, B, H, T)
    for b in range(2):
        rows = sums[:, b][..., real[b]]  # (L, H, real queries)
        assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)
    assert (~real[0]).any()  # the short sentence is padded: padding keys get no weight
    assert ours[:, 0][..., ~real[0]].abs().max().item() == 0.0
    assert hf.config._attn_implementation == "sdpa"  # switched back after the call


def _tiny_gpt() -> GPT:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    hf = LlamaForCausalLM(config).eval()
    return hf, GPT.from_hf(hf)


def test_causal_maps_are_zero_above_the_diagonal_and_match_hugging_face():
    hf, gpt = _tiny_gpt()
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    ours = attention_maps(gpt, ids)  # (L, B, H, T, T)
    assert ours.shape == (2, 2, 4, 9, 9)
    above = ~torch.ones(9, 9, dtype=torch.bool).tril()
    assert ours[..., above].abs().max().item() == 0.0
    assert torch.allclose(ours.sum(-1), torch.ones(2, 2, 4, 9), atol=1e-6)
    assert (ours - hf_attention_maps(hf, input_ids=ids)).abs().max().item() < MAP_TOL
    # the layers are left as they were
    assert all(
        not block.attn.keep_weights and block.attn.last_weights is None for block in gpt.blocks
    )


def test_attention_maps_needs_our_attention_layers():
    with pytest.raises(ValueError, match="hf_attention_maps"):
        attention_maps(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def test_head_role_shares_by_hand():
    w = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.1, 0.2, 0.7]])
    assert offset_share(w, -1).item() == pytest.approx((0.6 + 0.2) / 2)
    assert offset_share(w, 0).item() == pytest.approx((1.0 + 0.4 + 0.7) / 3)
    assert offset_share(w, 1).item() == pytest.approx((0.0 + 0.0) / 2)
    assert key_share(w, [True, False, False]).item() == pytest.approx((1.0 + 0.6 + 0.1) / 3)
    assert key_share(w[1:], [True, False, False]).item() == pytest.approx((0.6 + 0.1) / 2)
    stacked = torch.stack([w, w.flip(-1)])  # shares work over leading dimensions
    assert offset_share(stacked, -1).shape == (2,)
    with pytest.raises(ValueError, match="boolean vector of length 3"):
        key_share(w, [1, 0, 0])
    with pytest.raises(ValueError, match="offset"):
        offset_share(w, 3)


def test_rollout_by_hand():
    w1 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # both tokens read token 0
    w2 = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # both tokens read token 1
    weights = torch.stack([w1, w2])[:, None]  # (L=2, H=1, 2, 2)
    out = rollout(weights)
    a1 = 0.5 * torch.eye(2) + 0.5 * w1  # [[1, 0], [0.5, 0.5]]
    a2 = 0.5 * torch.eye(2) + 0.5 * w2  # [[0.5, 0.5], [0, 1]]
    assert torch.allclose(out[0], a1)
    assert torch.allclose(out[1], a2 @ a1)  # [[0.75, 0.25], [0.5, 0.5]]
    assert torch.allclose(out[1], torch.tensor([[0.75, 0.25], [0.5, 0.5]]))
    assert torch.allclose(rollout(weights, residual=0.0)[1], w2 @ w1)
    assert torch.allclose(out.sum(-1), torch.ones(2, 2))


def test_view_html_is_self_contained_and_escapes_tokens():
    weights = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)), -1)
    html = attention_view_html(weights, ["[CLS]", "</script>", "<b>x</b>", "[SEP]"])
    assert "</script>" not in html.split("<script>", 1)[1][: -len("</script>\n")]
    assert "src=" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    with pytest.raises(ValueError, match="3 tokens"):
        attention_view_html(weights, ["a", "b", "c"])


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_view_changes_with_the_head_and_on_hover_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    torch.manual_seed(0)
    weights = torch.softmax(4 * torch.randn(2, 3, 5, 5), -1)  # (L, H, T, T)
    tokens = ["[CLS]", "the", "</script>", "mat", "[SEP]"]
    page_file = tmp_path / "view.html"
    page_file.write_text(
        f"<!doctype html><html><body>{attention_view_html(weights, tokens)}</body></html>"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())

            def lines() -> list[str]:
                return page.eval_on_selector_all(
                    ".attnviz-line", "ls => ls.map(l => l.getAttribute('data-weight'))"
                )

            texts = "ts => ts.map(t => t.textContent)"  # SVG text has no innerText
            assert page.eval_on_selector_all(".attnviz-query", texts) == tokens
            first = lines()
            shown = [round(x, 2) for x in weights[0, 0].flatten().tolist() if round(x, 2) >= 0.01]
            assert [float(x) for x in first] == pytest.approx(shown, abs=0.006)
            page.select_option(".attnviz-head", "3")  # head 3 of layer 1
            assert lines() != first
            page.select_option(".attnviz-layer", "2")
            page.select_option(".attnviz-head", "mean")
            # the page averages the rounded weights and draws those that would not show as 0.00
            mean = weights[1].double().round(decimals=2).mean(0)
            assert len(lines()) == int((mean >= 0.005).sum())
            page.hover(".attnviz-query[data-index='3']")
            hovered = lines()
            assert "mat" in page.locator(".attnviz-note").inner_text()
            assert len(hovered) == int((mean[3] >= 0.005).sum())
            assert errors == []
        finally:
            browser.close()
