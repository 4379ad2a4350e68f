"""Tests of `nlpbook.bpe` and `nlpbook.pretokenize`: hand-worked merges, the two trainers
agreeing, exact agreement with Hugging Face's GPT-2 tokenizer, round trips, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlpbook import assets, data
from nlpbook.bpe import (
    BPETokenizer,
    bytes_to_unicode,
    get_stats,
    load_gpt2,
    merge,
    train_fast,
    train_naive,
)
from nlpbook.pretokenize import GPT2_PATTERN, pretokenize, split_special

NASTY = [
    "",
    " ",
    "\n\n\n",
    "hello world",
    "   leading and trailing   ",
    "emoji 👋🏽 and 👨‍👩‍👧 family",
    "한국어 텍스트",
    "日本語とEnglishの混在",
    "tabs\tand\r\nwindows newlines",
    "combining e\u0301 and zero\u200bwidth",
    "it's they'll we've I'M",
    "1234567890 3.14159",
    "<|endoftext|>two<|endoftext|><|endoftext|>",
]


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return data.tiny_shakespeare()


@pytest.fixture(scope="module")
def trained(shakespeare: str) -> BPETokenizer:
    return BPETokenizer().train(shakespeare[:100_000], 512, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return load_gpt2()


@pytest.fixture(scope="module")
def hf_gpt2():
    """Hugging Face's GPT-2 tokenizer built from the same two files (no hub access)."""
    transformers = pytest.importorskip("transformers")
    folder = assets.locate("gpt2-tokenizer")
    return transformers.GPT2TokenizerFast(
        vocab=str(folder / "encoder.json"), merges=str(folder / "vocab.bpe")
    )


# --- the primitives, by hand ------------------------------------------------------------


def test_get_stats_and_merge_by_hand():
    """Exact counts and merge results on lists small enough to check by eye."""
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_stats([7]) == {}
    assert get_stats([5, 5, 5]) == {(5, 5): 2}  # overlapping occurrences are both counted
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([5, 5, 5], (5, 5), 6) == [6, 5]  # ...but merged left to right, no overlap
    assert merge([], (1, 2), 3) == []


def test_pretokenize_gpt2_pattern():
    """GPT-2's regex splits words from punctuation and keeps one leading space per word;
    the chunks always join back into the text."""
    assert pretokenize("Hello world!!  It's") == ["Hello", " world", "!!", " ", " It", "'s"]
    for text in NASTY:
        assert "".join(pretokenize(text)) == text
    assert split_special("a<x>b<xy>", ["<x>", "<xy>"]) == [
        ("a", False),
        ("<x>", True),
        ("b", False),
        ("<xy>", True),
    ]


@pytest.mark.parametrize("method", ["naive", "fast"])
def test_three_merges_worked_by_hand(method):
    """Exact merges and ids for a short text, worked out by hand.

    "abab ab" pre-tokenizes into "abab" and " ab" (bytes a=97, b=98, space=32).
      counts: (97,98)=3, (98,97)=1, (32,97)=1           -> merge 1: (97,98)  -> 256
      chunks: [256,256], [32,256]; counts (256,256)=1, (32,256)=1, a tie
              broken towards the smaller pair           -> merge 2: (32,256) -> 257
      chunks: [256,256], [257]; counts (256,256)=1      -> merge 3: (256,256) -> 258
    So "abab ab" -> [258, 257]. Encoding "ab abab" applies merges by rank, not left to
    right: " abab" = [32,97,98,97,98] -> rank 0 gives [32,256,256] -> rank 1, (32,256),
    beats rank 2, (256,256), giving [257,256]; with "ab" -> [256] the whole is [256,257,256].
    """
    tok = BPETokenizer().train("abab ab", 256 + 3, method=method)
    assert tok.merges == {(97, 98): 256, (32, 256): 257, (256, 256): 258}
    assert tok.vocab[258] == b"abab" and tok.vocab[257] == b" ab"
    assert tok.encode("abab ab") == [258, 257]
    assert tok.encode("ab abab") == [256, 257, 256]
    assert tok.encode("xyz") == [120, 121, 122]  # no merge applies: plain bytes
    assert tok.decode([256, 257, 256]) == "ab abab"


