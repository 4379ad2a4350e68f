"""Data for one translator of many directions: a shared subword vocabulary and language tags.

Johnson et al. (2017) trained a single translation model on many language pairs by adding
one token to each source sentence, ``<2xx>``, naming the language to translate *into*;
nothing else changes. The source and target languages share one BPE vocabulary, so the
model reads and writes every language with the same embedding table::

    ("ein hund läuft .", "a dog runs .")  ->  src: <2en> ▁ein ▁hund ▁läuft ▁.
                                               tgt: ▁a ▁dog ▁runs ▁. </s>

Text is lowercased, as in the book's GRU translator, so that BLEU compares the same thing
(sacrebleu, case-insensitive). The tokenizer is Hugging Face `tokenizers`' byte-level BPE,
the same construction as the chapter's XLM demo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2


def tag(language: str) -> str:
    """The token asking for a translation into `language`: ``tag("de") == "<2de>"``."""
    return f"<2{language}>"


def train_shared_bpe(texts: Mapping[str, Sequence[str]], *, vocab_size: int) -> Tokenizer:
    """A lowercasing byte-level BPE trained on the texts of every language together.

    `texts` maps a language code to its sentences. The special tokens come first:
    ``<pad>`` = 0, ``<s>`` = 1, ``</s>`` = 2, then one tag per language in the given order.
    """
    if not texts or any(len(sentences) == 0 for sentences in texts.values()):
        raise ValueError("expected sentences for at least one language, and none empty")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [PAD, BOS, EOS] + [tag(lang) for lang in texts]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(
        (sentence for sentences in texts.values() for sentence in sentences), trainer
    )
    return tokenizer


def tag_id(tokenizer: Tokenizer, language: str) -> int:
    """The id of ``<2xx>``; a clear error if the tokenizer was not trained with it."""
    token_id = tokenizer.token_to_id(tag(language))
    if token_id is None:
        raise ValueError(f"the tokenizer has no tag for {language!r} (no {tag(language)} token)")
    return token_id


def encode_sources(tokenizer: Tokenizer, sentences: Sequence[str], *, into: str) -> list[list[int]]:
    """Source sentences as ids, each starting with the tag of the target language `into`."""
    first = tag_id(tokenizer, into)
    return [[first, *e.ids] for e in tokenizer.encode_batch(list(sentences))]


def tagged_pairs(
    tokenizer: Tokenizer,
    corpus: Mapping[str, Sequence[str]],
    directions: Iterable[tuple[str, str]],
    *,
    max_tokens: int,
) -> list[tuple[list[int], list[int]]]:
    """``(tag + source ids, target ids + </s>)`` for every direction over a parallel corpus.

    `corpus` maps each language to its sentences, line-aligned (sentence i of every
    language is a translation of the others, as in Multi30k). Pairs with a side longer
    than `max_tokens` are left out (tag and ``</s>`` included).
    """
    directions = list(directions)
    sizes = {len(corpus[lang]) for pair in directions for lang in pair}
    if len(sizes) != 1:
        raise ValueError(f"the languages of a parallel corpus must align, got sizes {sizes}")
    eos = tokenizer.token_to_id(EOS)
    ids = {
        lang: [e.ids for e in tokenizer.encode_batch(list(corpus[lang]))]
        for lang in {lang for pair in directions for lang in pair}
    }
    pairs = []
    for src, tgt in directions:
        first = tag_id(tokenizer, tgt)
        for s, t in zip(ids[src], ids[tgt], strict=True):
            if 0 < len(s) < max_tokens and 0 < len(t) < max_tokens:
                pairs.append(([first, *s], [*t, eos]))
    return pairs


def decode(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Text of `ids` without special tokens or the leading space."""
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip()
