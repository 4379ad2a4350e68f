"""The classifier's web service: /health, /predict against the model's own probabilities, a
batch answered in order, every kind of bad input answered with 422 and what was expected,
the micro-batcher grouping concurrent requests (and giving each its own answers), and a
real server started as a subprocess on 127.0.0.1 under a small load test with no errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from test_deploy import TEXTS, save_tiny

from nlpbook.deploy import encode_batch, load_classifier
from nlpbook.serve import MicroBatcher, create_app, free_port, load_test, serving

MAX_CHARS, MAX_BATCH = 60, 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("classifier") / "tiny-sst2")


@pytest.fixture(scope="module")
def client(folder):
    app = create_app(folder, max_chars=MAX_CHARS, max_batch=MAX_BATCH)
    with TestClient(app) as client:
        yield client


def _probabilities(folder: Path, texts: list[str]) -> np.ndarray:
    """The saved model's softmax probabilities, one text at a time (no padding)."""
    tokenizer, model = load_classifier(folder)
    with torch.inference_mode():
        logits = [model(**encode_batch(tokenizer, [t])).logits for t in texts]
    return torch.softmax(torch.cat(logits), dim=-1).numpy()


def test_health_names_the_model_and_its_labels(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "model": "tiny-sst2",
        "labels": ["negative", "positive"],
    }


def test_predict_returns_the_models_label_and_probability_per_text_in_order(client, folder):
    texts = TEXTS[:MAX_BATCH]
    response = client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == len(texts)
    probs = _probabilities(folder, texts)
    for prediction, p in zip(predictions, probs, strict=True):
        assert prediction["label"] == ["negative", "positive"][int(p.argmax())]
        assert prediction["probability"] == pytest.approx(float(p.max()), abs=1e-5)
    alone = [client.post("/predict", json={"texts": [t]}).json()["predictions"][0] for t in texts]
    assert [p["label"] for p in alone] == [p["label"] for p in predictions]
    for a, b in zip(alone, predictions, strict=True):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"texts": []}, "at least 1 item"),
        ({"texts": ["good", "   \n"]}, "texts [1] are empty or only whitespace"),
        ({"texts": [""]}, "texts [0] are empty or only whitespace"),
        ({"texts": ["a" * (MAX_CHARS + 1)]}, f"at most {MAX_CHARS} characters"),
        ({"texts": ["good"] * (MAX_BATCH + 1)}, f"at most {MAX_BATCH} items"),
        ({"text": "good"}, "Field required"),
        ({"texts": ["good"], "extra": 1}, "Extra inputs are not permitted"),
        ({"texts": [3]}, "valid string"),
        ({"texts": "good"}, "valid list"),
        (["good"], "valid dictionary"),
        (None, "Field required"),
    ],
)
def test_bad_input_is_a_422_that_says_what_was_expected(client, body, message):
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    content = response.json()
    assert content["error"].startswith('expected a JSON object {"texts": [...]} with 1 to 4 texts')
    assert any(message in problem["msg"] for problem in content["detail"]), content["detail"]


def test_a_body_that_is_not_json_is_a_422(client):
    response = client.post(
        "/predict", content=b'{"texts": ["good"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "JSON decode error"


def test_micro_batcher_groups_concurrent_requests_and_answers_each_its_own():
    calls = []

    def classify(texts):
        calls.append(list(texts))
        return [t.upper() for t in texts]

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            batcher = MicroBatcher(classify, pool, wait_ms=200, max_texts=5)
            batcher.start()
            requests = [["a"], ["b", "c"], ["d"], ["e", "f"], ["g"]]
            results = await asyncio.gather(*(batcher.submit(r) for r in requests))
            await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert results == [["A"], ["B", "C"], ["D"], ["E", "F"], ["G"]]
    # within the wait: 4 texts fit (5 at most), ["e", "f"] starts the next group
    assert calls == [["a", "b", "c", "d"], ["e", "f", "g"]]


def test_micro_batcher_passes_a_failure_to_every_request_of_the_group():
    def classify(texts):
        raise RuntimeError("model failed")

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            batcher = MicroBatcher(classify, pool, wait_ms=50, max_texts=8)
            batcher.start()
            results = await asyncio.gather(
                batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True
            )
            await batcher.stop()
        return results

    assert [str(r) for r in asyncio.run(scenario())] == ["model failed"] * 2


def test_micro_batched_app_answers_concurrent_requests_like_the_plain_one(folder):
    app = create_app(folder, max_chars=MAX_CHARS, max_batch=MAX_BATCH, batch_wait_ms=100)
    results: dict[int, list] = {}
    with TestClient(app) as client:

        def post(i: int) -> None:
            response = client.post("/predict", json={"texts": [TEXTS[i]]})
            results[i] = response.json()["predictions"]

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(TEXTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        calls = app.state.batcher.calls
    probs = _probabilities(folder, TEXTS)
    for i, p in enumerate(probs):
        assert results[i][0]["probability"] == pytest.approx(float(p.max()), abs=1e-5)
    assert calls < len(TEXTS)  # some requests shared a model call


def test_create_app_rejects_bad_settings(folder):
    with pytest.raises(ValueError, match="max_batch >= 1"):
        create_app(folder, max_batch=0)
    with pytest.raises(ValueError, match="batch_wait_ms must be 0"):
        create_app(folder, batch_wait_ms=-1)


def test_a_real_server_survives_a_small_load_test(folder):
    with serving(folder, max_batch=MAX_BATCH) as url:
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{url}/health").json()
        assert health["labels"] == ["negative", "positive"]
        stats = load_test(url, TEXTS, requests=24, concurrency=4, texts_per_request=2)
        assert stats["requests"] == 24 and stats["errors"] == {}
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] and stats["per_second"] > 0
        # too many texts per request: each one is counted, as a 422
        bad = load_test(url, TEXTS, requests=6, concurrency=3, texts_per_request=MAX_BATCH + 1)
        assert bad["errors"] == {"422": 6} and np.isnan(bad["p50_ms"])
    with pytest.raises(httpx.TransportError):  # the server is stopped afterwards
        httpx.get(f"{url}/health", timeout=2)


def test_load_test_counts_a_server_that_is_not_there():
    url = f"http://127.0.0.1:{free_port()}"
    stats = load_test(url, ["good"], requests=3, concurrency=2, timeout=2)
    assert stats["requests"] == 3 and stats["errors"] == {"ConnectError": 3}
