"""Semantic-search helpers on hand-made vectors with hand-computed answers, against a
brute-force ranking, and sentence encoding with a tiny random BERT (batched == one by one)."""

import numpy as np
import pytest
import torch

from nlpbook.retrieval import (
    cosine_similarity,
    cosine_top_k,
    encode,
    normalize,
    top_k,
    top_k_accuracy,
)

# Documents at known angles: 0, 30, 60 and 90 degrees (lengths differ on purpose), so the
# cosines with a query at 0 degrees are 1, cos 30, cos 60 = 0.5 and 0.
ANGLES = np.radians([0, 30, 60, 90])
DOCS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1) * np.array([[1.0], [2.0], [0.5], [3.0]])


def test_normalize_by_hand_and_zero_rows_stay_zero():
    out = normalize([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])
    assert out.dtype == np.float32


def test_cosine_similarity_by_hand():
    sims = cosine_similarity([[1.0, 0.0], [0.0, 5.0]], DOCS)
    expected = [[1.0, np.cos(np.radians(30)), 0.5, 0.0], [0.0, 0.5, np.cos(np.radians(30)), 1.0]]
    np.testing.assert_allclose(sims, expected, atol=1e-6)


def test_cosine_similarity_accepts_torch_tensors():
    sims = cosine_similarity(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0], [1.0, -1.0]]))
    np.testing.assert_allclose(sims, [[1.0, 0.0]], atol=1e-6)


def test_top_k_by_hand():
    # A query at 40 degrees: 30 (10 off) beats 60 (20 off) beats 0 (40 off) beats 90 (50 off).
    query = [[np.cos(np.radians(40)), np.sin(np.radians(40))]]
    scores, indices = cosine_top_k(query, DOCS, k=3)
    assert indices.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(scores, [np.cos(np.radians([10, 20, 40]))], atol=1e-6)


def test_top_k_ties_keep_the_lower_index_first():
    # A query at 45 degrees is as close to [1, 0] as to [0, 1]; duplicates tie exactly.
    docs = [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    _, indices = cosine_top_k([[1.0, 1.0], [0.0, 1.0]], docs, k=4)
    assert indices.tolist() == [[0, 1, 2, 3], [0, 2, 1, 3]]


def test_top_k_of_a_score_matrix_by_hand():
    scores, indices = top_k([[0.1, 0.9, 0.5], [0.3, 0.3, 0.0], [-1.0, 2.0, 2.0]], k=2)
    assert indices.tolist() == [[1, 2], [0, 1], [1, 2]]
    np.testing.assert_allclose(scores, [[0.9, 0.5], [0.3, 0.3], [2.0, 2.0]])
    with pytest.raises(ValueError, match=r"number of documents \(3\), got 4"):
        top_k([[0.1, 0.9, 0.5]], k=4)
    with pytest.raises(ValueError, match=r"scores must be a 2-D array"):
        top_k([0.1, 0.9, 0.5], k=1)


def test_top_k_of_a_zero_query_scores_zero():
    scores, _ = cosine_top_k([[0.0, 0.0]], DOCS, k=2)
    assert scores.tolist() == [[0.0, 0.0]]


def test_top_k_agrees_with_brute_force_and_does_not_depend_on_batch_size():
    rng = np.random.default_rng(0)
    queries, docs = rng.standard_normal((50, 8)), rng.standard_normal((30, 8))
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        docs / np.linalg.norm(docs, axis=1, keepdims=True)
    ).T
    scores, indices = cosine_top_k(queries, docs, k=5)
    np.testing.assert_array_equal(indices, np.argsort(-sims, axis=1)[:, :5])
    np.testing.assert_allclose(scores, -np.sort(-sims, axis=1)[:, :5], atol=1e-5)
    scores7, indices7 = cosine_top_k(queries, docs, k=5, batch_size=7)
    np.testing.assert_array_equal(indices7, indices)
    np.testing.assert_allclose(scores7, scores, atol=1e-6)  # float32 matmuls block differently


@pytest.mark.parametrize(
    "queries, docs, k, message",
    [
        ([[1.0, 0.0]], [[1.0, 0.0, 0.0]], 1, "queries have 2 dimensions but documents have 3"),
        ([[1.0, 0.0]], DOCS, 0, r"k must be between 1 and the number of documents \(4\), got 0"),
        ([[1.0, 0.0]], DOCS, 5, r"k must be between 1 and the number of documents \(4\), got 5"),
        ([1.0, 0.0], DOCS, 1, r"queries must be a 2-D array \(rows, dims\), got shape \(2,\)"),
        ([[np.nan, 0.0]], DOCS, 1, "queries contains NaN or infinite values"),
    ],
)
def test_top_k_fails_clearly(queries, docs, k, message):
    with pytest.raises(ValueError, match=message):
        cosine_top_k(queries, docs, k=k)


