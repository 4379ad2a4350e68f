"""Tagged pairs for multilingual translation, and the character n-gram language identifier."""

from __future__ import annotations

import pytest

from nlpbook import data
from nlpbook.langid import LanguageIdentifier, char_ngrams
from nlpbook.mtdata import decode, encode_sources, tag_id, tagged_pairs, train_shared_bpe

CORPUS = {
    "en": ["a dog runs .", "two men play football .", "a woman reads a book ."],
    "de": ["ein hund läuft .", "zwei männer spielen fußball .", "eine frau liest ein buch ."],
    "fr": ["un chien court .", "deux hommes jouent au football .", "une femme lit un livre ."],
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_shared_bpe(CORPUS, vocab_size=300)


def test_specials_come_first_and_tags_follow_the_languages(tokenizer):
    ids = [tokenizer.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<2en>", "<2de>", "<2fr>")]
    assert ids == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="no tag for 'cs'"):
        tag_id(tokenizer, "cs")


def test_tagged_pairs_carry_the_target_tag_and_end_of_sentence(tokenizer):
    pairs = tagged_pairs(tokenizer, CORPUS, [("de", "en"), ("en", "fr")], max_tokens=50)
    assert len(pairs) == 6
    src, tgt = pairs[0]
    assert src[0] == tag_id(tokenizer, "en") and tgt[-1] == 2
    assert decode(tokenizer, src[1:]) == "ein hund läuft ."
    assert decode(tokenizer, tgt) == "a dog runs ."
    assert pairs[3][0][0] == tag_id(tokenizer, "fr")
    assert encode_sources(tokenizer, ["Ein Hund läuft ."], into="en")[0] == src  # lowercased


def test_long_pairs_are_left_out_and_misaligned_corpora_refused(tokenizer):
    short = tagged_pairs(tokenizer, CORPUS, [("de", "en")], max_tokens=12)
    assert 0 < len(short) < 3
    with pytest.raises(ValueError, match="align"):
        tagged_pairs(tokenizer, {"en": CORPUS["en"], "de": CORPUS["de"][:2]}, [("de", "en")],
                     max_tokens=50)  # fmt: skip


def test_char_ngrams_by_hand():
    assert char_ngrams("Ab", 2) == [" a", "ab", "b "]


def test_language_identifier_on_multi30k_validation():
    """Fitted on 5,000 training captions per language, it names the language of > 98% of the
    1,014 validation captions of each of en, de, fr, cs."""
    train = {lang: [t for _, t in data.multi30k("train", "en" if lang != "en" else "de", lang)]
             for lang in ("en", "de", "fr", "cs")}  # fmt: skip
    ident = LanguageIdentifier().fit({lang: texts[:5000] for lang, texts in train.items()})
    for lang in train:
        val = [t for _, t in data.multi30k("val", "en" if lang != "en" else "de", lang)]
        predicted = ident.predict(val)
        assert sum(p == lang for p in predicted) / len(val) > 0.98, lang


def test_language_identifier_errors():
    with pytest.raises(ValueError, match="two languages"):
        LanguageIdentifier().fit({"en": ["a"]})
    with pytest.raises(RuntimeError, match="not fitted"):
        LanguageIdentifier().predict(["a"])
