"""Readers for the book's datasets, returning plain Python and NumPy data.

Each reader fetches its files through `registry.fetch` (so they are verified and cached)
and parses them into the simplest structure that fits: a string for a corpus, parallel
lists of texts and labels for classification, lists of pairs for translation.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from nlpbook.data.registry import fetch

XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
MULTI30K_SPLITS = {  # split -> languages mirrored for it
    "train": ("cs", "de", "en", "fr"),
    "val": ("cs", "de", "en", "fr"),
    "test_2016_flickr": ("cs", "de", "en", "fr"),
    "test_2017_flickr": ("de", "en", "fr"),
    "test_2017_mscoco": ("de", "en", "fr"),
    "test_2018_flickr": ("cs", "de", "en", "fr"),
}
WORD_SIMILARITY = {  # benchmark name -> file in word-similarity/
    "ws353": "EN-WS-353-ALL.txt",
    "ws353-sim": "EN-WS-353-SIM.txt",
    "ws353-rel": "EN-WS-353-REL.txt",
    "simlex999": "EN-SIMLEX-999.txt",
    "simverb3500": "EN-SimVerb-3500.txt",
    "men": "EN-MEN-TR-3k.txt",
    "rw": "EN-RW-STANFORD.txt",
    "mturk287": "EN-MTurk-287.txt",
    "mturk771": "EN-MTurk-771.txt",
    "rg65": "EN-RG-65.txt",
    "mc30": "EN-MC-30.txt",
    "yp130": "EN-YP-130.txt",
    "verb143": "EN-VERB-143.txt",
}
WNUT17_FILES = {
    "train": "wnut17/wnut17train.conll",
    "dev": "wnut17/emerging.dev.conll",
    "test": "wnut17/emerging.test.annotated",
}


def _choice(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; expected one of {', '.join(allowed)}")
    return value


def tiny_shakespeare() -> str:
    """The 1.1 MB Tiny Shakespeare corpus (Karpathy's char-rnn) as one string."""
    return fetch("tinyshakespeare/input.txt").read_text(encoding="utf-8")


def wikitext2(split: str) -> str:
    """WikiText-2 (tokenized v1, with ``<unk>`` and `` @-@ ``) for 'valid' or 'test'.

    The 10.8 MB train split is not part of the book's data: chapters train on valid and
    evaluate on test.
    """
    _choice("WikiText-2 split (train is not available)", split, ("valid", "test"))
    return fetch(f"wikitext-2/{split}.txt").read_text(encoding="utf-8")


def sst2(split: str) -> tuple[list[str], np.ndarray | None]:
    """GLUE SST-2 sentences and 0/1 labels; the 'test' split is unlabelled (labels None).

    >>> texts, labels = sst2("dev")   # doctest: +SKIP
    >>> len(texts), labels[:3]        # doctest: +SKIP
    (872, array([1, 0, 1]))
    """
    _choice("SST-2 split", split, ("train", "dev", "test"))
    lines = fetch(f"sst2/{split}.tsv").read_text(encoding="utf-8").split("\n")[1:]
    rows = [line.split("\t") for line in lines if line]
    if split == "test":  # index<TAB>sentence
        return [sentence.strip() for _, sentence in rows], None
    texts = [sentence.strip() for sentence, _ in rows]
    return texts, np.array([int(label) for _, label in rows], dtype=np.int64)


def rt_polarity() -> tuple[list[str], np.ndarray]:
    """Pang & Lee's 10,662 movie-review sentences: positives first (label 1), then negatives.

    The files are Windows-1252 (a Latin-1 superset: byte 0x85 is "…"), lowercased and
    tokenized.
    """
    texts, labels = [], []
    for suffix, label in (("pos", 1), ("neg", 0)):
        raw = fetch(f"rt-polarity/rt-polarity.{suffix}").read_text(encoding="cp1252")
        lines = [line.strip() for line in raw.split("\n") if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    return texts, np.array(labels, dtype=np.int64)


def multi30k(split: str, src: str = "de", tgt: str = "en") -> list[tuple[str, str]]:
    """Line-aligned Multi30k (task 1) caption pairs ``(source, target)``, untokenized.

    `split` is one of `MULTI30K_SPLITS` and the languages one of 'cs', 'de', 'en', 'fr'
    where that split has them.
    """
    langs = MULTI30K_SPLITS[_choice("Multi30k split", split, tuple(MULTI30K_SPLITS))]
    _choice(f"language for Multi30k {split}", src, langs)
    _choice(f"language for Multi30k {split}", tgt, langs)
    if src == tgt:
        raise ValueError(f"source and target languages must differ, got {src!r} twice")
    sides = []
    for lang in (src, tgt):
        with gzip.open(fetch(f"multi30k/task1_raw/{split}.{lang}.gz"), "rt", encoding="utf-8") as f:
            sides.append([line.rstrip("\n") for line in f])
    if len(sides[0]) != len(sides[1]):
        raise ValueError(f"Multi30k {split}: {len(sides[0])} {src} lines vs {len(sides[1])} {tgt}")
    return [(s.strip(), t.strip()) for s, t in zip(*sides, strict=True)]


def wnut17(split: str) -> list[tuple[list[str], list[str]]]:
    """WNUT-17 emerging entities: sentences as ``(tokens, BIO tags)``.

    Sentences are separated by blank (or whitespace-only) lines; 'test' is the annotated
    test set.
    """
    path = fetch(WNUT17_FILES[_choice("WNUT-17 split", split, tuple(WNUT17_FILES))])
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path.name}:{number}: expected 'token<TAB>tag', got {line!r}")
        tokens.append(fields[0])
        tags.append(fields[1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def word_analogies() -> dict[str, list[tuple[str, str, str, str]]]:
    """Mikolov's ``questions-words.txt``: section name -> ``(a, b, c, d)`` questions.

    Each question reads "a is to b as c is to d", e.g. ('Athens', 'Greece', 'Baghdad',
    'Iraq') in section 'capital-common-countries'.
    """
    text = fetch("word-analogies/questions-words.txt").read_text(encoding="utf-8")
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in text.split("\n"):
        if line.startswith(":"):
            current = sections.setdefault(line[1:].strip(), [])
        elif line.strip():
            a, b, c, d = line.split()
            current.append((a, b, c, d))
    return sections


def word_similarity(name: str) -> list[tuple[str, str, float]]:
    """A word-similarity benchmark as ``(word1, word2, human score)`` triples."""
    file = WORD_SIMILARITY[_choice("word-similarity benchmark", name, tuple(WORD_SIMILARITY))]
    text = fetch(f"word-similarity/{file}").read_text(encoding="utf-8")
    triples = []
    for line in text.split("\n"):
        if line.strip():
            w1, w2, score = line.split()
            triples.append((w1, w2, float(score)))
    return triples


def _squad_examples(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        {
            "id": qa["id"],
            "title": article.get("title", ""),
            "context": paragraph["context"],
            "question": qa["question"],
            "answers": [{"text": a["text"], "start": a["answer_start"]} for a in qa["answers"]],
        }
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def squad() -> list[dict]:
    """SQuAD v1.1 dev: one dict per question (id, title, context, question, answers)."""
    return _squad_examples(fetch("squad-v1.1/dev-v1.1.json"))


def xquad(lang: str) -> list[dict]:
    """XQuAD in one of `XQUAD_LANGUAGES`: SQuAD dev questions professionally translated.

    Same structure as `squad`; the 1,190 questions share 240 contexts, in the same
    order in every language.
    """
    return _squad_examples(
        fetch(f"xquad/xquad.{_choice('XQuAD language', lang, XQUAD_LANGUAGES)}.json")
    )


def contexts(examples: list[dict]) -> list[str]:
    """The distinct contexts of SQuAD-style examples, in order of first appearance."""
    return list(dict.fromkeys(e["context"] for e in examples))
