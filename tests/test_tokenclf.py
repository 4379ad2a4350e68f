"""nlpbook.tokenclf: first-subword labels checked by hand on MiniLM's WordPiece tokenizer,
padding, the loss against Hugging Face's own, predictions batched == one by one, and the
IOB2 repair against hand-written cases."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

from nlpbook import assets
from nlpbook.tokenclf import (
    IGNORE,
    TokenClassificationPadding,
    encode_words,
    predict_tags,
    repair_bio,
    token_classification_loss,
)

LABELS = ["O", "B-person", "I-person", "B-location", "I-location"]
LABEL2ID = {label: i for i, label in enumerate(LABELS)}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(assets.locate("minilm-l6"))


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=len(LABELS),
    )  # fmt: skip
    return BertForTokenClassification(config).eval()


def test_first_subword_carries_the_tag(tokenizer):
    words = ["Hollande", "visits", "Paris"]
    tags = ["B-person", "O", "B-location"]
    out = encode_words(tokenizer, words, tags=tags, label2id=LABEL2ID)
    pieces = tokenizer.convert_ids_to_tokens(out["input_ids"])
    assert pieces == ["[CLS]", "holland", "##e", "visits", "paris", "[SEP]"]
    assert out["first"] == [1, 3, 4]
    assert out["labels"] == [IGNORE, 1, IGNORE, 0, 3, IGNORE]


def test_word_without_subword_is_marked_and_tagged_o(tokenizer, tiny_model):
    words = ["hello", "\u200b", "world"]  # a zero-width space: WordPiece gives it no piece
    out = encode_words(tokenizer, words, tags=["O", "B-person", "O"], label2id=LABEL2ID)
    assert out["first"][1] == -1
    assert LABEL2ID["B-person"] not in out["labels"]  # its tag has nowhere to go
    tags = predict_tags(tiny_model, tokenizer, [words], id2label=dict(enumerate(LABELS)))
    assert len(tags[0]) == 3 and tags[0][1] == "O"


def test_bad_input_errors(tokenizer):
    with pytest.raises(TypeError, match="list of words"):
        encode_words(tokenizer, "Paris is nice")
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        encode_words(tokenizer, ["a", "b"], tags=["O"], label2id=LABEL2ID)
    with pytest.raises(ValueError, match="not in label2id"):
        encode_words(tokenizer, ["a"], tags=["B-product"], label2id=LABEL2ID)
    with pytest.raises(ValueError, match="give both"):
        encode_words(tokenizer, ["a"], tags=["O"])
    with pytest.raises(ValueError, match="max_length=4"):
        encode_words(tokenizer, ["one", "two", "three"], max_length=4)


def test_padding_pads_labels_with_ignore():
    collate = TokenClassificationPadding(pad_token_id=0)
    batch = collate(
        [{"input_ids": [101, 7, 8, 102], "labels": [IGNORE, 1, 2, IGNORE]},
         {"input_ids": [101, 9, 102], "labels": [IGNORE, 0, IGNORE]}]
    )  # fmt: skip
    assert batch["input_ids"].tolist() == [[101, 7, 8, 102], [101, 9, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 1, 2, IGNORE], [IGNORE, 0, IGNORE, IGNORE]]
    assert "labels" not in collate([{"input_ids": [1, 2]}])
    with pytest.raises(ValueError, match="some examples"):
        collate([{"input_ids": [1], "labels": [0]}, {"input_ids": [2]}])
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_loss_equals_hugging_face(tokenizer, tiny_model):
    sentences = [(["Hollande", "visits", "Paris"], ["B-person", "O", "B-location"]),
                 (["Ed", "Sheeran", "sings"], ["B-person", "I-person", "O"])]  # fmt: skip
    features = [encode_words(tokenizer, w, tags=t, label2id=LABEL2ID) for w, t in sentences]
    batch = TokenClassificationPadding(tokenizer.pad_token_id)(features)
    ours = token_classification_loss(tiny_model, batch)
    theirs = tiny_model(**batch).loss  # HF: cross-entropy with ignore_index -100
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no 'labels'"):
        token_classification_loss(tiny_model, {k: v for k, v in batch.items() if k != "labels"})


def test_predictions_batched_equal_one_by_one(tokenizer, tiny_model):
    sentences = [["a", "short", "one"], ["Paris", "is", "a", "much", "longer", "sentence", "."],
                 ["Ed"]]  # fmt: skip
    id2label = dict(enumerate(LABELS))
    batched = predict_tags(tiny_model, tokenizer, sentences, id2label=id2label, batch_size=3)
    single = [predict_tags(tiny_model, tokenizer, [s], id2label=id2label)[0] for s in sentences]
    assert batched == single
    assert [len(t) for t in batched] == [len(s) for s in sentences]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["I-person", "I-person"], ["B-person", "I-person"]),
        (["B-person", "I-location"], ["B-person", "B-location"]),
        (["O", "I-location", "O"], ["O", "B-location", "O"]),
        (["B-person", "I-person", "O"], ["B-person", "I-person", "O"]),  # already valid
        ([], []),
    ],
)
def test_repair_bio(tags, expected):
    assert repair_bio(tags) == expected


def test_fine_tuned_tagger_learns_its_training_sentences(one_thread):
    """MiniLM fine-tuned for 40 steps on four sentences tags them correctly (a loss that falls
    and predictions that follow it)."""
    from nlpbook.tokenclf import fine_tune_tagger

    sentences = [
        (["Hollande", "visits", "Paris"], ["B-person", "O", "B-location"]),
        (["Ed", "Sheeran", "sang", "in", "Rome"],
         ["B-person", "I-person", "O", "O", "B-location"]),
        (["we", "walked", "home"], ["O", "O", "O"]),
        (["Berlin", "loves", "Angela"], ["B-location", "O", "B-person"]),
    ]  # fmt: skip
    tokenizer, model, history = fine_tune_tagger(
        assets.locate("minilm-l6"), sentences, labels=LABELS, steps=40, batch_size=4, lr=5e-4,
        progress=False,
    )  # fmt: skip
    assert history.loss[-1] < history.loss[0] / 4
    words = [w for w, _ in sentences]
    predicted = predict_tags(model, tokenizer, words, id2label=dict(enumerate(LABELS)))
    assert predicted == [list(t) for _, t in sentences]
