"""Vocabulary, padding and the recurrent sentence classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from nlpbook import fit, set_seed
from nlpbook.textclf import (
    ClassificationBatches,
    ClassifierConfig,
    RNNClassifier,
    TokenVocab,
    accuracy,
    bucket_batches,
    embedding_matrix,
    pad_batch,
    tokenize,
    train_classifier,
)


def test_tokenize_splits_words_and_punctuation():
    assert tokenize("It's a GREAT film, isn't it?") == [
        "it's", "a", "great", "film", ",", "isn't", "it", "?",
    ]  # fmt: skip
    assert tokenize("") == []
    with pytest.raises(TypeError):
        tokenize(["not", "a", "string"])


def test_vocab_maps_unknown_words_to_unk_and_rejects_empty_sentences():
    vocab = TokenVocab.build([["a", "b", "a"], ["b", "a", "c"]], min_count=2, specials=["<eos>"])
    assert vocab.tokens == ("<pad>", "<unk>", "<eos>", "a", "b")
    assert vocab.encode(["a", "c", "zebra", "b"]) == [3, 1, 1, 4]
    assert vocab.decode(vocab.encode(["b", "a"])) == ["b", "a"]
    with pytest.raises(ValueError, match="empty sentence"):
        vocab.encode([])
    with pytest.raises(TypeError, match="tokenize"):
        vocab.encode("a b")
    with pytest.raises(IndexError, match="outside the vocabulary"):
        vocab.decode([5])
    with pytest.raises(ValueError, match="first tokens"):
        TokenVocab(("a", "<pad>", "<unk>"))


def test_pad_batch_and_its_errors():
    ids, lengths = pad_batch([[4], [5, 6, 7], [8, 9]], pad_id=0)
    assert ids.tolist() == [[4, 0, 0], [5, 6, 7], [8, 9, 0]]
    assert lengths.tolist() == [1, 3, 2]
    with pytest.raises(ValueError, match="sequence 1 of the batch is empty"):
        pad_batch([[1], []])
    with pytest.raises(ValueError, match="empty batch"):
        pad_batch([])


def test_bucket_batches_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000)
    batches = bucket_batches(lengths, batch_size=10, seed=1)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.2 * np.ptp(lengths)  # sorted within chunks: little padding
    assert [b.tolist() for b in batches] == [
        b.tolist() for b in bucket_batches(lengths, batch_size=10, seed=1)
    ]


@pytest.mark.parametrize(
    ("cell", "pooling"), [("rnn", "last"), ("lstm", "last"), ("gru", "last"), ("lstm", "max")]
)
def test_classifier_ignores_padding(cell, pooling):
    """A sentence scored alone or padded inside a batch gets the same logits (1e-5)."""
    torch.manual_seed(0)
    model = RNNClassifier(
        ClassifierConfig(vocab_size=30, hidden_size=16, cell=cell, pooling=pooling)
    ).eval()
    sentences = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    ids, lengths = pad_batch(sentences)
    batched, _ = model(ids, lengths)
    for row, sentence in enumerate(sentences):
        alone, _ = model(torch.tensor([sentence]), torch.tensor([len(sentence)]))
        torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)


def _order_task(*, seed: int) -> tuple[list[list[int]], list[int]]:
    """600 sentences of ids 5..19 with one 3 and one 4; the label says whether 3 comes first."""
    rng = np.random.default_rng(seed)
    sentences, labels = [], []
    for _ in range(600):
        s = rng.integers(5, 20, size=rng.integers(3, 9)).tolist()
        i, j = rng.choice(len(s), size=2, replace=False)
        s[i], s[j] = 3, 4
        sentences.append(s)
        labels.append(int(i < j))
    return sentences, labels


def test_classifier_learns_an_order_dependent_task():
    """Label 1 when token 3 comes before token 4: bag-of-words cannot, an LSTM must; >95%."""
    set_seed(0)
    sentences, labels = _order_task(seed=0)
    train = ClassificationBatches(sentences[:500], labels[:500], batch_size=32)
    test = ClassificationBatches(sentences[500:], labels[500:], batch_size=50, shuffle=False)
    model = RNNClassifier(
        ClassifierConfig(vocab_size=20, embed_dim=16, hidden_size=32, dropout=0.0)
    )
    before = accuracy(model, test)
    history = fit(
        model,
        train,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        steps=250,
        progress=False,
    )
    after = accuracy(model, test)
    assert np.mean(history.loss[-20:]) < 0.3 * np.mean(history.loss[:20])
    assert before < 0.75 and after > 0.95


def test_embedding_matrix_copies_known_vectors_and_load_checks_shape():
    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(["good", "film"], np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32))
    vocab = TokenVocab(("<pad>", "<unk>", "film", "zzz", "good"))
    matrix, coverage = embedding_matrix(vocab, kv, seed=0)
    assert matrix.shape == (5, 3) and coverage == pytest.approx(2 / 3)
    assert matrix[0].abs().sum() == 0
    torch.testing.assert_close(matrix[2], torch.tensor([4.0, 5.0, 6.0]))
    torch.testing.assert_close(matrix[4], torch.tensor([1.0, 2.0, 3.0]))
    model = RNNClassifier(ClassifierConfig(vocab_size=5, embed_dim=3, hidden_size=4))
    model.load_embeddings(matrix, freeze=True)
    assert torch.equal(model.embed.weight, matrix) and not model.embed.weight.requires_grad
    with pytest.raises(ValueError, match="does not match"):
        model.load_embeddings(torch.zeros(6, 3))


def test_classifier_rejects_mismatched_lengths():
    model = RNNClassifier(ClassifierConfig(vocab_size=10))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 3, 3]))
    with pytest.raises(ValueError, match="labels"):
        ClassificationBatches([[1, 2]], [0, 1], batch_size=2)


def test_train_classifier_with_its_schedule_learns_the_order_task():
    """The chapter's recipe (Adam, one-cycle schedule, clipping) on the task above: >90%."""
    set_seed(0)
    sentences, labels = _order_task(seed=1)
    model = RNNClassifier(
        ClassifierConfig(vocab_size=20, embed_dim=16, hidden_size=32, dropout=0.0)
    )
    history = train_classifier(
        model, sentences[:500], labels[:500], steps=250, batch_size=32, lr=1e-2
    )
    test = ClassificationBatches(sentences[500:], labels[500:], batch_size=50, shuffle=False)
    assert len(history.loss) == 250
    assert np.mean(history.loss[-20:]) < 0.3 * np.mean(history.loss[:20])
    assert accuracy(model, test) > 0.9
    with pytest.raises(ValueError, match="sentences but"):
        train_classifier(model, sentences[:5], labels[:4], steps=10)


