"""Serving a text classifier over HTTP: a small FastAPI app, a server to start, a load test.

The service has two endpoints:

- ``GET /health`` -> ``{"status": "ok", "model": <name>, "labels": [...]}``;
- ``POST /predict`` with the JSON body ``{"texts": ["a gripping film", ...]}`` (one text is
  a list of one) -> ``{"predictions": [{"label": "positive", "probability": 0.98}, ...]}``,
  one prediction per text, in the order of the texts; ``probability`` is the softmax
  probability of the predicted label.

Bad input never reaches the model: a body that is not JSON, a missing or misspelt field, a
text that is not a string, empty or only spaces, too long, or too many texts is answered
with status 422 and ``{"error": <what was expected>, "detail": [<each problem>]}``.

The model runs in one worker thread, one call at a time, so the event loop stays free to
accept and parse requests meanwhile. With ``batch_wait_ms > 0`` a *micro-batcher* collects
the texts of the requests that arrive within that many milliseconds of the first (up to
`max_batch` texts) and classifies them in one padded batch: fewer, larger model calls,
which pays when many small requests arrive at once and costs up to the wait otherwise.

Start a server with one command (uvicorn, on 127.0.0.1 unless told otherwise)::

    python -m nlpbook.serve --model DIR [--port 8000] [--threads 1] [--batch-wait-ms 0]

where DIR was written by `nlpbook.deploy.save_classifier`. `serving` starts one as a
subprocess on a free port and always stops it; `load_test` sends it concurrent requests.
"""

# no `from __future__ import annotations` here: FastAPI reads the endpoints' annotations,
# which name models defined inside create_app, at run time

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from nlpbook.deploy import (
    LogitsFunction,
    label_names,
    load_classifier,
    logits_function,
    predict,
)


