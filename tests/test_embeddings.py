"""Evaluation of word vectors on hand-made vectors with hand-computed answers, agreement
with gensim's own evaluation, and the pretrained GloVe asset."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nlpbook import data
from nlpbook.embeddings import (
    analogies,
    as_keyed_vectors,
    average_vectors,
    load_glove,
    neighbours,
    similarity,
    solve_analogy,
)

# Unit vectors at known angles: cos(a, b) = cos(30 deg), cos(a, c) = cos(60), cos(a, d) = 0.
ANGLES = {"a": 0, "b": 30, "c": 60, "d": 90}
WORDS = list(ANGLES)
MATRIX = np.array([[np.cos(np.radians(t)), np.sin(np.radians(t))] for t in ANGLES.values()])


def test_similarity_spearman_by_hand():
    # Cosines: ab .866, ac .5, ad 0, bd .5 (tie with ac).
    # Human scores 4, 1, 2, 3 rank 4, 1, 2, 3; cosines rank 4, 2.5, 1, 2.5.
    # Deviations from the mean rank 2.5: (1.5, -1.5, -.5, .5) and (1.5, 0, -1.5, 0):
    # rho = (2.25 + 0.75) / sqrt(5 * 4.5) = 0.6325...
    pairs = [("a", "b", 4.0), ("a", "c", 1.0), ("a", "d", 2.0), ("b", "d", 3.0), ("a", "zzz", 5.0)]
    result = similarity((WORDS, MATRIX), pairs, name="toy")
    assert result.rho == pytest.approx(3 / np.sqrt(22.5))
    assert (result.pairs, result.oov) == (4, 1)
    assert result.coverage == pytest.approx(0.8)


def test_similarity_with_too_few_known_pairs_fails_clearly():
    with pytest.raises(ValueError, match="only 1 of 2 pairs of toy"):
        similarity((WORDS, MATRIX), [("a", "b", 1.0), ("a", "x", 2.0)], name="toy")


def test_similarity_agrees_with_gensim_on_random_vectors():
    rng = np.random.default_rng(0)
    pairs = data.word_similarity("ws353")
    words = sorted({w for p in pairs for w in p[:2]})[:300]  # leaves many pairs out of vocabulary
    kv = as_keyed_vectors((words, rng.standard_normal((len(words), 20))))
    ours = similarity(kv, pairs)
    # gensim reads the same benchmark from its own copy of the file format.
    path = data.fetch("word-similarity/EN-WS-353-ALL.txt")
    spearman = kv.evaluate_word_pairs(path, delimiter="\t", dummy4unknown=False)[1]
    assert ours.rho == pytest.approx(spearman.statistic, abs=1e-6)


def test_neighbours_and_analogy_by_hand():
    assert [w for w, _ in neighbours((WORDS, MATRIX), "a", topn=3)] == ["b", "c", "d"]
    top = neighbours((WORDS, MATRIX), np.array([0.0, 1.0]), topn=1)
    assert top[0][0] == "d" and top[0][1] == pytest.approx(1.0)
    assert [w for w, _ in neighbours((WORDS, MATRIX), "a", topn=5, restrict_vocab=2)] == ["b"]
    # b - a + c points at 90 degrees (d) exactly in this plane.
    assert solve_analogy((WORDS, MATRIX), "a", "b", "c", topn=1)[0][0] == "d"


def test_analogy_accuracy_by_hand():
    questions = {
        "plane": [("a", "b", "c", "d"), ("b", "c", "a", "b"), ("a", "b", "c", "zzz")],
        "gram-plane": [("a", "c", "b", "d")],
    }
    # q1: b - a + c points at 90 deg -> d (correct). q2 asks for b, one of its own
    # question words, which 3CosAdd excludes -> wrong. q3: skipped (zzz).
    # q4: c - a + b points at 90 deg -> d (correct).
    result = analogies((WORDS, MATRIX), questions)
    assert result.sections == {"plane": (1, 2), "gram-plane": (1, 1)}
    assert result.skipped == 1
    assert result.accuracy == pytest.approx(2 / 3)
    table = result.table()
    assert table.loc["semantic", "accuracy"] == pytest.approx(0.5)
    assert table.loc["syntactic", "accuracy"] == pytest.approx(1.0)
    # Restricted to the first 3 words, every question using d is skipped.
    restricted = analogies((WORDS, MATRIX), questions, restrict_vocab=3)
    assert restricted.sections == {"plane": (0, 1), "gram-plane": (0, 0)}
    assert restricted.skipped == 3


def test_unknown_words_and_mismatched_dimensions_fail_clearly():
    with pytest.raises(KeyError, match="'zebra' is not among the 4 words"):
        neighbours((WORDS, MATRIX), "zebra")
    with pytest.raises(ValueError, match=r"query vector has shape \(3,\), expected \(2,\)"):
        neighbours((WORDS, MATRIX), np.ones(3))
    with pytest.raises(ValueError, match="3 words but 4 rows"):
        as_keyed_vectors((WORDS[:3], MATRIX))
    with pytest.raises(TypeError, match="expected gensim KeyedVectors"):
        as_keyed_vectors(MATRIX)


def test_average_vectors():
    feats = average_vectors((WORDS, MATRIX), [["a", "d", "unknown"], [], ["b"]])
    np.testing.assert_allclose(feats, [[0.5, 0.5], [0, 0], MATRIX[1]], atol=1e-7)


def test_average_vectors_with_fasttext_subwords():
    # a tiny fastText model: "cats" never occurs, but its n-grams do
    from gensim.models import FastText

    corpus = [["the", "cat", "sat", "on", "the", "mat"], ["a", "cat", "and", "a", "hat"]] * 20
    model = FastText(corpus, vector_size=8, min_count=1, min_n=3, max_n=4, bucket=1_000,
                     epochs=2, workers=1, seed=0)  # fmt: skip
    kv = model.wv
    assert "cats" not in kv.key_to_index
    skipped = average_vectors(kv, [["cat", "cats"], ["cats"]])
    np.testing.assert_allclose(skipped[0], kv["cat"], rtol=1e-6)  # the unseen word is left out
    np.testing.assert_array_equal(skipped[1], 0)
    built = average_vectors(kv, [["cat", "cats"], ["cats"]], subwords=True)
    np.testing.assert_allclose(built[0], (kv["cat"] + kv["cats"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(built[1], kv["cats"], rtol=1e-6)
    assert np.abs(built[1]).sum() > 0
    with pytest.raises(ValueError, match="subwords=True needs fastText vectors"):
        average_vectors((WORDS, MATRIX), [["a"]], subwords=True)


def test_pretrained_glove_loads_and_solves_king_queen():
    kv = load_glove()
    assert isinstance(kv, KeyedVectors)
    assert (len(kv), kv.vector_size) == (400_000, 50)
    assert kv.index_to_key[:3] == ["the", ",", "."]
    # Stanford's published vector for "the" begins 0.418 0.24968 -0.41242.
    np.testing.assert_allclose(kv["the"][:3], [0.418, 0.24968, -0.41242], rtol=1e-6)
    top = [w for w, _ in solve_analogy(kv, "man", "king", "woman", topn=3)]
    assert "queen" in top
