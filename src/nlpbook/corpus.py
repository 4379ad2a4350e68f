"""From raw English text to what word-vector training eats: sentences of word ids.

Word2vec and GloVe see a corpus as sentences (lists of words) and know only the words
that occur at least `min_count` times. This module does those two steps, once, for every
chapter that trains word vectors:

>>> sents = sentences("The cat sat . The dog sat !")
>>> sents
[['the', 'cat', 'sat'], ['the', 'dog', 'sat']]
>>> vocab = Vocab.build(sents, min_count=2)
>>> vocab.words, vocab.counts.tolist()
(('sat', 'the'), [2, 2])
>>> [ids.tolist() for ids in vocab.encode(sents)]
[[1, 0], [1, 0]]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

_WORDLIKE = re.compile(r"\w")  # a token worth keeping has at least one letter or digit
_SENTENCE_END = frozenset({".", "!", "?"})


def sentences(text: str, *, lowercase: bool = True) -> list[list[str]]:
    """Split whitespace-tokenized text (such as WikiText-2) into sentences of words.

    Lines are paragraphs; a sentence ends at '.', '!' or '?' or at the end of a line.
    Punctuation and WikiText's joiners (``@-@``, ``@,@``) are dropped, since they carry
    little meaning and would crowd every context window. Section headings
    (`` = Title = ``) are skipped. Words are lowercased unless `lowercase` is False,
    because the evaluation benchmarks are lowercase.

    >>> sentences(" = Heading = \\n A 4 @-@ door car . It is red , and fast .\\n")
    [['a', '4', 'door', 'car'], ['it', 'is', 'red', 'and', 'fast']]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("=") and stripped.endswith("=")):
            continue
        current: list[str] = []
        for token in stripped.split():
            if token in _SENTENCE_END:
                if current:
                    out.append(current)
                current = []
            elif _WORDLIKE.search(token) and not (token.startswith("@") and token.endswith("@")):
                current.append(token.lower() if lowercase else token)
        if current:
            out.append(current)
    return out


@dataclass(frozen=True)
class Vocab:
    """Words sorted by falling frequency (ties alphabetically), with their counts.

    Id 0 is the most frequent word, which is what the ``top-N most frequent words``
    restrictions of evaluation rely on.
    """

    words: tuple[str, ...]
    counts: np.ndarray  # (V,) int64, counts[i] is how often words[i] occurs
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts")
        index = {w: i for i, w in enumerate(self.words)}
        if len(index) != len(self.words):
            raise ValueError("the vocabulary has duplicate words")
        object.__setattr__(self, "index", index)

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_count: int = 5,
        max_size: int | None = None,
    ) -> Vocab:
        """Count words and keep those seen `min_count` times or more (at most `max_size`)."""
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counter = Counter(word for sentence in sentences for word in sentence)
        if not counter:
            raise ValueError("cannot build a vocabulary from an empty corpus")
        kept = sorted(
            ((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0])
        )
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise ValueError(
                f"no word occurs {min_count} times or more in a corpus of "
                f"{sum(counter.values())} words; lower min_count"
            )
        words, counts = zip(*kept, strict=True)
        return cls(tuple(words), np.array(counts, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def id(self, word: str) -> int:
        """The id of `word`, with a clear error for a word outside the vocabulary."""
        try:
            return self.index[word]
        except KeyError:
            raise KeyError(f"{word!r} is not in the vocabulary of {len(self)} words") from None

    def encode(self, sentences: Iterable[Sequence[str]]) -> list[np.ndarray]:
        """Each sentence as an int32 array of ids; unknown words are dropped, as word2vec does.

        Sentences left empty are dropped too.
        """
        out = []
        for sentence in sentences:
            ids = [self.index[w] for w in sentence if w in self.index]
            if ids:
                out.append(np.array(ids, dtype=np.int32))
        return out
