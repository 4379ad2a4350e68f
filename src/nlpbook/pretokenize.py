"""Pre-tokenization: cutting text into chunks that a subword tokenizer never merges across.

GPT-2 (Radford et al. 2019) splits text with a regular expression before byte-pair encoding
runs, so that a merge can never glue a word to the punctuation or the space after it: the
vocabulary is spent on ``" dog"``, not on ``"dog."``, ``"dog!"`` and ``"dog?"``. Every
character belongs to exactly one chunk, so joining the chunks gives back the text.

>>> pretokenize("Hello world, it's 2024!")
['Hello', ' world', ',', ' it', "'s", ' 2024', '!']

Special tokens such as ``<|endoftext|>`` are cut out even earlier, so that neither the
regex nor the merges ever see them:

>>> split_special("a<|endoftext|>b", ["<|endoftext|>"])
[('a', False), ('<|endoftext|>', True), ('b', False)]
"""

from __future__ import annotations

from collections.abc import Iterable

import regex

# GPT-2's pattern, from OpenAI's encoder.py: English contractions; an optional space followed
# by a run of letters, of digits, or of other symbols; then whitespace. `\s+(?!\S)` leaves the
# last space of a run for the next word, so " dog" keeps its leading space.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def pretokenize(text: str, *, pattern: str = GPT2_PATTERN) -> list[str]:
    """The chunks of `text` under `pattern`, in order (GPT-2's pattern by default).

    >>> pretokenize("  two spaces")
    [' ', ' two', ' spaces']
    """
    if not isinstance(text, str):
        raise TypeError(f"pretokenize expects a str, got {type(text).__name__}")
    return regex.findall(pattern, text)


def special_regex(specials: Iterable[str]) -> regex.Pattern | None:
    """A regex that captures any of `specials` (longest first), or None if there are none."""
    names = sorted(set(specials), key=lambda s: (-len(s), s))
    if not names:
        return None
    return regex.compile("(" + "|".join(regex.escape(s) for s in names) + ")")


def split_special(text: str, specials: Iterable[str]) -> list[tuple[str, bool]]:
    """`text` cut into pieces, each with whether it is one of the special tokens `specials`.

    Where two special tokens could match at one place, the longer one wins. Empty pieces
    between adjacent matches are left out.

    >>> split_special("<s>hi</s>", ["<s>", "</s>"])
    [('<s>', True), ('hi', False), ('</s>', True)]
    """
    if not isinstance(text, str):
        raise TypeError(f"split_special expects a str, got {type(text).__name__}")
    pattern = special_regex(specials)
    if pattern is None:
        return [(text, False)] if text else []
    # With one capturing group, `split` alternates: ordinary, special, ordinary, ...
    parts = pattern.split(text)
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]
