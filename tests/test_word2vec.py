"""word2vec in NumPy: the pieces against hand-worked values, the gradient against finite
differences, and training on a tiny corpus whose structure the vectors must find."""

import numpy as np
import pytest

from nlpbook.corpus import Vocab, sentences
from nlpbook.word2vec import (
    Word2Vec,
    Word2VecConfig,
    cbow_windows,
    keep_probabilities,
    negative_sampling_loss,
    noise_distribution,
    row_sums,
    scatter_add,
    sgns_loss,
    skipgram_pairs,
    unigram_table,
)


def test_sentences_and_vocab():
    sents = sentences(" = Title = \n The cat , the dog . A cat @-@ like dog !\n")
    assert sents == [["the", "cat", "the", "dog"], ["a", "cat", "like", "dog"]]
    vocab = Vocab.build(sents, min_count=2)
    # Frequency first, ties alphabetical.
    assert vocab.words == ("cat", "dog", "the")
    assert vocab.counts.tolist() == [2, 2, 2]
    assert [s.tolist() for s in vocab.encode(sents)] == [[2, 0, 2, 1], [0, 1]]
    with pytest.raises(KeyError, match="'a' is not in the vocabulary"):
        vocab.id("a")


def test_empty_corpus_and_too_high_min_count_fail_clearly():
    with pytest.raises(ValueError, match="empty corpus"):
        Vocab.build([], min_count=1)
    with pytest.raises(ValueError, match="no word occurs 3 times"):
        Vocab.build([["a", "b"]], min_count=3)
    vocab = Vocab.build([["a", "b"]], min_count=1)
    with pytest.raises(ValueError, match="empty corpus"):
        Word2Vec(vocab, Word2VecConfig(dim=4)).fit(vocab.encode([["zzz"]]), progress=False)


def test_keep_probabilities_by_hand():
    # f = 0.5 with t = 0.02: (sqrt(0.5 / 0.02) + 1) * 0.02 / 0.5 = 6 * 0.04 = 0.24.
    p = keep_probabilities(np.array([5, 5]), sample=0.02)
    assert p == pytest.approx([0.24, 0.24])
    assert keep_probabilities(np.array([1, 1_000_000]), sample=1e-3)[0] == 1.0
    assert (keep_probabilities(np.array([3, 9]), sample=0) == 1).all()


def test_noise_table_matches_unigram_to_the_three_quarters():
    probs = noise_distribution(np.array([81, 16, 1]), exponent=0.75)  # 27 : 8 : 1
    assert probs == pytest.approx(np.array([27, 8, 1]) / 36)
    table = unigram_table(probs, size=36_000)
    assert np.bincount(table).tolist() == [27_000, 8_000, 1_000]


def test_skipgram_pairs_full_window_and_sentence_boundaries():
    ids = np.array([10, 11, 12, 20, 21])
    sentence = np.array([0, 0, 0, 1, 1])
    # window=1 draws reach 1 for every centre, so every neighbour inside a sentence pairs.
    c, o = skipgram_pairs(ids, sentence, window=1, rng=np.random.default_rng(0))
    expected = {(10, 11), (11, 10), (11, 12), (12, 11), (20, 21), (21, 20)}
    assert set(zip(c.tolist(), o.tolist(), strict=True)) == expected
    assert len(c) == len(expected)  # no pair crosses from 12 to 20


def test_skipgram_window_shrinks_like_word2vec():
    # With window=2 each centre keeps distance-2 pairs with probability 1/2.
    rng = np.random.default_rng(0)
    ids = np.arange(10_000)
    c, o = skipgram_pairs(ids, np.zeros_like(ids), window=2, rng=rng)
    far = np.abs(c - o) == 2
    assert far.sum() / (2 * (len(ids) - 2)) == pytest.approx(0.5, abs=0.02)


def test_cbow_windows_mask():
    c, ctx, mask = cbow_windows(
        np.array([5, 6, 7]), np.array([0, 0, 1]), window=1, rng=np.random.default_rng(0)
    )
    assert c.tolist() == [5, 6]  # 7 is alone in its sentence
    assert (ctx * mask).tolist() == [[0, 6], [5, 0]]


def test_row_sums_and_scatter_add_equal_np_add_at():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 7, size=50)
    cols = rng.integers(0, 20, size=50)
    weights = rng.standard_normal(50)
    values = rng.standard_normal((20, 3))
    expected = np.zeros((7, 3))
    np.add.at(expected, rows, weights[:, None] * values[cols])
    got = np.zeros((7, 3))
    scatter_add(got, rows, values, cols=cols, weights=weights)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    touched, sums = row_sums(7, rows, values, cols=cols, weights=weights)
    assert touched.tolist() == sorted(set(rows.tolist()))
    np.testing.assert_allclose(sums, expected[touched], atol=1e-12)
    with pytest.raises(ValueError, match=r"values must be \(B, 3\)"):
        scatter_add(got, rows, np.ones((50, 4)))


