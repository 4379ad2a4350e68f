"""nlpbook.multilingual (token statistics, XLM inputs) and BERT's optional position_ids."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from nlpbook.bert import BERT, IGNORE_INDEX, BERTConfig, BERTForMaskedLM
from nlpbook.multilingual import (
    collate_xlm,
    is_whole_utf8,
    script_of,
    token_stats,
    xlm_example,
    xlm_masked_loss,
)


def test_script_of_names_scripts_and_skips_non_letters():
    assert [script_of(c) for c in "aЖα中ไक"] == [
        "LATIN",
        "CYRILLIC",
        "GREEK",
        "CJK",
        "THAI",
        "DEVANAGARI",
    ]
    assert [script_of(c) for c in "7 ,."] == [None] * 4
    with pytest.raises(ValueError, match="one character"):
        script_of("ab")


def test_token_stats_counts_by_hand():
    # "héllo wörld" is 11 characters (10 not spaces) and 13 UTF-8 bytes; "ab" adds 2 of each
    texts = ["héllo wörld", "ab"]
    stats = token_stats(texts, lambda s: list(s.replace(" ", "")), unknown="b")
    assert (stats.tokens, stats.words, stats.characters, stats.bytes) == (12, 3, 12, 15)
    assert stats.unknown == 1 and stats.partial == 0
    assert stats.tokens_per_word == 4.0
    assert stats.tokens_per_char == 1.0
    assert stats.bytes_per_token == 15 / 12
    assert stats.unknown_rate == 1 / 12
    assert stats.per(6) == 2.0
    with pytest.raises(ValueError, match="positive"):
        stats.per(0)


def test_token_stats_counts_partial_byte_tokens():
    # a byte-level tokenizer with no merges: "é" is two tokens, each a piece of a character
    stats = token_stats(
        ["é a"],
        lambda s: [bytes([b]) for b in s.encode("utf-8")],
        is_partial=lambda piece: not is_whole_utf8(piece),
    )
    assert (stats.tokens, stats.partial) == (4, 2)
    assert stats.partial_rate == 0.5


def test_token_stats_rejects_bad_input():
    with pytest.raises(TypeError, match="sequence of strings"):
        token_stats("abc", list)
    with pytest.raises(ValueError, match="no texts"):
        token_stats([], list)
    with pytest.raises(ValueError, match="no tokens or no words"):
        token_stats(["   "], str.split)


def test_is_whole_utf8():
    assert is_whole_utf8(b"abc") and is_whole_utf8("中".encode())
    assert not is_whole_utf8("中".encode()[:2])


def test_xlm_example_restarts_positions_and_tags_languages():
    ids, langs, pos = xlm_example([([7, 8], 0), ([9, 10, 11], 2)], cls_id=1, sep_id=2)
    assert ids == [1, 7, 8, 2, 9, 10, 11, 2]
    assert langs == [0, 0, 0, 0, 2, 2, 2, 2]
    assert pos == [0, 1, 2, 3, 0, 1, 2, 3]
    one = xlm_example([([5], 1)], cls_id=1, sep_id=2)
    assert one == ([1, 5, 2], [1, 1, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="at least one"):
        xlm_example([], cls_id=1, sep_id=2)
    with pytest.raises(ValueError, match="sentence 1 has no tokens"):
        xlm_example([([5], 0), ([], 1)], cls_id=1, sep_id=2)


def test_collate_xlm_pads_every_field():
    a = xlm_example([([7, 8], 0), ([9], 1)], cls_id=1, sep_id=2)
    b = xlm_example([([5], 1)], cls_id=1, sep_id=2)
    batch = collate_xlm([a, b], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 7, 8, 2, 9, 2], [1, 5, 2, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 0, 0]]
    with pytest.raises(ValueError, match="same length"):
        collate_xlm([([1, 2], [0], [0, 1])], pad_id=0)
    with pytest.raises(ValueError, match="no examples"):
        collate_xlm([], pad_id=0)


def _tiny(**overrides) -> BERTConfig:
    base = dict(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    return BERTConfig(**(base | overrides))


def test_bert_position_ids_default_is_0_to_T_minus_1():
    torch.manual_seed(0)
    model = BERT(_tiny()).eval()
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 9, 2, 0]])
    default = model(ids)
    explicit = model(ids, position_ids=torch.arange(5).expand(2, 5))
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    restarted = model(ids, position_ids=torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]))
    # row 0 now differs (its last two tokens have new positions); row 1 is unchanged
    assert not torch.allclose(restarted[0, 3:], default[0, 3:])
    torch.testing.assert_close(restarted[1], default[1], rtol=0, atol=0)


def test_bert_position_ids_are_checked():
    model = BERT(_tiny())
    ids = torch.tensor([[1, 5, 2]])
    with pytest.raises(ValueError, match="position_ids has shape"):
        model(ids, position_ids=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="position_ids must lie in"):
        model(ids, position_ids=torch.tensor([[0, 1, 16]]))


def test_xlm_masked_loss_equals_full_cross_entropy_at_labelled_positions():
    torch.manual_seed(0)
    model = BERTForMaskedLM(_tiny(type_vocab_size=3)).eval()
    batch = collate_xlm(
        [
            xlm_example([([5, 6], 0), ([7, 8, 9], 2)], cls_id=1, sep_id=2),
            xlm_example([([10], 1)], cls_id=1, sep_id=2),
        ],
        pad_id=0,
    )
    labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
    labels[0, 1], labels[0, 5], labels[1, 1] = 5, 8, 10
    masked = batch | {"input_ids": batch["input_ids"].masked_fill(labels != IGNORE_INDEX, 3)}
    hidden = model.bert(
        masked["input_ids"],
        masked["attention_mask"],
        masked["token_type_ids"],
        position_ids=masked["position_ids"],
    )
    expected = F.cross_entropy(model.head(hidden).flatten(0, 1), labels.flatten())
    got = xlm_masked_loss(model, masked, labels)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="labels has shape"):
        xlm_masked_loss(model, masked, labels[:, :2])
