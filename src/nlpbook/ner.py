"""Named-entity recognition with spaCy: BIO tags, spans, DocBin, training from blank, scoring.

A sentence of a BIO corpus (``nlpbook.data.wnut17``) is a list of tokens and one tag per
token: ``B-type`` opens an entity, ``I-type`` continues it, ``O`` is outside any entity
(the IOB2 scheme of Ramshaw & Marcus, 1995). spaCy stores the same annotation as entity
spans over a `Doc` and trains from `DocBin` files; this module converts between the two,
trains spaCy's tok2vec + transition-based NER from blank with spaCy's own config system, and
scores predictions entity by entity with seqeval (strict IOB2: an entity counts only with
exactly the right boundaries and type).

- ``bio_to_spans`` / ``spans_to_bio``: tags <-> ``(start, end, label)`` token spans.
- ``to_docbin`` / ``doc_to_bio``: examples -> `DocBin`; a predicted `Doc` -> BIO tags.
- ``entity_counts``: entities per type in a corpus.
- ``train_spacy_ner``: a blank English pipeline trained from ``configs/ner_wnut17.cfg``
  (``WNUT17_OVERRIDES``: the settings used for WNUT-17), optionally with GloVe as static
  word vectors (``write_glove_vectors``).
- ``predict_bio``: run a pipeline over the gold tokens (so predictions align with the tags).
- ``ONTONOTES_TO_WNUT`` / ``map_tags``: the pretrained pipelines' types in WNUT-17's six.
- ``seqeval_report`` / ``type_confusion``: per-type P/R/F1, and which types were confused.

Malformed lines of the data files (not ``token<TAB>tag``) are reported by the reader,
``nlpbook.data.wnut17``, with the file name and line number.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

Example = tuple[list[str], list[str]]  # (tokens, BIO tags), one tag per token
Spans = list[tuple[int, int, str]]  # (start, end, label): token offsets, end exclusive

# The config `spacy init config --lang en --pipeline ner --optimize efficiency` wrote (CPU)
CONFIG = resources.files("nlpbook") / "configs" / "ner_wnut17.cfg"

# Settings found for WNUT-17 on top of CONFIG (spaCy's CPU "efficiency" defaults): wider
# tok2vec and NER layers, bigger hash tables (fewer collisions between rare words), more
# dropout against overfitting ~3,400 short training sentences, and averaged weights, which
# damp the step-to-step swings of dev F1. Used with GloVe vectors.
WNUT17_OVERRIDES: dict[str, Any] = {
    "training.dropout": 0.3,
    "training.optimizer.use_averages": True,  # evaluate with running averages of the weights
    "components.tok2vec.model.encode.width": 128,  # default 96
    "components.tok2vec.model.embed.rows": [20000, 5000, 5000, 5000],  # NORM, PREFIX, ...
    "components.ner.model.hidden_width": 128,  # default 64
}

WNUT17_TYPES = ("person", "location", "corporation", "product", "creative-work", "group")

# The 18 OntoNotes types of spaCy's English pipelines -> WNUT-17's six (None: dropped, WNUT-17
# has no such type). Two entries are compromises. ORG -> corporation: OntoNotes' ORG holds
# companies and also bands, teams, agencies and parties, which WNUT-17 calls "group"; ORG is
# mapped to the type that matches its definition for companies, and every ORG that WNUT-17
# calls a group counts as a type error (on WNUT-17 test, ORG spans hit gold groups about as
# often as gold corporations: `type_confusion` shows it). NORP -> group: nationalities,
# religious and political groups ("Democrats", "Muslims") are groups of people, the nearest
# WNUT-17 type. WNUT-17 does not mark every NORP (not adjectives such as "American"), so this
# costs precision on "group", but dropping NORP loses more: it is the pipeline's main source
# of correct "group" entities on WNUT-17 test, and overall F1 is lower without it.
ONTONOTES_TO_WNUT: dict[str, str | None] = {
    "PERSON": "person",
    "GPE": "location",  # countries, cities, states
    "LOC": "location",  # mountains, rivers, regions
    "FAC": "location",  # buildings, airports, bridges: places one can visit
    "ORG": "corporation",
    "PRODUCT": "product",
    "WORK_OF_ART": "creative-work",
    "NORP": "group",
    "EVENT": None,
    "LANGUAGE": None,
    "LAW": None,
    "DATE": None,
    "TIME": None,
    "PERCENT": None,
    "MONEY": None,
    "QUANTITY": None,
    "ORDINAL": None,
    "CARDINAL": None,
}


def _split_tag(tag: str, position: int) -> tuple[str, str | None]:
    """('B'|'I'|'O', type or None) of one tag; a clear error for anything else."""
    if tag == "O":
        return "O", None
    prefix, sep, label = tag.partition("-")
    if prefix not in ("B", "I") or not sep or not label:
        raise ValueError(f"tag {position}: expected 'O', 'B-<type>' or 'I-<type>', got {tag!r}")
    return prefix, label


def bio_to_spans(tokens: Sequence[str], tags: Sequence[str]) -> Spans:
    """Entity spans ``(start, end, label)`` (token offsets, end exclusive) of strict BIO tags.

    Strict IOB2: an ``I-type`` must continue a ``B-type`` or ``I-type`` of the same type.
    Unlike conlleval, which silently opens a new entity there, an ``I-`` that does not
    continue one raises ValueError naming its position: gold data must be well formed, and
    the predictions of a spaCy pipeline (``doc_to_bio``) always are.

    >>> bio_to_spans(["Hi", "New", "York", "!"], ["O", "B-location", "I-location", "O"])
    [(1, 3, 'location')]
    >>> bio_to_spans(["a", "b"], ["B-person", "B-person"])
    [(0, 1, 'person'), (1, 2, 'person')]
    """
    if len(tokens) != len(tags):
        raise ValueError(f"expected one tag per token, got {len(tokens)} tokens, {len(tags)} tags")
    spans: Spans = []
    start, label = None, None  # the entity being read, if any
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag, i)
        if prefix == "I":
            if kind != label:
                before = "no entity" if label is None else f"an entity of type {label!r}"
                raise ValueError(
                    f"tag {i} ({tag!r}, token {tokens[i]!r}) continues {before}: strict BIO "
                    f"expects B-{kind} or I-{kind} just before it"
                )
            continue
        if label is not None:
            spans.append((start, i, label))
        start, label = (i, kind) if prefix == "B" else (None, None)
    if label is not None:
        spans.append((start, len(tags), label))
    return spans


def spans_to_bio(n_tokens: int, spans: Iterable[tuple[int, int, str]]) -> list[str]:
    """The BIO tags of `n_tokens` tokens with entity `spans` (non-overlapping, end exclusive).

    >>> spans_to_bio(4, [(1, 3, "location")])
    ['O', 'B-location', 'I-location', 'O']
    """
    tags = ["O"] * n_tokens
    for start, end, label in spans:
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"span ({start}, {end}) is not inside 0..{n_tokens} or is empty")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span ({start}, {end}, {label!r}) overlaps another span")
        tags[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
    return tags


def to_doc(vocab: Vocab, tokens: Sequence[str], spans: Spans = ()) -> Doc:
    """A `Doc` of exactly these tokens (a space after each but the last), entities `spans`."""
    if not tokens:
        raise ValueError("expected at least one token")
    doc = Doc(vocab, words=list(tokens), spaces=[True] * (len(tokens) - 1) + [False])
    doc.ents = [Span(doc, start, end, label=label) for start, end, label in spans]
    return doc


def to_docbin(examples: Iterable[Example], vocab: Vocab) -> DocBin:
    """A `DocBin` (spaCy's training-data format) of ``(tokens, BIO tags)`` examples.

    Every token outside an entity is stored as explicitly "outside" (``O``), not as unknown:
    the annotation is complete, and spaCy learns from the O's too.

    >>> vocab = spacy.blank("en").vocab
    >>> db = to_docbin([(["I", "love", "Paris"], ["O", "O", "B-location"])], vocab)
    >>> [(e.text, e.label_) for e in next(db.get_docs(vocab)).ents]
    [('Paris', 'location')]
    """
    db = DocBin(store_user_data=False)
    for tokens, tags in examples:
        db.add(to_doc(vocab, tokens, bio_to_spans(tokens, tags)))
    return db


def doc_to_bio(doc: Doc) -> list[str]:
    """The BIO tags of a `Doc`'s entities, one per token (tokens outside every entity: 'O')."""
    return spans_to_bio(len(doc), [(e.start, e.end, e.label_) for e in doc.ents])


def entity_counts(examples: Iterable[Example]) -> Counter:
    """How many entities of each type the examples hold.

    >>> entity_counts([(["New", "York", "Yankees"], ["B-group", "I-group", "I-group"])])
    Counter({'group': 1})
    """
    return Counter(label for tokens, tags in examples for _, _, label in bio_to_spans(tokens, tags))


def map_tags(tags: Sequence[str], mapping: dict[str, str | None]) -> list[str]:
    """BIO tags with each type renamed by `mapping`; types mapped to None become 'O'.

    Boundaries are kept, so two adjacent entities stay two even when both get the same type.

    >>> map_tags(["B-GPE", "I-GPE", "B-DATE", "O"], ONTONOTES_TO_WNUT)
    ['B-location', 'I-location', 'O', 'O']
    """
    out = []
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag, i)
        if kind is None:
            out.append("O")
            continue
        if kind not in mapping:
            raise KeyError(f"type {kind!r} (tag {i}) is not in the mapping {sorted(mapping)}")
        target = mapping[kind]
        out.append("O" if target is None else f"{prefix}-{target}")
    return out


