"""Zero-shot cross-lingual transfer: the translated SST-2 sentences and the transfer measure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from nlpbook import data
from nlpbook.crosslingual import (
    TranslatedSentence,
    binomial_interval,
    sst2_train_sample,
    sst2_translated,
    zero_shot_transfer,
)

HEADER = "dev_index\tlabel\ten\tde\tfr\n"
DEV = ["a fine film .", "a dull film .", "bad ."]


def _write(tmp_path, body: str):
    path = tmp_path / "translated.tsv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_translated_sst2_matches_sst2_dev():
    rows = sst2_translated()
    texts, labels = data.sst2("dev")
    assert len(rows) == 200
    assert sum(r.label for r in rows) == 100  # balanced: 100 positive, 100 negative
    assert [r.dev_index for r in rows] == sorted({r.dev_index for r in rows})  # dev order, unique
    for r in rows:
        assert r.en == texts[r.dev_index] and r.label == labels[r.dev_index]
        assert len(r.en.split()) <= 30
        for text in (r.de, r.fr):  # sentence case, not SST-2's lowercase look
            assert text.strip() == text and "\t" not in text
            assert not text[0].islower(), text
    assert rows[1] == TranslatedSentence(
        4, 0, "it 's slow -- very , very slow .", "Er ist langsam – sehr, sehr langsam.",
        "C'est lent – très, très lent.",
    )  # fmt: skip
    assert rows[1].text("fr") == rows[1].fr
    with pytest.raises(ValueError, match="language must be one of"):
        rows[1].text("es")


def test_loader_reads_a_small_file(tmp_path):
    path = _write(tmp_path, "0\t1\ta fine film .\tEin guter Film.\tUn bon film.\n")
    assert sst2_translated(path=path, dev_texts=DEV) == [
        TranslatedSentence(0, 1, "a fine film .", "Ein guter Film.", "Un bon film.")
    ]


@pytest.mark.parametrize(
    "body, message",
    [
        ("0\t1\ta fine film .\tEin guter Film.\n", r"line 2: expected 5 tab-separated fields"),
        ("0\t1\ta fine film .\tEin guter Film.\t \n", r"line 2: empty field fr"),
        ("0\tpos\ta fine film .\tEin guter Film.\tUn bon film.\n", r"line 2: label must be 0 or 1"),
        ("7\t1\ta fine film .\tEin guter Film.\tUn bon film.\n", r"line 2: dev_index must be"),
        (
            "0\t1\ta fine film .\tEin guter Film.\tUn bon film.\n"
            "1\t0\ta dull movie .\tEin öder Film.\tUn film ennuyeux.\n",
            r"line 3: en is not SST-2 dev sentence 1",
        ),
        (
            "0\t1\ta fine film .\tEin guter Film.\tUn bon film.\n"
            "0\t1\ta fine film .\tEin guter Film.\tUn bon film.\n",
            r"a dev_index appears twice",
        ),
        ("", r"no sentences"),
    ],
)
def test_malformed_file_names_the_line(tmp_path, body, message):
    with pytest.raises(ValueError, match=message):
        sst2_translated(path=_write(tmp_path, body), dev_texts=DEV)


def test_malformed_header(tmp_path):
    path = tmp_path / "translated.tsv"
    path.write_text("index\tlabel\ten\n0\t1\tx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        sst2_translated(path=path, dev_texts=DEV)


def test_zero_shot_transfer_on_fake_embeddings():
    # "English" training vectors: the label is the sign of the first coordinate
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 4))
    labels = (train[:, 0] > 0).astype(int)
    en = np.array([[2.0, 0, 0, 0], [-2.0, 0, 0, 0], [1.5, 1, 0, 0], [-1.5, 0, 1, 0]])
    truth = np.array([1, 0, 1, 0])
    # "German": the same sentences shifted by 1.8 along the first axis; only the last one
    # (-1.5 -> 0.3) crosses the English boundary and is labelled positive
    de = en + np.array([1.8, 0, 0, 0])
    tests = {"en": (en, truth), "de": (de, truth), "dev": (train[:4], labels[:4])}
    result = zero_shot_transfer(train, labels, tests, parallel=("en", "de"))
    assert result.accuracy["en"] == 1.0
    assert result.predictions["de"].tolist() == [1, 0, 1, 1]
    assert result.accuracy["de"] == 0.75
    assert result.agreement == {"de": 0.75}  # "dev" is not a translation: no agreement
    # the classifier is scikit-learn's, fitted on the training vectors only
    assert result.classifier.predict(en).tolist() == truth.tolist()
    assert zero_shot_transfer(train, labels, tests).agreement == {}


def test_zero_shot_transfer_errors():
    train, labels = np.eye(4), [0, 1, 0, 1]
    with pytest.raises(ValueError, match="both classes"):
        zero_shot_transfer(train, [1, 1, 1, 1], {"en": (train, labels)})
    with pytest.raises(ValueError, match="expected 4 labels"):
        zero_shot_transfer(train, [0, 1], {"en": (train, labels)})
    with pytest.raises(ValueError, match="3 dimensions"):
        zero_shot_transfer(train, labels, {"en": (np.ones((2, 3)), [0, 1])})
    with pytest.raises(ValueError, match="parallel set 'en'"):
        zero_shot_transfer(train, labels, {"de": (train, labels)}, parallel=("en", "de"))
    with pytest.raises(ValueError, match="same rows"):
        tests = {"en": (train, labels), "de": (train[:2], labels[:2])}
        zero_shot_transfer(train, labels, tests, parallel=("en", "de"))
    with pytest.raises(ValueError, match="empty"):
        zero_shot_transfer(train, labels, {})


@pytest.mark.parametrize("k, n", [(160, 200), (100, 200), (3, 10), (0, 50), (50, 50)])
def test_binomial_interval_is_wilson(k, n):
    ours = binomial_interval(k / n, n)
    theirs = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-5)  # z = 1.96 vs 1.95996...


def test_binomial_interval_errors():
    with pytest.raises(ValueError, match="positive"):
        binomial_interval(0.5, 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        binomial_interval(1.5, 10)


def test_train_sample_is_seeded():
    texts, labels = sst2_train_sample(50, seed=1)
    again, _ = sst2_train_sample(50, seed=1)
    other, _ = sst2_train_sample(50, seed=2)
    train, train_labels = data.sst2("train")
    assert texts == again and texts != other and len(set(texts)) == len(texts) == 50
    assert [train_labels[train.index(t)] for t in texts[:5]] == labels[:5].tolist()
    assert labels.shape == (50,) and set(labels.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="n must be between"):
        sst2_train_sample(0, seed=0)
