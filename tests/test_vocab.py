"""The word tokenizer and the vocabulary with special tokens."""

from __future__ import annotations

import pytest

from nlpbook.vocab import TokenVocab, tokenize


def test_tokenize_splits_words_and_punctuation():
    assert tokenize("It's a GREAT film, isn't it?") == [
        "it's", "a", "great", "film", ",", "isn't", "it", "?",
    ]  # fmt: skip
    assert tokenize("") == []
    with pytest.raises(TypeError):
        tokenize(["not", "a", "string"])


def test_vocab_maps_unknown_words_to_unk_and_rejects_empty_sentences():
    vocab = TokenVocab.build([["a", "b", "a"], ["b", "a", "c"]], min_count=2, specials=["<eos>"])
    assert vocab.tokens == ("<pad>", "<unk>", "<eos>", "a", "b")
    assert vocab.encode(["a", "c", "zebra", "b"]) == [3, 1, 1, 4]
    assert vocab.decode(vocab.encode(["b", "a"])) == ["b", "a"]
    with pytest.raises(ValueError, match="empty sentence"):
        vocab.encode([])
    with pytest.raises(TypeError, match="tokenize"):
        vocab.encode("a b")
    with pytest.raises(IndexError, match="outside the vocabulary"):
        vocab.decode([5])
    with pytest.raises(ValueError, match="first tokens"):
        TokenVocab(("a", "<pad>", "<unk>"))