def predict_bio(nlp: Language, examples: Sequence[Example], *, batch_size: int = 256) -> list:
    """Each example's predicted BIO tags: `nlp` runs over a `Doc` of the gold tokens.

    Building the `Doc` from the gold words (instead of letting spaCy tokenize the text) keeps
    prediction and gold tag aligned token for token, which the seqeval comparison needs.
    """
    docs = (to_doc(nlp.vocab, tokens) for tokens, _ in examples)
    return [doc_to_bio(doc) for doc in nlp.pipe(docs, batch_size=batch_size)]


def seqeval_report(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]):
    """Entity-level precision, recall and F1 per type and overall (strict IOB2, seqeval).

    Returns a DataFrame indexed by type (sorted) then 'overall' (micro average over all
    entities), with columns precision, recall, f1 (fractions) and support (gold entities)
    and predicted (predicted entities). An entity is correct only if its start, end and type
    all match a gold entity.

    >>> gold = [["B-person", "I-person", "O", "B-location"]]
    >>> pred = [["B-person", "I-person", "O", "B-person"]]
    >>> seqeval_report(gold, pred).loc["overall", ["precision", "recall"]].tolist()
    [0.5, 0.5]
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(pred_tags)} predicted")
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    gold, pred = [list(t) for t in gold_tags], [list(t) for t in pred_tags]
    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    rows = {
        name: report[name]
        for name in sorted(report)
        if name not in ("micro avg", "macro avg", "weighted avg")
    }
    rows["overall"] = report["micro avg"]
    table = pd.DataFrame(rows).T.rename(columns={"f1-score": "f1"})
    table["support"] = table["support"].astype(int)
    # predicted entities = true positives / precision, counted directly to avoid 0/0
    predicted = Counter(label for tags in pred for _, _, label in bio_to_spans(tags, tags))
    table["predicted"] = [
        predicted[n] if n != "overall" else predicted.total() for n in table.index
    ]
    return table[["precision", "recall", "f1", "support", "predicted"]]


def type_confusion(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]):
    """Gold type (rows) x predicted type (columns), counting entities, strict boundaries.

    A gold entity whose exact span was predicted lands in the column of the predicted type
    (the diagonal: correct); one whose span was not predicted at all lands in column
    '(missed)'. Predicted entities with no gold entity of the same span are counted in row
    '(spurious)'. Boundary errors therefore show up as a miss plus a spurious entity.
    """
    counts: Counter = Counter()
    for gold, pred in zip(gold_tags, pred_tags, strict=True):
        g = {(s, e): label for s, e, label in bio_to_spans(gold, gold)}
        p = {(s, e): label for s, e, label in bio_to_spans(pred, pred)}
        for span, label in g.items():
            counts[label, p.get(span, "(missed)")] += 1
        for span, label in p.items():
            if span not in g:
                counts["(spurious)", label] += 1
    rows = sorted({r for r, _ in counts} - {"(spurious)"}) + ["(spurious)"]
    cols = sorted({c for _, c in counts} - {"(missed)"}) + ["(missed)"]
    return pd.DataFrame(
        [[counts[r, c] for c in cols] for r in rows], index=rows, columns=cols, dtype=int
    )


# The record lists of the training runs in progress (the innermost is the last)
_RECORDS: list[list[dict[str, Any]]] = []


def write_glove_vectors(folder: str | Path) -> Path:
    """Save a blank English pipeline holding GloVe 6B-50d as spaCy's static word vectors.

    The result is what ``train_spacy_ner(..., vectors=folder)`` (spaCy's ``paths.vectors``)
    reads. GloVe's 400k words are lowercase, and spaCy looks a token's vector up by its exact
    text, so each word is also stored Capitalised and UPPER-CASE, sharing the same row:
    "Paris" and "PARIS" get the vector of "paris". Returns `folder`.
    """
    from spacy.vectors import Vectors

    from nlpbook.embeddings import load_glove

    glove = load_glove()
    nlp = spacy.blank("en")
    strings = nlp.vocab.strings
    matrix = np.ascontiguousarray(glove.vectors, dtype=np.float32)  # (400_000, 50)
    vectors = Vectors(
        strings=strings, data=matrix, keys=[strings.add(w) for w in glove.index_to_key]
    )
    for row, word in enumerate(glove.index_to_key):
        for variant in {word.capitalize(), word.upper()} - {word}:
            if strings.add(variant) not in vectors.key2row:  # a word GloVe has on its own
                vectors.add(strings[variant], row=row)
    nlp.vocab.vectors = vectors
    nlp.to_disk(folder)
    return Path(folder)


@spacy.registry.loggers("nlpbook.HistoryLogger.v1")
def history_logger():
    """A spaCy training logger that prints nothing and keeps each evaluation's numbers.

    They go to the record list of the `train_spacy_ner` call in progress.
    """
    records = _RECORDS[-1] if _RECORDS else []

    def setup(nlp, stdout=None, stderr=None):
        def log_step(info: dict[str, Any] | None) -> None:
            if info is None:  # a step without evaluation
                return
            scores = info["other_scores"]
            records.append(
                dict(
                    step=info["step"],
                    epoch=info["epoch"],
                    seconds=info["seconds"],
                    words=info["words"],
                    loss=float(info["losses"].get("ner", float("nan"))),
                    dev_f1=scores.get("ents_f", 0.0),
                    dev_precision=scores.get("ents_p", 0.0),
                    dev_recall=scores.get("ents_r", 0.0),
                )
            )

        return log_step, lambda: None

    return setup


def train_spacy_ner(
    train: Sequence[Example],
    dev: Sequence[Example],
    *,
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    max_steps: int = 2000,
    max_epochs: int = 0,
    eval_frequency: int = 200,
    seed: int = 0,
    vectors: str | Path | None = None,
) -> Language:
    """Train a blank English tok2vec + NER pipeline with spaCy's config system and loop.

    Writes `train` and `dev` as DocBin files to a temporary folder, loads the config
    (default: ``CONFIG``, from ``spacy init config``) with `overrides` (dotted names, e.g.
    ``{"training.dropout": 0.2}``) on top of the paths, `max_steps` (optimizer updates;
    0: no limit), `max_epochs` (0: no limit), `eval_frequency` and `seed`, initialises the
    pipeline (``spacy.training.initialize.init_nlp``) and trains it
    (``spacy.training.loop.train``), evaluating entity F1 on `dev` every `eval_frequency`
    steps. `vectors`: a pipeline folder with static word vectors (``write_glove_vectors``)
    that the tok2vec layer then embeds beside its hashed features; the vectors stay fixed.
    Returns the checkpoint with the best dev F1, as ``spacy.load`` reads it from
    disk. ``nlp.meta["nlpbook"]`` holds ``history`` (one dict per evaluation: step, epoch,
    seconds, words, loss, dev_f1, dev_precision, dev_recall) and ``seconds`` (the whole
    call). Prints nothing.
    """
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train as train_loop

    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nlpbook-ner-") as tmp:
        folder = Path(tmp)
        vocab = spacy.blank("en").vocab
        to_docbin(train, vocab).to_disk(folder / "train.spacy")
        to_docbin(dev, vocab).to_disk(folder / "dev.spacy")
        settings = {
            "paths.train": str(folder / "train.spacy"),
            "paths.dev": str(folder / "dev.spacy"),
            "training.max_steps": max_steps,
            "training.max_epochs": max_epochs,
            "training.eval_frequency": eval_frequency,
            "system.seed": seed,
        }
        if vectors is not None:
            settings["paths.vectors"] = str(vectors)
            settings["components.tok2vec.model.embed.include_static_vectors"] = True
        settings.update(overrides or {})
        config = spacy.util.load_config(
            Path(str(config_path or CONFIG)), overrides=settings, interpolate=False
        )
        # the default console logger prints a table; this one keeps the numbers instead
        config["training"]["logger"] = {"@loggers": "nlpbook.HistoryLogger.v1"}
        quiet = io.StringIO()
        spacy_logger = logging.getLogger("spacy")
        level = spacy_logger.level
        spacy_logger.setLevel(logging.WARNING)
        try:
            nlp = init_nlp(config)
            _RECORDS.append(records)  # the loop resolves the logger, which takes this list
            try:
                (folder / "out").mkdir()
                train_loop(nlp, folder / "out", stdout=quiet, stderr=quiet)
            finally:
                _RECORDS.remove(records)
        finally:
            spacy_logger.setLevel(level)
        best = spacy.load(folder / "out" / "model-best")
    best.meta["nlpbook"] = dict(history=records, seconds=time.perf_counter() - start)
    return best
