"""Extractive QA: the SQuAD v1.1 metric on hand-scored cases (the official script's rules),
windows and labels from the real MiniLM tokenizer, span decoding from hand-made logits, the
article split, the span loss against Hugging Face's own, and a tiny model whose loss falls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertModel

import nlpbook
from nlpbook.qa import (
    QAPadding,
    best_spans,
    exact_match,
    f1,
    load_qa_model,
    normalize_answer,
    predict_logits,
    prepare_features,
    qa_loss,
    sentence_overlap_baseline,
    split_by_article,
    squad_scores,
)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(nlpbook.assets.locate("minilm-l6"))


def _example(context: str, answer: str, *, question: str = "What is it?", id: str = "q0"):
    start = context.index(answer)
    return {"id": id, "title": "T", "context": context, "question": question,
            "answers": [{"text": answer, "start": start}]}  # fmt: skip


# ---- the metric ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Cat!", "cat"),
        ("  a  Big\tdog. ", "big dog"),
        ("U.S. Army", "us army"),  # punctuation removed, not replaced by a space
        ("Theater and another", "theater and another"),  # articles only as whole words
        ("An apple, the pear", "apple pear"),
        ("the", ""),
    ],
)
def test_normalize_answer_by_hand(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    "prediction, gold, em, f",
    [
        ("The Cat!", "cat", 1.0, 1.0),
        ("the big cat", "a cat sat", 0.0, 0.5),  # 1 shared: P = 1/2, R = 1/2
        ("Broncos", "Denver Broncos", 0.0, 2 / 3),  # P = 1, R = 1/2
        ("cat cat", "cat", 0.0, 2 / 3),  # repeats count once each: P = 1/2, R = 1
        ("cat cat dog", "cat cat", 0.0, 0.8),  # P = 2/3, R = 1
        ("", "cat", 0.0, 0.0),  # empty prediction
        ("dog", "cat", 0.0, 0.0),
        ("the", "a", 1.0, 0.0),  # both normalize to "": equal, but v1.1's F1 has no tokens
    ],
)
def test_exact_match_and_f1_by_hand(prediction, gold, em, f):
    assert exact_match(prediction, gold) == em
    assert f1(prediction, gold) == pytest.approx(f)


def test_squad_scores_take_the_best_gold_answer_and_average_x100():
    examples = [
        {"id": "a", "answers": [{"text": "Denver Broncos"}, {"text": "Carolina Panthers"}]},
        {"id": "b", "answers": [{"text": "1990"}, {"text": "in 1990"}]},
        {"id": "c", "answers": [{"text": "gold"}]},
    ]
    predictions = {"a": "Broncos", "b": "in 1990", "c": "golden"}
    # a: EM 0, F1 max(2/3, 0); b: EM 1 (second answer), F1 1; c: EM 0, F1 0
    scores = squad_scores(predictions, examples)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    # a question with no prediction scores 0, as in the official script
    assert squad_scores({"b": "1990"}, examples) == pytest.approx(
        {"exact_match": 100 / 3, "f1": 100 / 3}
    )
    with pytest.raises(ValueError, match="no examples"):
        squad_scores({}, [])


# ---- windows and labels -------------------------------------------------------------------

LONG = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))


def test_long_context_becomes_overlapping_windows_with_labels(tokenizer):
    example = _example(LONG, "topic 23", question="Which topic comes in sentence 23?")
    features = prepare_features([example], tokenizer, max_length=64, stride=16)
    assert len(features) > 4
    holding = []
    for k, f in enumerate(features):
        assert f["example_id"] == "q0" and len(f["input_ids"]) <= 64
        assert len(f["offsets"]) == len(f["input_ids"]) == len(f["token_type_ids"])
        context = [t for t, o in enumerate(f["offsets"]) if o is not None]
        assert all(f["token_type_ids"][t] == 1 for t in context)
        s, e = f["start_position"], f["end_position"]
        if s == 0:  # the [CLS] token: this window does not hold the whole answer
            assert e == 0 and f["input_ids"][0] == tokenizer.cls_token_id
            continue
        holding.append(k)
        assert f["offsets"][s][0] == example["answers"][0]["start"]
        assert LONG[f["offsets"][s][0] : f["offsets"][e][1]] == "topic 23"
        assert tokenizer.decode(f["input_ids"][s : e + 1]) == "topic 23"
    assert 1 <= len(holding) < len(features)
    # a window holds the answer exactly when its characters cover the answer's
    first = LONG.index("topic 23")
    for f in features:
        spans = [o for o in f["offsets"] if o is not None]
        whole = spans[0][0] <= first and first + len("topic 23") <= spans[-1][1]
        assert whole == (f["start_position"] != 0)
    # neighbours share `stride` context tokens
    for before, after in zip(features, features[1:], strict=False):
        tail = [i for i, o in zip(before["input_ids"], before["offsets"], strict=True) if o][-16:]
        head = [i for i, o in zip(after["input_ids"], after["offsets"], strict=True) if o][:16]
        assert tail == head


def test_short_context_is_one_window_and_the_question_is_stripped(tokenizer):
    example = _example("The Normans were in Normandy in 1066.", "1066", question=" When?")
    (feature,) = prepare_features([example], tokenizer, max_length=384, stride=128)
    s, e = feature["start_position"], feature["end_position"]
    assert tokenizer.decode(feature["input_ids"][s : e + 1]) == "1066"
    # the question was stripped of its leading space: [CLS] when ? [SEP]
    assert tokenizer.convert_ids_to_tokens(feature["input_ids"][:4]) == [
        "[CLS]", "when", "?", "[SEP]"]  # fmt: skip


@pytest.mark.parametrize(
    "answer, message",
    [
        ({"text": "Normans", "start": 0}, "is not at character 0 of the context"),
        ({"text": "Paris", "start": 4}, "'Paris' is not at character 4"),
    ],
)
def test_prepare_features_rejects_misplaced_answers(tokenizer, answer, message):
    example = _example("The Normans were in Normandy.", "Normans")
    example["answers"] = [answer]
    with pytest.raises(ValueError, match=message):
        prepare_features([example], tokenizer, max_length=64, stride=16)


def test_prepare_features_rejects_bad_options(tokenizer):
    example = _example("The Normans were in Normandy.", "Normans")
    with pytest.raises(ValueError, match="expected 0 <= stride < max_length"):
        prepare_features([example], tokenizer, max_length=64, stride=64)
    example["answers"] = []
    with pytest.raises(ValueError, match="has no answers"):
        prepare_features([example], tokenizer, max_length=64, stride=16)


# ---- decoding spans -----------------------------------------------------------------------


def test_best_spans_recovers_a_planted_answer_across_two_windows(tokenizer):
    example = _example(LONG, "topic 23", question="Which topic comes in sentence 23?")
    features = prepare_features([example], tokenizer, max_length=64, stride=16)
    k = next(i for i, f in enumerate(features) if f["start_position"] != 0)
    starts = [np.full(len(f["input_ids"]), -100.0) for f in features]
    ends = [np.full(len(f["input_ids"]), -100.0) for f in features]
    # the answer in window k: 4 + 3 = 7
    starts[k][features[k]["start_position"]] = 4.0
    ends[k][features[k]["end_position"]] = 3.0
    # a weaker span in another window: 3 + 3 = 6
    other = (k + 2) % len(features)
    context = [t for t, o in enumerate(features[other]["offsets"]) if o is not None]
    starts[other][context[2]], ends[other][context[3]] = 3.0, 3.0
    # higher scores that are not valid spans: [CLS] and the question, end before start
    starts[other][0] = ends[other][0] = 50.0
    starts[other][1] = ends[other][2] = 40.0
    starts[other][context[6]], ends[other][context[1]] = 30.0, 30.0
    assert best_spans(starts, ends, features, [example]) == {"q0": "topic 23"}
    # without the answer's window, the weaker span of the other window wins
    a, b = features[other]["offsets"][context[2]][0], features[other]["offsets"][context[3]][1]
    rest = [i for i in range(len(features)) if i != k]
    picked = [[x[i] for i in rest] for x in (starts, ends, features)]
    assert best_spans(*picked, [example]) == {"q0": LONG[a:b]}


def test_best_spans_limits_and_errors(tokenizer):
    example = _example("Paris is the capital of France.", "France")
    (feature,) = prepare_features([example], tokenizer, max_length=64, stride=16)
    n = len(feature["input_ids"])
    context = [t for t, o in enumerate(feature["offsets"]) if o is not None]
    starts, ends = np.zeros(n), np.zeros(n)
    starts[context[0]], ends[context[5]] = 5.0, 5.0  # "paris ... france", 6 tokens
    starts[context[5]], ends[context[5]] = 4.0, 4.5  # "france", 1 token
    assert best_spans([starts], [ends], [feature], [example]) == {
        "q0": "Paris is the capital of France"
    }
    assert best_spans([starts], [ends], [feature], [example], max_answer_tokens=5) == {
        "q0": "France"
    }
    with pytest.raises(ValueError, match="one row of start and end logits per feature"):
        best_spans([starts], [], [feature], [example])
    with pytest.raises(ValueError, match="has .* tokens but"):
        best_spans([starts[:3]], [ends], [feature], [example])
    with pytest.raises(ValueError, match="not in `examples`"):
        best_spans([starts], [ends], [feature], [dict(example, id="other")])


# ---- the split and the baseline -----------------------------------------------------------


def test_split_by_article_shares_no_title_and_repeats():
    examples = [{"id": f"{t}{i}", "title": f"article {t}"} for t in range(10) for i in range(t + 1)]
    train, test = split_by_article(examples, test_fraction=0.3, seed=4)
    train_titles, test_titles = {e["title"] for e in train}, {e["title"] for e in test}
    assert not train_titles & test_titles and len(test_titles) == 3
    assert sorted(e["id"] for e in train + test) == sorted(e["id"] for e in examples)
    assert [e["id"] for e in train] == [e["id"] for e in examples if e["title"] in train_titles]
    assert split_by_article(examples, test_fraction=0.3, seed=4) == (train, test)
    others = {e["title"] for e in split_by_article(examples, test_fraction=0.3, seed=5)[1]}
    assert others != test_titles  # another seed, other articles (checked for these seeds)
    with pytest.raises(ValueError, match="test_fraction must be between 0 and 1"):
        split_by_article(examples, test_fraction=1.0)
    with pytest.raises(ValueError, match="at least 2 articles"):
        split_by_article(examples[:1], test_fraction=0.5)


def test_sentence_overlap_baseline_by_hand():
    context = "Paris is in France. The Rhine flows through Basel! Berlin is big."
    example = _example(context, "Basel", question="Which city does the Rhine flow through?")
    # shared words: sentence 1 none, sentence 2 {"rhine", "through"}, sentence 3 none
    assert sentence_overlap_baseline([example]) == {"q0": "The Rhine flows through Basel!"}


# ---- the model and its loss ---------------------------------------------------------------


def _tiny_qa_model(seed: int = 0) -> BertForQuestionAnswering:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    return BertForQuestionAnswering(config)


def _batch(rows: list[tuple[list[int], int, int]]) -> dict[str, torch.Tensor]:
    features = [
        {"input_ids": ids, "token_type_ids": [0] + [1] * (len(ids) - 1), "start_position": s,
         "end_position": e, "example_id": str(i), "offsets": [None] * len(ids)}
        for i, (ids, s, e) in enumerate(rows)
    ]  # fmt: skip
    return features, QAPadding(pad_token_id=0)(features)


def test_qa_padding_by_hand():
    _, batch = _batch([([2, 5, 3], 1, 1), ([2, 5, 6, 7, 3], 2, 3)])
    assert batch["input_ids"].tolist() == [[2, 5, 3, 0, 0], [2, 5, 6, 7, 3]]
    assert batch["token_type_ids"].tolist() == [[0, 1, 1, 0, 0], [0, 1, 1, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["start_positions"].tolist() == [1, 2]
    assert batch["end_positions"].tolist() == [1, 3]
    with pytest.raises(ValueError, match="empty batch"):
        QAPadding(pad_token_id=0)([])


def test_qa_loss_matches_hugging_face_and_ignores_padding():
    model = _tiny_qa_model().eval()
    rows = [([2, 5, 6, 7, 3], 2, 3), ([2, 8, 9, 3], 1, 2), ([2, 11, 3], 0, 0)]
    _, batch = _batch(rows)
    with torch.no_grad():
        ours = qa_loss(model, batch)
        # unpadded rows, one at a time, with Hugging Face's own loss (no padding to mask)
        theirs = [model(**_batch([row])[1]).loss for row in rows]
    torch.testing.assert_close(ours, torch.stack(theirs).mean(), rtol=1e-5, atol=1e-6)


def test_predict_logits_batched_equals_one_by_one():
    model = _tiny_qa_model()
    rows = [([2, 5, 6, 7, 3], 2, 3), ([2, 8, 9, 3], 1, 2), ([2, 11, 3], 0, 0)]
    features, _ = _batch(rows)
    starts, ends = predict_logits(model, features, pad_token_id=0, batch_size=2)
    assert model.training  # back in the mode it was in
    for i, f in enumerate(features):
        alone = predict_logits(model, [f], pad_token_id=0)
        assert starts[i].shape == (len(f["input_ids"]),)
        np.testing.assert_allclose(starts[i], alone[0][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ends[i], alone[1][0], rtol=1e-5, atol=1e-6)


def test_a_tiny_model_learns_to_point_at_the_answer():
    """A few steps of nlpbook.fit on one batch: the span loss falls below half its start."""
    model = _tiny_qa_model()
    _, batch = _batch([([2, 5, 6, 7, 3], 2, 3), ([2, 8, 9, 3], 1, 2), ([2, 11, 12, 13, 3], 3, 3)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    history = nlpbook.fit(model, [batch], optimizer=optimizer, steps=40, loss_fn=qa_loss,
                          progress=False)  # fmt: skip
    assert history.loss[-1] < 0.5 * history.loss[0]


def test_load_qa_model_keeps_the_encoder_and_adds_only_the_span_head(tmp_path):
    folder = nlpbook.assets.locate("minilm-l6")
    model = load_qa_model(folder)
    encoder = BertModel.from_pretrained(folder)
    for name, weight in encoder.state_dict().items():
        if not name.startswith("pooler"):
            assert torch.equal(model.bert.state_dict()[name], weight), name
    assert model.qa_outputs.out_features == 2
    # a folder that lacks an encoder weight is refused
    from safetensors.torch import load_file, save_file

    tiny = BertModel(_tiny_qa_model().config)
    tiny.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    dropped = next(k for k in weights if "layer.0.attention" in k)
    save_file({k: v for k, v in weights.items() if k != dropped}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    with pytest.raises(ValueError, match="expected every encoder weight"):
        load_qa_model(tmp_path)