def create_app(
    classifier: str | Path | tuple[Any, Any],
    *,
    max_chars: int = 2000,
    max_batch: int = 64,
    max_length: int = 128,
    batch_wait_ms: float = 0.0,
    labels: Sequence[str] | None = None,
    name: str | None = None,
) -> FastAPI:
    """A FastAPI app that classifies texts with a saved or given classifier.

    `classifier` is a folder written by `nlpbook.deploy.save_classifier`, or a pair
    ``(tokenizer, model)`` where the model is a Hugging Face classifier or any logits
    function ``fn(input_ids, attention_mask) -> logits`` (such as
    `nlpbook.deploy.OnnxClassifier`). A request may hold up to `max_batch` texts of up to
    `max_chars` characters each; each text is cut to `max_length` tokens. `labels` names
    the classes (by default the model config's ``id2label``); `name` is what ``/health``
    calls the model (by default the folder's name). `batch_wait_ms` > 0 turns on
    micro-batching (see the module's docstring); the app must then run with its lifespan
    (uvicorn does; use ``with TestClient(app) as client:`` in tests).
    """
    if max_chars < 1 or max_batch < 1 or max_length < 2:
        raise ValueError(
            f"need max_chars >= 1, max_batch >= 1, max_length >= 2; got {max_chars}, "
            f"{max_batch}, {max_length}"
        )
    if batch_wait_ms < 0:
        raise ValueError(f"batch_wait_ms must be 0 (off) or positive, got {batch_wait_ms}")
    if isinstance(classifier, (str, Path)):
        tokenizer, model = load_classifier(classifier)
        name = name or Path(classifier).resolve().name
    else:
        tokenizer, model = classifier
    if isinstance(model, torch.nn.Module):
        model.eval()
        config = model.config
        max_length = min(max_length, config.max_position_embeddings)
        fn: LogitsFunction = logits_function(model)
        classes = list(labels) if labels is not None else label_names(model)
    else:
        fn = model
        num_labels = getattr(model, "num_labels", None)
        classes = list(labels) if labels is not None else label_names(model, num_labels)
    name = name or type(model).__name__
    expected = (
        f'expected a JSON object {{"texts": [...]}} with 1 to {max_batch} texts, each a '
        f"string of 1 to {max_chars} characters that is not only whitespace"
    )

    class PredictRequest(BaseModel):
        """The body of POST /predict."""

        model_config = ConfigDict(extra="forbid")
        texts: Annotated[
            list[Annotated[StrictStr, Field(max_length=max_chars)]],
            Field(min_length=1, max_length=max_batch),
        ]

        @field_validator("texts")
        @classmethod
        def _not_blank(cls, texts: list[str]) -> list[str]:
            blank = [i for i, text in enumerate(texts) if not text.strip()]
            if blank:
                raise ValueError(
                    f"texts {blank} are empty or only whitespace; each text needs at least "
                    "one character that is not a space"
                )
            return texts

    class Prediction(BaseModel):
        label: str
        probability: float

    class PredictResponse(BaseModel):
        predictions: list[Prediction]

    class Health(BaseModel):
        status: str
        model: str
        labels: list[str]

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def classify(texts: list[str]) -> list[Prediction]:
        logits = predict(fn, tokenizer, texts, batch_size=max_batch, max_length=max_length)
        probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()  # (N, L)
        best = probs.argmax(axis=1)
        return [
            Prediction(label=classes[int(k)], probability=float(p[k]))
            for k, p in zip(best, probs, strict=True)
        ]

    batcher = MicroBatcher(classify, executor, wait_ms=batch_wait_ms, max_texts=max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if batch_wait_ms > 0:
            batcher.start()
        try:
            yield
        finally:
            await batcher.stop()  # the executor stays: the app may be started again

    app = FastAPI(title=f"{name} classifier", lifespan=lifespan)
    app.state.batcher = batcher  # its `calls` count how many model calls served the requests

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"error": expected, "detail": detail})

    @app.get("/health")
    async def health() -> Health:
        return Health(status="ok", model=name, labels=classes)

    @app.post("/predict")
    async def predict_endpoint(request: PredictRequest) -> PredictResponse:
        if batch_wait_ms > 0:
            predictions = await batcher.submit(request.texts)
        else:
            loop = asyncio.get_running_loop()
            predictions = await loop.run_in_executor(executor, classify, request.texts)
        return PredictResponse(predictions=predictions)

    return app


