"""Which language is this text in? Naive Bayes over character n-grams.

Each language is a bag of character trigrams counted on text known to be in it; a new text
goes to the language under which its trigrams are most probable (Cavnar & Trenkle 1994
used n-gram frequency profiles; the multinomial naive Bayes here is the same idea with
probabilities). With add-one smoothing::

    score(lang) = sum over the text's n-grams g of  log (count(g, lang) + 1) / (N_lang + G)

where N_lang counts every n-gram seen in `lang` and G the distinct n-grams of all languages.
The translation chapter uses it to check that a translator writes the language it was asked
for.

>>> texts = {"en": ["the cat and the dog"], "de": ["die katze und der hund"]}
>>> ident = LanguageIdentifier().fit(texts)
>>> ident.predict(["the dog", "der hund"])
['en', 'de']
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence


def char_ngrams(text: str, n: int) -> list[str]:
    """Overlapping n-grams of the lowercased text, padded with a space at each end.

    >>> char_ngrams("Hi!", 3)
    [' hi', 'hi!', 'i! ']
    """
    padded = f" {text.lower()} "
    return [padded[i : i + n] for i in range(len(padded) - n + 1)]


class LanguageIdentifier:
    """``fit({language: texts})``, then ``predict(texts)`` or ``log_probs(text)``."""

    def __init__(self, *, n: int = 3) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n = n
        self.counts: dict[str, Counter[str]] = {}
        self.totals: dict[str, int] = {}
        self.distinct = 0

    def fit(self, texts: Mapping[str, Sequence[str]]) -> LanguageIdentifier:
        if len(texts) < 2:
            raise ValueError(f"expected texts in at least two languages, got {list(texts)}")
        for lang, sentences in texts.items():
            counts: Counter[str] = Counter()
            for sentence in sentences:
                counts.update(char_ngrams(sentence, self.n))
            if not counts:
                raise ValueError(f"no text for language {lang!r}")
            self.counts[lang], self.totals[lang] = counts, sum(counts.values())
        self.distinct = len(set().union(*self.counts.values()))
        return self

    def log_probs(self, text: str) -> dict[str, float]:
        """The smoothed log-likelihood of `text` under each language."""
        if not self.counts:
            raise RuntimeError("the identifier is not fitted: call fit({language: texts}) first")
        grams = char_ngrams(text, self.n)
        return {
            lang: sum(
                math.log((counts[g] + 1) / (self.totals[lang] + self.distinct)) for g in grams
            )
            for lang, counts in self.counts.items()
        }

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely language of each text."""
        out = []
        for text in texts:
            scores = self.log_probs(text)
            out.append(max(scores, key=scores.__getitem__))
        return out
