"""Multilingual text: how tokenizers treat other languages, and XLM's pretraining inputs.

Two small tools for one model that reads many languages:

- `token_stats` counts what a tokenizer makes of some texts: tokens per whitespace word,
  per character and per English word of a parallel text, UTF-8 bytes per token, the share
  of unknown tokens, and the share of tokens that are not whole characters (byte-level
  pieces of a script the vocabulary never learned). `script_of` names a character's script.

  >>> stats = token_stats(["ab cd"], lambda text: list(text.replace(" ", "")))
  >>> stats.tokens, stats.words, stats.tokens_per_word, stats.bytes_per_token
  (4, 2, 2.0, 1.25)

- `xlm_example` and `collate_xlm` build the inputs of XLM's masked LM and translation LM
  (Lample & Conneau 2019): one or more sentences in a row, each with its language id on
  every token and positions that restart at every sentence, so that a sentence and its
  translation are two aligned streams rather than one long text::

      tokens     [CLS] a  dog [SEP] ein hund [SEP]
      languages    en  en en   en    de  de    de
      positions     0  1  2    3     0   1     2

  `xlm_masked_loss` is the masked-LM loss of `nlpbook.bert.BERTForMaskedLM` on such a
  batch, with the head run at the masked positions only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from nlpbook.bert import IGNORE_INDEX, BERTForMaskedLM


def script_of(char: str) -> str | None:
    """The writing system of a letter, from its Unicode name; None for other characters.

    The script is the first word of the character's name (``LATIN``, ``CYRILLIC``,
    ``DEVANAGARI``...); all CJK ideographs are ``"CJK"``. Digits, punctuation, spaces and
    combining marks have no script here.

    >>> script_of("a"), script_of("я"), script_of("中"), script_of("7")
    ('LATIN', 'CYRILLIC', 'CJK', None)
    """
    if len(char) != 1:
        raise ValueError(f"expected one character, got {char!r}")
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return name.split()[0] if name else None


@dataclass(frozen=True)
class TokenStats:
    """Counts over a set of texts: ``tokens`` from the tokenizer, ``words`` split on
    whitespace, ``characters`` other than whitespace, UTF-8 ``bytes`` (whitespace included),
    ``unknown`` tokens and ``partial`` tokens (pieces of a character)."""

    tokens: int
    words: int
    characters: int
    bytes: int
    unknown: int = 0
    partial: int = 0

    @property
    def tokens_per_word(self) -> float:
        """Fertility: tokens per whitespace-separated word (meaningless without spaces)."""
        return self.tokens / self.words

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / self.characters

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens

    @property
    def unknown_rate(self) -> float:
        return self.unknown / self.tokens

    @property
    def partial_rate(self) -> float:
        return self.partial / self.tokens

    def per(self, words: int) -> float:
        """Tokens per word of another text, e.g. the English original of a translation."""
        if words < 1:
            raise ValueError(f"words must be positive, got {words}")
        return self.tokens / words


def token_stats(
    texts: Sequence[str],
    tokenize: Callable[[str], Sequence[object]],
    *,
    unknown: object | None = None,
    is_partial: Callable[[object], bool] | None = None,
) -> TokenStats:
    """What `tokenize` (text -> tokens or ids) makes of `texts`, summed over all of them.

    `unknown` is the tokenizer's unknown token (counted where it appears); `is_partial`
    says whether a token is a piece of a character rather than whole characters, e.g. for
    a byte-level BPE ``lambda i: not valid_utf8(vocab[i])``.

    >>> token_stats(["héllo wörld"], lambda s: s.split()).bytes_per_token
    6.5
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if not texts:
        raise ValueError("no texts to count")
    tokens = words = characters = n_bytes = n_unknown = n_partial = 0
    for text in texts:
        pieces = tokenize(text)
        tokens += len(pieces)
        words += len(text.split())
        characters += sum(not c.isspace() for c in text)
        n_bytes += len(text.encode("utf-8"))
        if unknown is not None:
            n_unknown += sum(piece == unknown for piece in pieces)
        if is_partial is not None:
            n_partial += sum(bool(is_partial(piece)) for piece in pieces)
    if tokens == 0 or words == 0:
        raise ValueError("the texts have no tokens or no words to count")
    return TokenStats(tokens, words, characters, n_bytes, n_unknown, n_partial)


