"""Words to ids and back, for the models that read words: a tokenizer and a vocabulary.

The sentence classifiers and the recurrent translator read text as words and punctuation
marks (`tokenize`), each mapped to an id by a `TokenVocab`, whose special tokens come first
(``<pad>`` = 0, ``<unk>`` = 1, then e.g. ``<bos>`` and ``<eos>``)::

    "a gripping movie ."  --tokenize-->    ["a", "gripping", "movie", "."]
                          --TokenVocab-->  [4, 1871, 19, 3]   (unknown words -> <unk>)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from nlpbook.corpus import Vocab

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Words and single punctuation marks, lowercased unless told otherwise.

    SST-2 is already tokenized this way; raw text (Multi30k) needs it.

    >>> tokenize("Zwei Männer, die Fußball spielen.")
    ['zwei', 'männer', ',', 'die', 'fußball', 'spielen', '.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class TokenVocab:
    """Token <-> id, with special tokens first: ``<pad>`` is always 0 and ``<unk>`` always 1.

    Words outside the vocabulary are encoded as ``<unk>`` (documented, not an error), so a
    model can read any sentence; an empty sentence is an error, since nothing can be
    predicted from it.

    >>> v = TokenVocab.build([["a", "b", "a"], ["a", "c"]], min_count=1)
    >>> v.tokens
    ('<pad>', '<unk>', 'a', 'b', 'c')
    >>> v.encode(["a", "zebra"])
    [2, 1]
    >>> v.decode([2, 1, 0])
    ['a', '<unk>', '<pad>']
    """

    tokens: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(f"the first tokens must be {PAD!r} and {UNK!r}, got {self.tokens[:2]}")
        index = {t: i for i, t in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            raise ValueError("the vocabulary has duplicate tokens")
        object.__setattr__(self, "index", index)

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> TokenVocab:
        """Keep words seen `min_count` times or more, most frequent first (`corpus.Vocab`).

        `specials` (e.g. ``<bos>``, ``<eos>``) follow ``<pad>`` and ``<unk>``; `max_size`
        counts words only.
        """
        words = Vocab.build(sentences, min_count=min_count, max_size=max_size).words
        reserved = (PAD, UNK, *specials)
        return cls(reserved + tuple(w for w in words if w not in reserved))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of `tokens`, unknown ones as ``<unk>``; an empty sentence is an error."""
        if isinstance(tokens, str):
            raise TypeError("encode expects a list of tokens; call tokenize(text) first")
        if len(tokens) == 0:
            raise ValueError("cannot encode an empty sentence; expected at least one token")
        return [self.index.get(t, 1) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids`, with a clear error for an id outside the vocabulary."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise IndexError(f"id {i} is outside the vocabulary of {len(self)} tokens")
            out.append(self.tokens[i])
        return out
