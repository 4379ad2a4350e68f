"""Deployment: save/load round trips, dynamic int8 and ONNX Runtime agreeing with the fp32
PyTorch logits (stated tolerances), ONNX with dynamic batch and length, sizes measured on
disk, the latency timer on a function of known cost, prediction in input order, and the
comparison table's accuracy and agreement on hand-made cases. A tiny random classifier
(2 layers, 32 dimensions, a word-level vocabulary) stands in for the fine-tuned MiniLM."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import word_level_tokenizer
from nlpbook.deploy import (
    OnnxClassifier,
    Variant,
    compare,
    encode_batch,
    export_onnx,
    format_table,
    latencies,
    latency,
    load_classifier,
    logits_function,
    model_size_mb,
    predict,
    quantize_dynamic,
    quantize_onnx,
    save_classifier,
)
from nlpbook.finetune import BertForMeanPooledClassification, predict_logits

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "great", "fun", "bad", "dull", "awful",
         "film", "a", "very", "not", "plot", "the", "acting", "was", "and", "boring"]  # fmt: skip
TEXTS = ["a good film", "not fun", "the acting was very very dull and the plot boring",
         "great", "awful film", "a very good plot and great acting"]  # fmt: skip


def tiny_tokenizer():
    """A word-level BERT-style tokenizer over WORDS: [CLS] words [SEP], no network needed."""
    return word_level_tokenizer(WORDS, lowercase=True)


def tiny_classifier(seed: int = 0) -> BertForMeanPooledClassification:
    """A random 2-layer, 32-dimensional mean-pooled BERT classifier, in eval mode."""
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    torch.manual_seed(seed)
    return BertForMeanPooledClassification(config).eval()


def save_tiny(folder: Path) -> Path:
    """A tiny classifier with the labels negative/positive, saved as a fine-tuned one would be."""
    return save_classifier(
        tiny_classifier(), tiny_tokenizer(), folder, labels=("negative", "positive")
    )


@pytest.fixture(scope="module")
def tiny():
    return tiny_tokenizer(), tiny_classifier()


@pytest.fixture(scope="module")
def onnx_path(tiny, tmp_path_factory) -> Path:
    tokenizer, model = tiny
    return export_onnx(model, tokenizer, tmp_path_factory.mktemp("onnx") / "model.onnx")


def _reference(model, batch) -> np.ndarray:
    with torch.inference_mode():
        return model(**batch).logits.numpy()


def test_save_and_load_round_trip_gives_the_same_logits_and_labels(tiny, tmp_path):
    tokenizer, model = tiny
    save_classifier(model, tokenizer, tmp_path / "clf", labels=("negative", "positive"))
    tokenizer2, model2 = load_classifier(tmp_path / "clf")
    assert not model2.training
    assert model2.config.id2label == {0: "negative", 1: "positive"}
    assert tokenizer2(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    batch = encode_batch(tokenizer, TEXTS)
    np.testing.assert_array_equal(_reference(model2, batch), _reference(model, batch))


def test_save_and_load_reject_bad_input(tiny, tmp_path):
    tokenizer, model = tiny
    with pytest.raises(ValueError, match="2 classes but 3 labels"):
        save_classifier(model, tokenizer, tmp_path / "x", labels=("a", "b", "c"))
    with pytest.raises(FileNotFoundError, match="expected config.json"):
        load_classifier(tmp_path)


def test_dynamic_int8_quantises_the_linear_layers_only_and_keeps_the_logits(tiny):
    tokenizer, model = tiny
    int8 = quantize_dynamic(model)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    quantised = [m for m in int8.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(linear) == 2 * 6 + 1 == len(quantised)  # 6 per block, 2 blocks, the head
    assert not any(isinstance(m, nn.Linear) for m in int8.modules())
    assert int8.bert.embeddings.word_embeddings.weight.dtype == torch.float32  # not quantised
    assert isinstance(model.classifier, nn.Linear)  # the original is left alone
    batch = encode_batch(tokenizer, TEXTS)
    ours, theirs = _reference(int8, batch), _reference(model, batch)
    # int8 weights have ~1/127 of each matrix's largest entry as step: logits move a little
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() < 0.05 * scale
    assert not np.array_equal(ours, theirs)  # it really computes differently


def test_int8_model_is_smaller_on_disk(tiny, tmp_path):
    _, model = tiny
    fp32, int8 = model_size_mb(model), model_size_mb(quantize_dynamic(model))
    weights = sum(p.numel() for p in model.parameters()) * 4 / 1e6
    assert fp32 == pytest.approx(weights, rel=0.5)  # the floats plus pickling overhead
    assert int8 < fp32
    (tmp_path / "a.bin").write_bytes(b"x" * 1500)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"x" * 500)
    assert model_size_mb(tmp_path / "a.bin") == pytest.approx(0.0015)
    assert model_size_mb(tmp_path) == pytest.approx(0.002)
    with pytest.raises(FileNotFoundError, match="neither a model file nor a folder"):
        model_size_mb(tmp_path / "missing")


@pytest.mark.parametrize("texts", [TEXTS[:1], TEXTS[:3], TEXTS[1:2], TEXTS])
def test_onnx_runtime_matches_pytorch_for_any_batch_size_and_length(tiny, onnx_path, texts):
    tokenizer, model = tiny
    batch = encode_batch(tokenizer, texts)
    onnx = OnnxClassifier(onnx_path, threads=1)
    ours = onnx(**batch)
    assert ours.dtype == torch.float32 and ours.shape == (len(texts), 2)
    np.testing.assert_allclose(ours.numpy(), _reference(model, batch), atol=1e-5, rtol=1e-4)
    numpy_inputs = onnx(batch["input_ids"].numpy(), batch["attention_mask"].numpy())
    np.testing.assert_array_equal(numpy_inputs.numpy(), ours.numpy())


def test_onnx_graph_has_dynamic_batch_and_length(onnx_path):
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param != "" for d in dims] == [True, True], tensor.name  # both symbolic
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["logits"]


def test_onnx_int8_is_smaller_and_close_to_fp32(tiny, onnx_path, tmp_path):
    tokenizer, model = tiny
    import onnx

    int8_path = quantize_onnx(onnx_path, tmp_path / "int8.onnx")
    assert model_size_mb(int8_path) < model_size_mb(onnx_path)
    graph = onnx.load(str(int8_path)).graph
    # every weight matrix of the 2 blocks (6 each) is int8, multiplied by MatMulInteger
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 12
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) >= 12
    batch = encode_batch(tokenizer, TEXTS)
    theirs = _reference(model, batch)
    ours = OnnxClassifier(int8_path)(**batch).numpy()
    assert np.abs(ours - theirs).max() < 0.05 * np.abs(theirs).max()


def test_onnx_classifier_rejects_a_missing_file_and_bad_threads(tmp_path, onnx_path):
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        OnnxClassifier(tmp_path / "none.onnx")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        OnnxClassifier(onnx_path, threads=0)


def test_latency_times_each_call_of_a_function_of_known_cost():
    calls = []

    def slow(input_ids, attention_mask):
        calls.append(1)
        time.sleep(0.002)

    batch = {"input_ids": torch.zeros(5, 3), "attention_mask": torch.zeros(5, 3)}
    stats = latency(slow, batch, repeats=6, warmup=2)
    assert len(calls) == 8  # warm-up calls run but are not timed
    assert 2.0 <= stats["median_ms"] <= stats["p95_ms"] < 200
    assert stats["per_second"] == pytest.approx(5 * 1000 / stats["median_ms"])
    assert stats["cpu_median_ms"] < 1.0  # sleeping takes wall-clock time, not CPU time
    with pytest.raises(ValueError, match="repeats >= 1"):
        latency(slow, batch, repeats=0)
    with pytest.raises(ValueError, match="the batch is empty"):
        latency(slow, {})


def test_latencies_time_several_functions_in_turns():
    calls = []

    def make(name, seconds):
        def fn(input_ids, attention_mask):
            calls.append(name)
            time.sleep(seconds)

        return fn

    batch = {"input_ids": torch.zeros(2, 3), "attention_mask": torch.zeros(2, 3)}
    fast, slow = latencies([make("fast", 0.001), make("slow", 0.004)], batch, repeats=3, warmup=1)
    assert calls == ["fast", "slow"] * 4  # one warm-up round, then three timed rounds
    assert 1.0 <= fast["median_ms"] < slow["median_ms"]
    assert slow["median_ms"] >= 4.0


def test_predict_is_in_input_order_and_agrees_with_predict_logits(tiny):
    tokenizer, model = tiny
    fn = logits_function(model)
    ours = predict(fn, tokenizer, TEXTS, batch_size=2)
    one_by_one = np.concatenate([fn(**encode_batch(tokenizer, [t])).numpy() for t in TEXTS])
    np.testing.assert_allclose(ours, one_by_one, atol=1e-5)
    np.testing.assert_allclose(ours, predict_logits(model, tokenizer, TEXTS), atol=1e-5)
    with pytest.raises(TypeError, match="not one string"):
        predict(fn, tokenizer, "a good film")
    with pytest.raises(ValueError, match="no texts"):
        predict(fn, tokenizer, [])


def test_compare_scores_accuracy_and_agreement_with_the_first_variant(tiny):
    tokenizer, model = tiny
    fn = logits_function(model)

    def flipped(input_ids, attention_mask):  # always the other class
        return -fn(input_ids, attention_mask)

    predicted = predict(fn, tokenizer, TEXTS).argmax(axis=1)
    variants = [Variant("fp32", fn, 1.0), Variant("same", fn, 0.5), Variant("flip", flipped, 2)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rows = compare(variants, tokenizer, TEXTS, predicted, batch_size=4, repeats=2, warmup=0)
        assert torch.get_num_threads() == 2  # compare ran on 1 thread, then restored 2
    finally:
        torch.set_num_threads(before)
    assert [r["variant"] for r in rows] == ["fp32", "same", "flip"]
    assert [r["accuracy"] for r in rows] == [100.0, 100.0, 0.0]  # labels = fp32's answers
    assert [r["agreement"] for r in rows] == [100.0, 100.0, 0.0]
    assert [r["size_mb"] for r in rows] == [1.0, 0.5, 2]
    assert all(r["b4_median_ms"] > 0 and r["per_second"] > 0 for r in rows)
    with pytest.raises(ValueError, match="at least batch_size=32 texts"):
        compare(variants, tokenizer, TEXTS, predicted)


def test_format_table_aligns_columns():
    rows = [
        {"variant": "fp32", "size_mb": 90.31, "ms": 1.234},
        {"variant": "int8", "size_mb": 5.0, "ms": 0.5},
    ]
    assert format_table(rows).splitlines() == [
        "variant  size_mb    ms",
        "fp32        90.3  1.23",
        "int8        5.00  0.50",
    ]