class MicroBatcher:
    """Group the texts of requests that arrive close together into one model call.

    `submit(texts)` queues the texts and waits for their results. A worker task takes the
    first waiting request, then keeps collecting requests for `wait_ms` milliseconds or
    until `max_texts` texts are gathered, runs `classify` on all of them in `executor` (a
    thread, so the event loop keeps accepting requests) and hands each request its slice.
    """

    def __init__(
        self, classify: Any, executor: ThreadPoolExecutor, *, wait_ms: float, max_texts: int
    ) -> None:
        self.classify, self.executor = classify, executor
        self.wait, self.max_texts = wait_ms / 1000, max_texts
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.calls = 0  # model calls made, for measuring how much grouping happened

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def submit(self, texts: list[str]) -> list[Any]:
        if self.task is None or self.queue is None:
            raise RuntimeError("the micro-batcher is not running: start the app's lifespan")
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        waiting = None  # a request that did not fit into the last group: it starts the next
        while True:
            group = [waiting if waiting is not None else await self.queue.get()]
            waiting, size = None, len(group[0][0])
            deadline = loop.time() + self.wait
            while size < self.max_texts:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    break
                if size + len(item[0]) > self.max_texts:
                    waiting = item
                    break
                group.append(item)
                size += len(item[0])
            await self._run(group)

    async def _run(self, group: list[tuple[list[str], asyncio.Future]]) -> None:
        texts = [text for item in group for text in item[0]]
        self.calls += 1
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.classify, texts
            )
        except Exception as error:  # every waiting request learns of the failure
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for item_texts, future in group:
            if not future.done():
                future.set_result(results[start : start + len(item_texts)])
            start += len(item_texts)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(
    folder: str | Path,
    *,
    port: int | None = None,
    threads: int = 1,
    batch_wait_ms: float = 0.0,
    max_batch: int = 64,
    timeout: float = 120.0,
) -> Iterator[str]:
    """Run ``python -m nlpbook.serve`` for `folder` on 127.0.0.1 while the block runs.

    Yields the server's base URL once ``/health`` answers; stops the server when the
    block ends, also after an error. Raises if the server exits or does not answer
    within `timeout` seconds, with what it printed.
    """
    import httpx

    port = port or free_port()
    cmd = [
        sys.executable, "-m", "nlpbook.serve", "--model", str(folder), "--port", str(port),
        "--threads", str(threads), "--batch-wait-ms", str(batch_wait_ms),
        "--max-batch", str(max_batch), "--log-level", "warning",
    ]  # fmt: skip
    # the server's output goes to a file, not a pipe: a pipe nobody reads fills up and blocks
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(
                    f"the server exited with status {process.returncode}:\n{log.read()}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer {url}/health in {timeout:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def load_test(
    url: str,
    texts: Sequence[str],
    *,
    requests: int = 200,
    concurrency: int = 8,
    texts_per_request: int = 1,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Send `requests` POST /predict requests, `concurrency` at a time; time each one.

    Request i carries `texts_per_request` texts taken in turn from `texts`. Every request
    is counted: ``errors`` maps each failure, an HTTP status or an exception's name, to how
    many requests ended so (empty when all succeeded). Returns ``requests``, ``errors``,
    ``p50_ms`` and ``p95_ms`` (latency of the successful requests, as the client sees it),
    ``seconds`` (the whole test) and ``per_second`` (successful requests per second).
    Blocks until done; in a notebook, whose event loop is already running, it runs in a
    thread of its own.
    """
    if requests < 1 or concurrency < 1 or texts_per_request < 1:
        raise ValueError(
            "requests, concurrency and texts_per_request must be at least 1, got "
            f"{requests}, {concurrency}, {texts_per_request}"
        )
    if isinstance(texts, str) or not texts:
        raise ValueError("texts must be a non-empty sequence of strings")
    coroutine = _load_test(url, list(texts), requests, concurrency, texts_per_request, timeout)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:  # inside a running loop (a notebook)
        return pool.submit(asyncio.run, coroutine).result()


async def _load_test(
    url: str, texts: list[str], requests: int, concurrency: int, per_request: int, timeout: float
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = {"texts": [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]}
        async with gate:
            start = time.perf_counter()
            try:
                response = await client.post(f"{url}/predict", json=body)
            except httpx.HTTPError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                return
            if response.status_code == 200 and len(response.json()["predictions"]) == per_request:
                latencies.append(time.perf_counter() - start)
            else:
                key = str(response.status_code)
                errors[key] = errors.get(key, 0) + 1

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(one(client, i) for i in range(requests)))
    seconds = time.perf_counter() - start
    assert len(latencies) + sum(errors.values()) == requests  # no request goes uncounted
    ms = 1000 * np.array(latencies) if latencies else np.array([np.nan])
    return {
        "requests": requests,
        "errors": errors,
        "p50_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "seconds": seconds,
        "per_second": len(latencies) / seconds,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m nlpbook.serve --model DIR``: serve a saved classifier with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve a saved text classifier over HTTP.")
    parser.add_argument("--model", required=True, type=Path, help="folder of save_classifier")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--max-batch", type=int, default=64, help="most texts per request")
    parser.add_argument("--max-chars", type=int, default=2000, help="most characters per text")
    parser.add_argument(
        "--batch-wait-ms", type=float, default=0.0, help="micro-batching window (0: off)"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn's log level")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    app = create_app(
        args.model,
        max_batch=args.max_batch,
        max_chars=args.max_chars,
        batch_wait_ms=args.batch_wait_ms,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
