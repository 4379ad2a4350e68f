"""Fine-tuning helpers: accuracy on hand-counted cases, dynamic padding against Hugging Face's
DataCollatorWithPadding, length-grouped batches, the mean-pooled head against the same maths
written out, save/load round trips, the loss against HF's own, prediction batched == one by
one, and a tiny classifier trained with nlpbook.fit whose loss falls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import nlpbook
from conftest import word_level_tokenizer
from nlpbook.bert import mean_pool
from nlpbook.finetune import (
    BertForMeanPooledClassification,
    DynamicPadding,
    LengthGroupedSampler,
    accuracy,
    classification_loss,
    predict_logits,
)

PAD = 0
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "great", "fun", "bad", "dull", "awful",
         "film", "a", "very", "not"]  # fmt: skip


@pytest.mark.parametrize(
    "predictions, labels, expected",
    [
        ([1, 0, 0, 1], [1, 1, 0, 1], 0.75),  # 3 of 4 agree
        ([0, 0, 0], [1, 1, 1], 0.0),
        ([2, 1, 0, 2, 2], [2, 1, 0, 2, 2], 1.0),  # three classes
        ([[2.0, -1.0], [0.1, 0.3], [0.5, 0.5]], [0, 1, 1], 2 / 3),  # argmax; a tie -> class 0
        ([[-1.0, -2.0, -0.5]], [2], 1.0),  # log-probabilities: the highest is class 2
        (torch.tensor([[0.0, 1.0], [3.0, 1.0]]), torch.tensor([1, 1]), 0.5),  # tensors too
    ],
)
def test_accuracy_by_hand(predictions, labels, expected):
    assert accuracy(predictions, labels) == pytest.approx(expected)


@pytest.mark.parametrize(
    "predictions, labels, message",
    [
        ([1, 0], [1, 0, 1], "2 predictions but 3 labels"),
        ([], [], "no examples"),
        ([0.9, 0.2], [1, 0], "integer class ids"),
        (np.zeros((2, 2, 2)), [1, 0], r"got shape \(2, 2, 2\)"),
        ([1, 0], [[1], [0]], "labels must be a 1-D array"),
        ([1, 0], [1.0, 0.0], "labels must be integer class ids"),
        (3, [1], r"got shape \(\)"),
    ],
)
def test_accuracy_rejects_bad_input(predictions, labels, message):
    with pytest.raises(ValueError, match=message):
        accuracy(predictions, labels)


def test_dynamic_padding_by_hand():
    batch = DynamicPadding(pad_token_id=PAD)(
        [{"input_ids": [2, 4, 3], "label": 1}, {"input_ids": [2, 7, 12, 8, 3], "label": 0}]
    )
    assert batch["input_ids"].tolist() == [[2, 4, 3, 0, 0], [2, 7, 12, 8, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [1, 0]
    assert all(t.dtype == torch.long for t in batch.values())
    unlabelled = DynamicPadding(pad_token_id=9)([{"input_ids": [5]}, {"input_ids": [5, 6]}])
    assert set(unlabelled) == {"input_ids", "attention_mask"}
    assert unlabelled["input_ids"].tolist() == [[5, 9], [5, 6]]


def test_dynamic_padding_rejects_bad_batches():
    collate = DynamicPadding(pad_token_id=PAD)
    with pytest.raises(ValueError, match="empty batch"):
        collate([])
    with pytest.raises(ValueError, match="example 1 of the batch has no tokens"):
        collate([{"input_ids": [1]}, {"input_ids": []}])
    with pytest.raises(ValueError, match="some examples of the batch have a label"):
        collate([{"input_ids": [1], "label": 0}, {"input_ids": [2]}])


def test_length_grouped_sampler_covers_every_example_once_per_epoch():
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=3)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(1000))
        assert len(epoch) == len(sampler) == 63  # 62 full batches and one of 8
    assert first != second  # a new order every epoch
    assert list(LengthGroupedSampler(lengths, batch_size=16, seed=3)) == first  # repeatable


def test_length_grouped_batches_need_less_padding_than_random_ones():
    """The padded width of a batch is its longest example: grouping makes it close to the mean."""
    lengths = np.random.default_rng(0).integers(1, 60, size=1600)
    grouped = [lengths[b].max() for b in LengthGroupedSampler(lengths, batch_size=16)]
    shuffled = np.random.default_rng(1).permutation(1600).reshape(100, 16)
    random = [lengths[b].max() for b in shuffled]
    assert np.mean(grouped) < 0.7 * np.mean(random)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        LengthGroupedSampler(lengths, batch_size=0)


def _tokenizer():
    """A word-level BERT-style tokenizer over WORDS: [CLS] words [SEP], no network needed."""
    return word_level_tokenizer(WORDS)


def test_dynamic_padding_matches_hugging_faces_collator():
    from transformers import DataCollatorWithPadding

    tokenizer = _tokenizer()
    texts = ["a good film", "not fun", "a very very dull film", "great"]
    ids = tokenizer(texts)["input_ids"]
    features = [{"input_ids": x, "label": y} for x, y in zip(ids, [1, 0, 0, 1], strict=True)]
    ours = DynamicPadding(tokenizer.pad_token_id)(features)
    theirs = DataCollatorWithPadding(tokenizer, return_tensors="pt")(features)
    assert ours.keys() == {"input_ids", "attention_mask", "labels"} <= theirs.keys()
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]), key
    assert ours["input_ids"].shape == (4, 7)  # the longest text: [CLS] + 5 words + [SEP]


def _config():
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def _classifier(seed: int = 0, *, head: str = "mean"):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    if head == "cls":
        return BertForSequenceClassification(_config())
    return BertForMeanPooledClassification(_config())


def test_mean_pooled_head_is_the_mean_of_the_real_tokens_then_a_linear_layer():
    tokenizer, model = _tokenizer(), _classifier().eval()
    ids = tokenizer(["a very dull film", "good"])["input_ids"]
    batch = DynamicPadding(PAD)([{"input_ids": x} for x in ids])
    with torch.inference_mode():
        logits = model(**batch).logits  # (2, 2)
        hidden = model.bert(**batch).last_hidden_state  # (2, T, C)
        by_hand = torch.stack(
            [hidden[b, : int(batch["attention_mask"][b].sum())].mean(0) for b in range(2)]
        )  # the mean over each text's real tokens only
        expected = by_hand @ model.classifier.weight.T + model.classifier.bias
        alone = model(**tokenizer(["good"], return_tensors="pt")).logits[0]
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits[1], alone, rtol=0, atol=1e-5)  # padding changes nothing
    torch.testing.assert_close(
        mean_pool(hidden, batch["attention_mask"]), by_hand, rtol=0, atol=1e-6
    )


def test_mean_pooled_head_loads_an_encoder_and_round_trips(tmp_path):
    """From a plain BertModel folder: the encoder's weights, a new head; saved and reloaded."""
    from transformers import BertModel

    torch.manual_seed(0)
    encoder = BertModel(_config())  # with a pooler, which the classifier does not use
    encoder.save_pretrained(tmp_path / "encoder")
    model = BertForMeanPooledClassification.from_pretrained(tmp_path / "encoder", num_labels=2)
    for name, weight in encoder.state_dict().items():
        if not name.startswith("pooler"):
            assert torch.equal(model.bert.state_dict()[name], weight), name
    assert model.classifier.weight.shape == (2, 32)
    model.save_pretrained(tmp_path / "classifier")
    again = BertForMeanPooledClassification.from_pretrained(tmp_path / "classifier").eval()
    ids = torch.tensor([[2, 4, 10, 3]])
    with torch.inference_mode():
        assert torch.equal(model.eval()(ids).logits, again(ids).logits)