def test_top_k_accuracy_by_hand():
    # Row 0 finds 2 second, row 1 finds 1 first, row 2 never finds 0.
    ranked = np.array([[0, 2], [1, 0], [2, 1]])
    assert top_k_accuracy(ranked, [2, 1, 0], k=1) == pytest.approx(1 / 3)
    assert top_k_accuracy(ranked, [2, 1, 0], k=2) == pytest.approx(2 / 3)
    assert top_k_accuracy(ranked, [0, 1, 2], k=1) == 1.0


def test_search_then_accuracy_end_to_end():
    # Each query is a noisy copy of one document: every query finds its own document first.
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((20, 16))
    targets = rng.integers(0, 20, size=40)
    queries = docs[targets] + 0.01 * rng.standard_normal((40, 16))
    _, indices = cosine_top_k(queries, docs, k=3)
    assert top_k_accuracy(indices, targets, k=1) == 1.0


@pytest.mark.parametrize(
    "indices, targets, k, message",
    [
        ([[0, 1]], [0, 1], 1, "1 rows of indices but 2 targets"),
        ([[0, 1]], [0], 3, r"k must be between 1 and the number of ranked documents \(2\), got 3"),
        ([[0, 1]], [-1], 1, r"targets must be document indices \(>= 0\)"),
        ([0, 1], [0], 1, "indices must be a 2-D integer array"),
        ([[0.0, 1.0]], [0], 1, "indices must be a 2-D integer array"),
        ([[0, 1]], [[0]], 1, "targets must be a 1-D integer array"),
        (np.zeros((0, 2), dtype=int), np.zeros(0, dtype=int), 1, "no queries to score"),
    ],
)
def test_top_k_accuracy_fails_clearly(indices, targets, k, message):
    with pytest.raises(ValueError, match=message):
        top_k_accuracy(indices, targets, k=k)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A random 2-layer BERT with a 20-word WordPiece vocabulary (no downloads)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = "the cat dog sat on mat a ran far away quickly ##s".split()
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    return tokenizer, BertModel(config).eval()


TEXTS = ["the cat sat on the mat", "a dog", "the dogs ran far far away quickly", "cat"]


def test_encode_batched_equals_one_at_a_time_in_input_order(tiny_encoder):
    tokenizer, model = tiny_encoder
    batched = encode(TEXTS, tokenizer=tokenizer, model=model, batch_size=3)
    for text, row in zip(TEXTS, batched, strict=True):
        alone = encode([text], tokenizer=tokenizer, model=model)
        np.testing.assert_allclose(row, alone[0], atol=1e-5)


def test_encode_pools_the_real_tokens_by_hand(tiny_encoder):
    tokenizer, model = tiny_encoder
    batch = tokenizer(TEXTS[1], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state[0]  # (T, C): [CLS] a dog [SEP]
    mean = encode([TEXTS[1]], tokenizer=tokenizer, model=model, pooling="mean")[0]
    cls = encode([TEXTS[1]], tokenizer=tokenizer, model=model, pooling="cls")[0]
    np.testing.assert_allclose(mean, hidden.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(cls, hidden[0].numpy(), atol=1e-5)


def test_encode_truncates_to_max_length(tiny_encoder):
    tokenizer, model = tiny_encoder
    batch = tokenizer("the cat sat", return_tensors="pt")  # [CLS] the cat sat [SEP]
    short = encode(["the cat sat on the mat"], tokenizer=tokenizer, model=model, max_length=5)
    with torch.no_grad():
        expected = model(**batch).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(short[0], expected.numpy(), atol=1e-5)


def test_encode_fails_clearly(tiny_encoder):
    tokenizer, model = tiny_encoder
    with pytest.raises(ValueError, match="pooling must be one of mean, cls, got 'max'"):
        encode(TEXTS, tokenizer=tokenizer, model=model, pooling="max")
    with pytest.raises(TypeError, match="not one string"):
        encode("the cat", tokenizer=tokenizer, model=model)
    with pytest.raises(ValueError, match="no texts given"):
        encode([], tokenizer=tokenizer, model=model)
