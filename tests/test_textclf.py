"""The sentence classifiers (recurrent and transformer), their training and accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from nlpbook import fit, set_seed
from nlpbook.batching import pad_batch
from nlpbook.textclf import (
    ClassificationBatches,
    ClassifierConfig,
    RNNClassifier,
    TransformerClassifier,
    TransformerClassifierConfig,
    accuracy,
    embedding_matrix,
    train_classifier,
)
from nlpbook.vocab import TokenVocab


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


def _order_task(*, seed: int, n: int = 600) -> tuple[list[list[int]], list[int]]:
    """`n` sentences of ids 5..19 with one 3 and one 4; the label says whether 3 comes first.
    Both orders have the same bag of words, so only a model of word order can solve it."""
    rng = np.random.default_rng(seed)
    sentences, labels = [], []
    for _ in range(n):
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


def test_transformer_classifier_learns_word_order_with_train_classifier():
    """train_classifier trains it unchanged; held-out accuracy > 0.9 (chance 0.5)."""
    torch.manual_seed(4)
    train, test = _order_task(seed=3, n=2000), _order_task(seed=4, n=400)
    config = TransformerClassifierConfig(
        vocab_size=20, d_model=32, n_heads=4, n_layers=2, max_len=16, dropout=0.0
    )
    model = TransformerClassifier(config)
    history = train_classifier(model, *train, steps=150, batch_size=64, lr=3e-3)
    assert history.loss[-1] < 0.3 * history.loss[0]
    acc = accuracy(model, ClassificationBatches(*test, batch_size=100, shuffle=False))
    assert acc > 0.9, f"held-out accuracy {acc:.3f}, expected > 0.9"


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_padding_does_not_change_a_sentences_logits(positions):
    """A sentence's logits alone and inside a right-padded batch agree within 1e-5."""
    torch.manual_seed(5)
    config = TransformerClassifierConfig(vocab_size=20, d_model=16, positions=positions)
    model = TransformerClassifier(config).eval()
    sentences = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    ids, lengths = pad_batch(sentences)
    batched, _ = model(ids, lengths)
    for row, s in enumerate(sentences):
        alone, _ = model(torch.tensor([s]), torch.tensor([len(s)]))
        torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)
    ids[1, 2:] = 19  # other padding ids: still nothing changes
    torch.testing.assert_close(model(ids, lengths)[0], batched, atol=1e-5, rtol=1e-5)


def test_transformer_classifier_rejects_bad_input():
    model = TransformerClassifier(TransformerClassifierConfig(vocab_size=10, max_len=8))
    with pytest.raises(ValueError, match=r"expected ids \(B, T\) and lengths \(B,\)"):
        model(torch.zeros(2, 3, dtype=torch.long), torch.tensor([3]))
    with pytest.raises(ValueError, match="longer than max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long), torch.tensor([9]))
    with pytest.raises(ValueError, match="does not match the layer"):
        model.load_embeddings(torch.zeros(10, 3))
    model.load_embeddings(torch.ones(10, 64), freeze=True)
    assert not model.embed.weight.requires_grad and model.embed.weight[3, 0] == 1.0


def test_learned_positions_start_small_next_to_word_vectors():
    """Position vectors start at std 0.02 (GPT-2's choice), not nn.Embedding's N(0, 1)."""
    torch.manual_seed(0)
    model = TransformerClassifier(TransformerClassifierConfig(vocab_size=20, d_model=64))
    std = model.pos.weight.std().item()
    assert 0.018 < std < 0.022, std