def is_whole_utf8(piece: bytes) -> bool:
    """Whether `piece` decodes as UTF-8 on its own: False for a fragment of a character.

    >>> is_whole_utf8("é".encode()), is_whole_utf8("é".encode()[:1])
    (True, False)
    """
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def xlm_example(
    sentences: Sequence[tuple[Sequence[int], int]], *, cls_id: int, sep_id: int
) -> tuple[list[int], list[int], list[int]]:
    """One XLM input from ``(token ids, language id)`` sentences: ``(ids, languages, positions)``.

    ``[CLS]`` opens the row and ``[SEP]`` closes every sentence; each token carries its
    sentence's language, and positions restart at 0 with every sentence (``[CLS]`` counts
    as the first sentence's position 0). One sentence is a masked-LM example, a sentence and
    its translation a translation-LM example:

    >>> xlm_example([([7, 8], 0), ([9], 1)], cls_id=1, sep_id=2)
    ([1, 7, 8, 2, 9, 2], [0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 0, 1])
    """
    if not sentences:
        raise ValueError("expected at least one (ids, language) sentence")
    ids, languages, positions = [cls_id], [sentences[0][1]], [0]
    for i, (tokens, language) in enumerate(sentences):
        tokens = list(tokens)
        if not tokens:
            raise ValueError(f"sentence {i} has no tokens")
        start = 1 if i == 0 else 0  # the first sentence follows [CLS]
        ids += tokens + [sep_id]
        languages += [language] * (len(tokens) + 1)
        positions += list(range(start, start + len(tokens) + 1))
    return ids, languages, positions


def collate_xlm(
    examples: Sequence[tuple[list[int], list[int], list[int]]], *, pad_id: int
) -> dict[str, Tensor]:
    """Pad `xlm_example` rows to the longest: ``input_ids``, ``attention_mask``,
    ``token_type_ids`` (the languages) and ``position_ids``, each (B, T).

    >>> batch = collate_xlm([([1, 5, 2], [0, 0, 0], [0, 1, 2]), ([1, 2], [1, 1], [0, 1])],
    ...                     pad_id=0)
    >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
    ([[1, 5, 2], [1, 2, 0]], [[1, 1, 1], [1, 1, 0]])
    """
    if not examples:
        raise ValueError("no examples to collate")
    T = max(len(ids) for ids, _, _ in examples)
    out = {
        name: torch.zeros(len(examples), T, dtype=torch.long)
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids")
    }
    out["input_ids"].fill_(pad_id)
    for row, (ids, languages, positions) in enumerate(examples):
        if not len(ids) == len(languages) == len(positions):
            raise ValueError(
                f"example {row}: ids, languages and positions must have the same length, got "
                f"{len(ids)}, {len(languages)}, {len(positions)}"
            )
        n = len(ids)
        out["input_ids"][row, :n] = torch.tensor(ids)
        out["attention_mask"][row, :n] = 1
        out["token_type_ids"][row, :n] = torch.tensor(languages)
        out["position_ids"][row, :n] = torch.tensor(positions)
    return out


def xlm_masked_loss(model: BERTForMaskedLM, batch: dict[str, Tensor], labels: Tensor) -> Tensor:
    """Mean cross-entropy at the labelled positions of a `collate_xlm` batch whose
    ``input_ids`` are already masked; languages and restarting positions go into the
    embeddings, and the vocabulary head runs on the labelled positions only."""
    if labels.shape != batch["input_ids"].shape:
        raise ValueError(
            f"labels has shape {tuple(labels.shape)}, expected that of input_ids "
            f"{tuple(batch['input_ids'].shape)}"
        )
    hidden = model.bert(
        batch["input_ids"],
        batch["attention_mask"],
        batch["token_type_ids"],
        position_ids=batch["position_ids"],
    )  # (B, T, C)
    chosen = labels != IGNORE_INDEX  # (B, T)
    logits = model.head(hidden[chosen])  # (N, V): N labelled positions
    return F.cross_entropy(logits, labels[chosen])