def test_wikipedia_example():
    """The classic "aaabdaaabac" with three merges: aa, ab (tie with (256, 97), the smaller
    pair wins), then (256, 257) = "aaab"; encoding gives [258, 100, 258, 97, 99]."""
    tok = BPETokenizer().train("aaabdaaabac", 259)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_training_stops_when_no_pairs_are_left():
    """With two bytes of text there is one pair to merge, whatever the vocab size asked."""
    tok = BPETokenizer().train("ab", 1000)
    assert tok.merges == {(97, 98): 256}
    assert tok.vocab_size == 257


# --- the two trainers agree -------------------------------------------------------------


def test_naive_and_fast_trainers_learn_identical_merges(shakespeare):
    """On 20 kB of Shakespeare, 300 merges: the merge dicts (pairs, ids, order) are equal."""
    chunks = pretokenize(shakespeare[:20_000])
    fast = train_fast(chunks, 300)
    assert len(fast) == 300
    assert list(fast.items()) == list(train_naive(chunks, 300).items())


def test_trainers_agree_on_ties_and_repeats():
    """Many tied counts and runs of one byte (overlapping pairs): still identical merges."""
    chunks = pretokenize("aaaa bbbb abab baba " * 3 + "aaaaaaa ab ba aa bb " * 2)
    assert list(train_fast(chunks, 20).items()) == list(train_naive(chunks, 20).items())


def test_trained_vocab_size_and_first_merge(trained, shakespeare):
    """The requested size is reached (256 + 255 merges + 1 special), and the first merge is
    the most frequent pair of the training text, counted directly."""
    assert trained.vocab_size == len(trained) == 512
    assert len(trained.merges) == 255
    assert trained.special_tokens == {"<|endoftext|>": 511}
    counts: dict[tuple[int, int], int] = {}
    for chunk in pretokenize(shakespeare[:100_000]):
        get_stats(list(chunk.encode("utf-8")), counts)
    assert next(iter(trained.merges)) == max(counts, key=counts.get)


# --- GPT-2: exact agreement with Hugging Face -------------------------------------------


def test_gpt2_loads_with_gpt2_ids(gpt2):
    """Vocabulary size and a few ids known from GPT-2 itself."""
    assert gpt2.vocab_size == 50257
    assert gpt2.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2.encode("hello world") == [31373, 995]
    assert gpt2.encode("<|endoftext|>") == [50256]
    assert bytes_to_unicode()[ord(" ")] == "Ġ"


def test_gpt2_matches_hugging_face_on_tiny_shakespeare(gpt2, hf_gpt2, shakespeare):
    """The whole 1.1 MB text as one string: id lists must be exactly equal."""
    assert gpt2.encode(shakespeare) == hf_gpt2(shakespeare)["input_ids"]


def test_gpt2_matches_hugging_face_on_xquad(gpt2, hf_gpt2):
    """All contexts of the 12 XQuAD languages (Arabic to Chinese): exactly equal ids for
    every context, and decoding gives each context back."""
    for lang in data.XQUAD_LANGUAGES:
        contexts = data.contexts(data.xquad(lang))
        ours = [gpt2.encode(c) for c in contexts]
        assert ours == hf_gpt2(contexts)["input_ids"], lang
        assert [gpt2.decode(ids) for ids in ours] == contexts, lang


def test_gpt2_matches_hugging_face_on_nasty_strings(gpt2, hf_gpt2):
    """Emoji, Korean, odd whitespace and special tokens: exactly equal ids."""
    for text in NASTY:
        assert gpt2.encode(text) == hf_gpt2(text)["input_ids"], text


# --- round trips ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(trained, gpt2, text):
    """decode(encode(s)) == s, exactly, for arbitrary Unicode, with both tokenizers."""
    assert trained.decode(trained.encode(text)) == text
    assert gpt2.decode(gpt2.encode(text)) == text


@pytest.mark.parametrize("text", NASTY)
def test_round_trip_nasty_strings(trained, text):
    """The same round trip on strings chosen to be awkward."""
    assert trained.decode(trained.encode(text)) == text