def test_train_classifier_records_a_validation_curve():
    """`eval_fn` runs every `eval_every` steps and after the last: steps 8, 16, 20."""
    sentences, labels = _order_task(seed=2)
    model = RNNClassifier(ClassifierConfig(vocab_size=20, embed_dim=8, hidden_size=8))
    test = ClassificationBatches(sentences[500:], labels[500:], batch_size=50, shuffle=False)
    history = train_classifier(
        model, sentences[:500], labels[:500], steps=20, eval_fn=lambda m: accuracy(m, test),
        eval_every=8,
    )  # fmt: skip
    assert history.eval_steps == [8, 16, 20]
    assert all(0.0 <= a <= 1.0 for a in history.eval)


def test_plain_rnn_cell_is_torch_rnn_and_unknown_cells_are_refused():
    """``cell="rnn"`` is PyTorch's Elman RNN with tanh; a misspelt cell names the choices."""
    model = RNNClassifier(ClassifierConfig(vocab_size=10, hidden_size=4, cell="rnn"))
    assert isinstance(model.rnn, torch.nn.RNN) and model.rnn.nonlinearity == "tanh"
    with pytest.raises(ValueError, match=r"one of \['gru', 'lstm', 'rnn'\], got 'lstn'"):
        RNNClassifier(ClassifierConfig(vocab_size=10, cell="lstn"))
