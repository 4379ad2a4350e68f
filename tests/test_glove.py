"""GloVe: the co-occurrence counts by hand, the gradient against finite differences, and a
tiny corpus whose structure the vectors must find."""

import numpy as np
import pytest

from nlpbook.corpus import Vocab
from nlpbook.glove import GloVe, GloVeConfig, cooccurrence, glove_loss, weighting


def test_cooccurrence_by_hand_with_one_over_distance():
    # Sentence 1: 0 1 2 0; sentence 2: 1 2 (no window crosses the sentence boundary).
    X = cooccurrence([np.array([0, 1, 2, 0]), np.array([1, 2])], vocab_size=3, window=3)
    expected = np.array(
        [
            # (0,1) d=1 and d=2, (0,2) d=2 and d=1, (0,0) d=3 counted in both directions.
            [2 / 3, 1 + 1 / 2, 1 / 2 + 1],
            [1 + 1 / 2, 0, 1 + 1],
            [1 / 2 + 1, 1 + 1, 0],
        ]
    )
    np.testing.assert_allclose(X.toarray(), expected)


def test_cooccurrence_rejects_bad_input():
    with pytest.raises(ValueError, match="empty corpus"):
        cooccurrence([], vocab_size=3)
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, 3\)"):
        cooccurrence([np.array([0, 3])], vocab_size=3)


def test_weighting_caps_at_one():
    np.testing.assert_allclose(
        weighting(np.array([1.0, 16.0, 81.0, 1000.0]), x_max=81, alpha=0.75),
        [1 / 27, 8 / 27, 1.0, 1.0],
    )


def test_glove_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    V, D, B = 5, 3, 12
    W, C = rng.standard_normal((2, V, D))
    b, c = rng.standard_normal((2, V))
    rows, cols = rng.integers(0, V, size=(2, B))  # repeated rows: gradients must add up
    x = rng.uniform(0.5, 20, size=B)
    params = [W, C, b, c]
    _, grads = glove_loss(W, C, b, c, rows, cols, x, x_max=10, alpha=0.75)
    eps = 1e-6
    for p, grad in zip(params, grads, strict=True):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = glove_loss(W, C, b, c, rows, cols, x, x_max=10, alpha=0.75)[0]
            p[idx] = old - eps
            down = glove_loss(W, C, b, c, rows, cols, x, x_max=10, alpha=0.75)[0]
            p[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_glove_loss_by_hand():
    # One entry, zero vectors and biases: J = 1/2 f(x) (log x)^2 with f(e) = (e/e)^a = 1.
    z = np.zeros((2, 2))
    loss, _ = glove_loss(z, z, np.zeros(2), np.zeros(2), [0], [1], [np.e], x_max=np.e)
    assert loss == pytest.approx(0.5)
    with pytest.raises(ValueError, match="must be positive"):
        glove_loss(z, z, np.zeros(2), np.zeros(2), [0], [1], [0.0])


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_glove_training_puts_related_words_closer():
    rng = np.random.default_rng(0)
    groups = [
        ["cat", "dog", "cow", "eats", "fur", "barks"],
        ["car", "bus", "van", "road", "fuel", "engine"],
    ]
    sents = [list(rng.choice(groups[rng.integers(2)], size=6)) for _ in range(2_000)]
    vocab = Vocab.build(sents, min_count=1)
    X = cooccurrence(vocab.encode(sents), vocab_size=len(vocab), window=3)
    model = GloVe(vocab, GloVeConfig(dim=8, epochs=30, batch_size=64, x_max=10), seed=0)
    history = model.fit(X, progress=False)
    assert history.loss[-1] < 0.2 * history.loss[0]
    vec = {w: model.vectors[vocab.id(w)] for w in vocab.words}
    related = min(_cos(vec["cat"], vec["dog"]), _cos(vec["car"], vec["bus"]))
    unrelated = max(_cos(vec["cat"], vec["car"]), _cos(vec["dog"], vec["bus"]))
    assert related > unrelated + 0.5


def test_glove_is_deterministic_and_checks_shapes():
    vocab = Vocab.build([["a", "b", "c", "a"]], min_count=1)
    X = cooccurrence(vocab.encode([["a", "b", "c", "a"]]), vocab_size=3, window=2)

    def train(seed):
        model = GloVe(vocab, GloVeConfig(dim=4, epochs=3, batch_size=2), seed=seed)
        model.fit(X, progress=False)
        return model.vectors

    np.testing.assert_array_equal(train(1), train(1))
    assert not np.array_equal(train(1), train(2))
    with pytest.raises(ValueError, match=r"X has shape \(2, 2\), expected \(3, 3\)"):
        GloVe(vocab, GloVeConfig(dim=4)).fit(np.ones((2, 2)), progress=False)