def test_decode_partial_utf8_gives_replacement_character(trained):
    """A lone byte of a multi-byte character cannot be decoded: it becomes U+FFFD."""
    euro = trained.encode("€")
    assert trained.decode(euro) == "€"
    assert trained.decode([0xE2]) == "\ufffd"


def test_save_load_round_trip(trained, tmp_path):
    """Saved and loaded: the same pattern, merges (in order), specials and encodings."""
    path = tmp_path / "shakespeare.bpe"
    trained.save(path)
    assert path.read_text(encoding="utf-8").startswith("nlpbook-bpe 1\n")
    loaded = BPETokenizer.load(path)
    assert loaded.pattern == trained.pattern == GPT2_PATTERN
    assert list(loaded.merges.items()) == list(trained.merges.items())
    assert loaded.special_tokens == trained.special_tokens
    for text in NASTY:
        assert loaded.encode(text) == trained.encode(text)


def test_save_load_gpt2(gpt2, tmp_path, shakespeare):
    """GPT-2's permuted byte ids survive a save/load round trip: same ids on 50 kB."""
    gpt2.save(tmp_path / "gpt2.bpe")
    loaded = BPETokenizer.load(tmp_path / "gpt2.bpe")
    assert loaded.byte_ids == gpt2.byte_ids
    assert loaded.encode(shakespeare[:50_000]) == gpt2.encode(shakespeare[:50_000])


# --- special tokens ---------------------------------------------------------------------


def test_special_tokens_are_single_ids_and_never_merged():
    """Training text full of a special token: it is cut out before training, so no merge
    contains its bytes' pairs across it, and it encodes to its one id."""
    text = "ab<|sep|>" * 50
    tok = BPETokenizer().train(text, 300, special_tokens=["<|sep|>"])
    sep = tok.special_tokens["<|sep|>"]
    assert tok.merges == {(97, 98): 256}  # only "ab" is left to merge
    assert sep == 257
    assert tok.encode("ab<|sep|>ab") == [256, sep, 256]
    assert tok.encode("<|sep|>", allow_special=False) == list(b"<|sep|>")
    assert tok.decode([256, sep]) == "ab<|sep|>"


def test_register_special_tokens_longest_match_first():
    """Of two specials where one is a prefix of the other, the longer one is matched."""
    tok = BPETokenizer()
    ids = tok.register_special_tokens(["<a>", "<a>>"])
    assert ids == {"<a>": 256, "<a>>": 257}
    assert tok.encode("<a>><a>") == [257, 256]


# --- bad input --------------------------------------------------------------------------


def test_bad_input_raises_clear_errors(trained):
    """Each mistake raises the right exception type with a message naming what was wrong."""
    with pytest.raises(ValueError, match="vocab_size must be at least 256"):
        BPETokenizer().train("hello", 255)
    with pytest.raises(ValueError, match="at least 258"):
        BPETokenizer().train("hello", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer().train("hello", 300.0)
    with pytest.raises(TypeError, match="train expects a str, got bytes"):
        BPETokenizer().train(b"hello", 300)
    with pytest.raises(TypeError, match="encode expects a str, got list"):
        trained.encode(["hello"])
    with pytest.raises(ValueError, match="unknown method 'slow'"):
        BPETokenizer().train("hello", 300, method="slow")
    with pytest.raises(ValueError, match=r"unknown token ids \[512, -1\]"):
        trained.decode([1, 512, -1])
    with pytest.raises(TypeError, match="decode expects a list of int ids"):
        trained.decode("abc")
    with pytest.raises(TypeError, match="list of strings, not one string"):
        BPETokenizer().train("hello", 300, special_tokens="<s>")


def test_bad_files_raise(tmp_path):
    """A file that is not a saved tokenizer, or a damaged one, is rejected by name."""
    path = tmp_path / "not.bpe"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved BPETokenizer"):
        BPETokenizer.load(path)
    path.write_text('nlpbook-bpe 1\npattern "x"\nbytes 1 2\n', encoding="utf-8")
    with pytest.raises(ValueError, match="damaged"):
        BPETokenizer.load(path)
    with pytest.raises(ValueError, match="merge #0 .* uses an id not defined"):
        BPETokenizer(merges={(300, 1): 256})
