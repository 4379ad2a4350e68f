"""The dataset readers on the real files: sizes are the published ones, formats as documented."""

from __future__ import annotations

import numpy as np
import pytest

from nlpbook import data


def test_tiny_shakespeare():
    text = data.tiny_shakespeare()
    assert len(text) == 1_115_394  # characters; the file is pure ASCII
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")


@pytest.mark.parametrize(("split", "tokens"), [("valid", 217_646), ("test", 245_569)])
def test_wikitext2(split, tokens):
    """WikiText-2 v1 token counts as published (Merity et al. 2016), counting a newline per line."""
    text = data.wikitext2(split)
    assert len(text.split()) + text.count("\n") == tokens
    assert " @-@ " in text and "<unk>" in text


def test_wikitext2_train_is_refused_clearly():
    with pytest.raises(ValueError, match="train is not available"):
        data.wikitext2("train")


@pytest.mark.parametrize(
    ("split", "n", "positives"), [("train", 67_349, 37_569), ("dev", 872, 444)]
)
def test_sst2(split, n, positives):
    texts, labels = data.sst2(split)
    assert len(texts) == len(labels) == n
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    assert int(labels.sum()) == positives
    assert all(t == t.strip() and t for t in texts)


def test_sst2_test_is_unlabelled():
    texts, labels = data.sst2("test")
    assert len(texts) == 1_821 and labels is None
    assert texts[0] == "uneasy mishmash of styles and genres ."


def test_rt_polarity_decodes_windows_1252():
    texts, labels = data.rt_polarity()
    assert len(texts) == 10_662 and int(labels.sum()) == 5_331
    assert labels[0] == 1 and labels[-1] == 0
    assert any("\u2026" in t for t in texts)  # byte 0x85 is an ellipsis, not a line break


@pytest.mark.parametrize(
    ("split", "n"),
    [("train", 29_000), ("val", 1_014), ("test_2016_flickr", 1_000), ("test_2017_mscoco", 461)],
)
def test_multi30k_sizes(split, n):
    pairs = data.multi30k(split, "de", "en")
    assert len(pairs) == n
    assert all(src and tgt for src, tgt in pairs)


def test_multi30k_pairs_are_aligned():
    de_en = data.multi30k("val", "de", "en")
    en_fr = data.multi30k("val", "en", "fr")
    assert [en for _, en in de_en] == [en for en, _ in en_fr]
    assert de_en[0] == (
        "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen",
        "A group of men are loading cotton onto a truck",
    )


def test_multi30k_bad_arguments():
    with pytest.raises(ValueError, match="unknown language for Multi30k test_2017_flickr 'cs'"):
        data.multi30k("test_2017_flickr", "cs", "en")
    with pytest.raises(
        ValueError, match="unknown Multi30k split 'dev'; expected one of train, val"
    ):
        data.multi30k("dev")
    with pytest.raises(ValueError, match="must differ"):
        data.multi30k("train", "en", "en")


@pytest.mark.parametrize(
    ("split", "sentences", "tokens"),
    [("train", 3_394, 62_730), ("dev", 1_009, 15_733), ("test", 1_287, 23_394)],
)
def test_wnut17(split, sentences, tokens):
    corpus = data.wnut17(split)
    assert len(corpus) == sentences
    assert sum(len(t) for t, _ in corpus) == tokens
    tags = {tag for _, ts in corpus for tag in ts}
    types = {"corporation", "creative-work", "group", "location", "person", "product"}
    assert tags == {"O"} | {f"{p}-{t}" for p in "BI" for t in types}
    assert all(len(t) == len(ts) for t, ts in corpus)


def test_word_analogies():
    sections = data.word_analogies()
    assert len(sections) == 14 and sum(map(len, sections.values())) == 19_544
    assert sections["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")


@pytest.mark.parametrize(
    ("name", "n"), [("ws353", 353), ("simlex999", 999), ("men", 3_000), ("rw", 2_034)]
)
def test_word_similarity(name, n):
    triples = data.word_similarity(name)
    assert len(triples) == n
    assert all(isinstance(s, float) and w1 and w2 for w1, w2, s in triples)


def test_word_similarity_parses_crlf():
    assert data.word_similarity("ws353")[0] == ("love", "sex", 6.77)


@pytest.mark.parametrize("lang", data.XQUAD_LANGUAGES)
def test_xquad(lang):
    examples = data.xquad(lang)
    assert len(examples) == 1_190 and len(data.contexts(examples)) == 240
    first = examples[0]
    assert set(first) == {"id", "title", "context", "question", "answers"}
    start, text = first["answers"][0]["start"], first["answers"][0]["text"]
    assert first["context"][start : start + len(text)] == text


def test_xquad_ids_are_shared_across_languages():
    assert [e["id"] for e in data.xquad("en")] == [e["id"] for e in data.xquad("zh")]


def test_squad_dev():
    examples = data.squad()
    assert len(examples) == 10_570 and len(data.contexts(examples)) == 2_067


def test_unknown_xquad_language():
    with pytest.raises(ValueError, match="unknown XQuAD language 'fr'; expected one of ar, de"):
        data.xquad("fr")