def test_negative_sampling_loss_by_hand():
    # h . u = 0 for every target: sigma = 1/2, so L = (1 + K) log 2 and g = (-1/2, 1/2).
    h = np.array([[1.0, 0.0]])
    targets = np.array([[[0.0, 3.0], [0.0, -2.0]]])
    loss, grad_h, g = negative_sampling_loss(h, targets)
    assert loss == pytest.approx(2 * np.log(2))
    np.testing.assert_allclose(g, [[-0.5, 0.5]])
    np.testing.assert_allclose(grad_h, [[0.0, -0.5 * 3.0 + 0.5 * -2.0]])


def test_sgns_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    V, D, B, K = 6, 4, 5, 3
    W_in, W_out = rng.standard_normal((2, V, D))
    centres = rng.integers(0, V, size=B)
    contexts = rng.integers(0, V, size=B)
    negatives = rng.integers(0, V, size=(B, K))  # repeats on purpose: gradients must add up
    _, grad_in, grad_out = sgns_loss(W_in, W_out, centres, contexts, negatives)
    eps = 1e-6
    for W, grad in ((W_in, grad_in), (W_out, grad_out)):
        numeric = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + eps
            up = sgns_loss(W_in, W_out, centres, contexts, negatives)[0]
            W[idx] = old - eps
            down = sgns_loss(W_in, W_out, centres, contexts, negatives)[0]
            W[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_sgns_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must have the same shape"):
        sgns_loss(np.zeros((3, 2)), np.zeros((3, 4)), [0], [1], np.zeros((1, 2), int))
    with pytest.raises(ValueError, match="2 centres, 1 contexts"):
        sgns_loss(np.zeros((3, 2)), np.zeros((3, 2)), [0, 1], [1], np.zeros((1, 2), int))


def _toy_corpus(n: int, seed: int) -> list[list[str]]:
    """Animals share contexts with animals, vehicles with vehicles; nothing else links them."""
    rng = np.random.default_rng(seed)
    animals = ["cat", "dog", "horse", "cow"]
    vehicles = ["car", "bus", "train", "truck"]
    animal_ctx = ["eats", "runs", "barks", "sleeps", "fur"]
    vehicle_ctx = ["drives", "engine", "wheels", "road", "fuel"]
    out = []
    for _ in range(n):
        nouns, ctx = (animals, animal_ctx) if rng.random() < 0.5 else (vehicles, vehicle_ctx)
        out.append([rng.choice(ctx), rng.choice(nouns), rng.choice(ctx), rng.choice(nouns)])
    return out


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_training_puts_related_words_closer(arch):
    sents = _toy_corpus(3_000, seed=0)
    vocab = Vocab.build(sents, min_count=1)
    config = Word2VecConfig(arch=arch, dim=16, window=2, epochs=3, sample=0, batch_size=256)
    model = Word2Vec(vocab, config, seed=0)
    history = model.fit(vocab.encode(sents), progress=False)
    assert history.loss[-1] < history.loss[0]
    vec = {w: model.vectors[vocab.id(w)] for w in vocab.words}
    related = [_cos(vec["cat"], vec["dog"]), _cos(vec["car"], vec["bus"])]
    unrelated = [_cos(vec["cat"], vec["car"]), _cos(vec["dog"], vec["bus"])]
    assert min(related) > max(unrelated) + 0.3


def test_training_is_deterministic_under_a_seed():
    sents = _toy_corpus(300, seed=1)
    vocab = Vocab.build(sents, min_count=1)
    config = Word2VecConfig(dim=8, epochs=1, batch_size=64)

    def train(seed):
        model = Word2Vec(vocab, config, seed=seed)
        model.fit(vocab.encode(sents), progress=False)
        return model.vectors

    np.testing.assert_array_equal(train(3), train(3))
    assert not np.array_equal(train(3), train(4))


def test_learning_rate_decays_linearly_to_min_lr():
    sents = _toy_corpus(400, seed=2)
    vocab = Vocab.build(sents, min_count=1)
    config = Word2VecConfig(dim=8, epochs=2, lr=0.05, min_lr=0.001, chunk_words=200)
    history = Word2Vec(vocab, config, seed=0).fit(vocab.encode(sents), progress=False)
    assert np.all(np.diff(history.lr) < 0)
    assert history.lr[-1] == pytest.approx(0.001)
    assert history.words == 2 * sum(len(s) for s in sents)


def test_config_and_ids_are_checked():
    with pytest.raises(ValueError, match="arch must be"):
        Word2VecConfig(arch="glove")
    with pytest.raises(ValueError, match="dim must be at least 1"):
        Word2VecConfig(dim=0)
    vocab = Vocab.build([["a", "b"]], min_count=1)
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, 2\)"):
        Word2Vec(vocab, Word2VecConfig(dim=4)).fit([np.array([0, 5])], progress=False)