def test_classification_loss_is_hugging_faces_loss():
    tokenizer, model = _tokenizer(), _classifier(head="cls")  # HF's own classifier
    ids = tokenizer(["a good film", "awful", "not very fun"])["input_ids"]
    labelled = zip(ids, [1, 0, 0], strict=True)
    batch = DynamicPadding(PAD)([{"input_ids": x, "label": y} for x, y in labelled])
    ours = classification_loss(model, batch)
    theirs = model(**batch).loss  # HF's loss with labels in the batch
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="no 'labels'"):
        classification_loss(model, {k: v for k, v in batch.items() if k != "labels"})


def test_predict_logits_batched_equals_one_by_one_in_input_order():
    tokenizer, model = _tokenizer(), _classifier().eval()
    texts = ["a very very dull film", "good", "not fun", "a great film", "bad bad bad"]
    batched = predict_logits(model, tokenizer, texts, batch_size=2)
    with torch.inference_mode():
        alone = np.concatenate(
            [model(**tokenizer([t], return_tensors="pt")).logits.numpy() for t in texts]
        )
    np.testing.assert_allclose(batched, alone, atol=1e-5)  # padding changes nothing
    model.train()
    predict_logits(model, tokenizer, texts)
    assert model.training  # the mode is restored
    with pytest.raises(TypeError, match="not one string"):
        predict_logits(model, tokenizer, "good")
    with pytest.raises(ValueError, match="no texts"):
        predict_logits(model, tokenizer, [])


def test_fit_trains_a_classifier_with_dynamic_padding():
    """A tiny BERT learns which words are positive: the loss falls, training accuracy is 1."""
    tokenizer, model = _tokenizer(), _classifier()
    pos, neg = ["good", "great", "fun"], ["bad", "dull", "awful"]
    texts = [f"a {w} film" for w in pos + neg] + [f"very {w}" for w in pos + neg]
    labels = [1, 1, 1, 0, 0, 0] * 2
    ids = tokenizer(texts)["input_ids"]
    examples = [{"input_ids": x, "label": y} for x, y in zip(ids, labels, strict=True)]
    batches = DataLoader(
        examples,
        batch_size=4,
        shuffle=True,
        collate_fn=DynamicPadding(tokenizer.pad_token_id),
        generator=torch.Generator().manual_seed(0),
    )
    history = nlpbook.fit(
        model,
        batches,
        optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3),
        steps=60,
        loss_fn=classification_loss,
        progress=False,
    )
    assert np.mean(history.loss[-10:]) < 0.5 * np.mean(history.loss[:5])
    assert accuracy(predict_logits(model, tokenizer, texts), labels) == 1.0
