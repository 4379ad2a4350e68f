"""Making a trained classifier cheaper to run, and measuring what that costs and saves.

A fine-tuned classifier leaves training as float32 PyTorch weights. Serving it asks other
questions than training did: how many megabytes must be shipped, how long one sentence
waits for its answer (latency, by its median and its 95th percentile, the slow tail a
user notices), how many sentences a core classifies per second (throughput), and whether
a cheaper version still gives the same answers. Two standard ways to make it cheaper:

- **dynamic int8 quantisation** (`quantize_dynamic`): every linear layer's weight matrix
  is stored as 8-bit integers with one float scale, a quarter of the bytes; at run time
  each input is quantised on the fly, the product is computed in integers and scaled back;
- **ONNX export** (`export_onnx`, `OnnxClassifier`): the model becomes a framework-free
  graph of operators that ONNX Runtime optimises (fusing operations) and runs without
  Python in the loop, and that ONNX Runtime can quantise too (`quantize_onnx`).

Every variant is called the same way, ``logits = fn(input_ids, attention_mask)`` on a padded
batch (`logits_function` turns a PyTorch classifier into such a function), so one
harness measures them all: `latency` times a batch (`latencies`: several variants taking
turns), `predict` classifies a list of texts, `compare` makes the table of size, speed,
accuracy and agreement.

>>> stats = latency(lambda input_ids, attention_mask: input_ids * 2,
...                 {"input_ids": torch.ones(4, 3), "attention_mask": torch.ones(4, 3)},
...                 repeats=5, warmup=1)
>>> sorted(stats)
['cpu_median_ms', 'median_ms', 'p95_ms', 'per_second']
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nlpbook.finetune import BertForMeanPooledClassification, DynamicPadding, accuracy
from nlpbook.train import text_list

LogitsFunction = Callable[..., Tensor]  # fn(input_ids (B, T), attention_mask (B, T)) -> (B, L)
MB = 1e6  # sizes are in megabytes of 10^6 bytes


def save_classifier(
    model: nn.Module, tokenizer: Any, folder: str | Path, *, labels: Sequence[str] | None = None
) -> Path:
    """Save a Hugging Face classifier and its tokenizer together in `folder` (created).

    `labels` names the classes in order (``("negative", "positive")`` for SST-2); they are
    written into the model's config (``id2label``), where `load_classifier` and the web
    service (`nlpbook.serve`) read them. Returns the folder.
    """
    folder = Path(folder)
    num_labels = model.config.num_labels
    if labels is not None and len(labels) != num_labels:
        raise ValueError(f"the model has {num_labels} classes but {len(labels)} labels were given")
    folder.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_classifier(folder: str | Path) -> tuple[Any, BertForMeanPooledClassification]:
    """``(tokenizer, model)`` saved by `save_classifier`, the model on the CPU in eval mode."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds no saved classifier (expected config.json, the weights and the "
            "tokenizer files written by save_classifier)"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertForMeanPooledClassification.from_pretrained(folder).eval()
    return tokenizer, model


def label_names(model: Any, num_labels: int | None = None) -> list[str]:
    """The class names of a classifier, from its config's ``id2label`` (``LABEL_i`` if unset)."""
    config = getattr(model, "config", None)
    if config is not None:
        return [config.id2label[i] for i in range(config.num_labels)]
    if num_labels is None:
        raise ValueError("the model has no config: say how many classes it has")
    return [f"LABEL_{i}" for i in range(num_labels)]


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of `model`, on the CPU, whose ``nn.Linear`` layers compute in int8.

    Each linear weight is stored as int8 with one float scale per matrix (symmetric,
    per tensor); each input is quantised when it arrives ("dynamic": no calibration data
    needed), multiplied in integers, and the result scaled back to float. In a BERT that
    is every query/key/value/output projection and both feed-forward layers of every
    block, plus the classifier: nearly all the arithmetic. What stays float32: the
    embedding tables (in MiniLM half of the parameters, but only looked up, not
    multiplied), layer norms, softmax and GELU. `model` itself is left unchanged.

    Uses ``torch.ao.quantization.quantize_dynamic``, which PyTorch has deprecated in favour
    of the separate ``torchao`` package but which still works in the pinned version; its
    deprecation warnings are silenced here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed).*")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8
        )


def logits_function(model: nn.Module) -> LogitsFunction:
    """``fn(input_ids, attention_mask) -> logits`` of a Hugging Face classifier, no autograd."""

    def fn(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(input_ids=input_ids, attention_mask=attention_mask).logits

    return fn


class _Logits(nn.Module):
    """The classifier as a module from two tensors to its logits: the graph ONNX records."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model: nn.Module, tokenizer: Any, path: str | Path, *, opset: int = 18) -> Path:
    """Export a classifier to one ONNX file: ``(input_ids, attention_mask) -> logits``.

    Both inputs are int64 (B, T) with dynamic batch size B and length T; the output is
    float32 (B, num_labels). The example batch that is traced has two sentences of
    different lengths, so padding (mask 0) is part of the recorded graph.

    The route is PyTorch's default exporter (``torch.onnx.export(..., dynamo=True)``,
    which records the model with ``torch.export`` and needs the ``onnxscript`` package).
    The older TorchScript exporter (``dynamo=False``) records one execution by tracing:
    Hugging Face's attention-mask code branches in Python on whether the example has any
    padding, the trace keeps only the branch it took, and the exported model's logits are
    then wrong for batches with padding; we do not use it. Opset 18 is the oldest that
    the default exporter writes without converting. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = tokenizer(
        ["an example sentence that is longer", "short"], padding=True, return_tensors="pt"
    )
    inputs = (example["input_ids"], example["attention_mask"])
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    module = _Logits(copy.deepcopy(model).cpu().eval()).eval()
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={
                "input_ids": {0: batch, 1: length},
                "attention_mask": {0: batch, 1: length},
            },
            opset_version=opset,
            dynamo=True,
            external_data=False,  # one self-contained file (fine below ONNX's 2 GB limit)
            verbose=False,
        )
    return path


@contextmanager
def _quiet_exporter():
    """Silence the exporter's progress lines and notes (it logs and prints while it works)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def quantize_onnx(path: str | Path, out: str | Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of the ONNX model at `path`, saved to `out`.

    The same idea as `quantize_dynamic`, done on the graph: the weights of the matrix
    products become int8 (``MatMulInteger`` with per-tensor scales) and activations are
    quantised as they arrive. Unlike PyTorch's version it quantises the embedding lookups
    (``Gather``) too, so the file is smaller still. Returns `out`.

    The exporter stores shapes of intermediate values (``value_info``) that ONNX's shape
    inference, run by the quantiser, disagrees with; they are only hints, so they are
    dropped first.
    """
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = onnx.load(str(path))
    del graph.graph.value_info[:]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser advises pre-processing on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "model.onnx"
            onnx.save(graph, str(plain))
            ort_quantize_dynamic(str(plain), str(out), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return out


class OnnxClassifier:
    """An exported classifier run by ONNX Runtime on the CPU, called like `logits_function`.

    ``OnnxClassifier(path, threads=1)(input_ids, attention_mask)`` takes the padded batch as
    tensors or NumPy arrays (B, T) and returns the logits as a float32 tensor (B, L).
    `threads` is ONNX Runtime's number of threads inside one operator (intra-op), the
    counterpart of ``torch.set_num_threads``; operators run one after another.
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ONNX model at {self.path}; create one with export_onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.num_labels = self.session.get_outputs()[0].shape[-1]

    def __call__(
        self, input_ids: Tensor | np.ndarray, attention_mask: Tensor | np.ndarray
    ) -> Tensor:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        feed = {name: np.asarray(feed[name], dtype=np.int64) for name in self.input_names}
        (logits,) = self.session.run(["logits"], feed)  # (B, L)
        return torch.from_numpy(logits)

    def __repr__(self) -> str:
        return f"OnnxClassifier({str(self.path)!r})"


def model_size_mb(model: nn.Module | str | Path) -> float:
    """The size on disk, in MB (10^6 bytes), of a model as it would be shipped.

    A module is measured by saving its ``state_dict`` with ``torch.save`` to a temporary
    file (a quantised module's int8 weights are saved as int8); a path by its file size,
    or the total size of the files in a folder (a ``save_pretrained`` folder).
    """
    if isinstance(model, nn.Module):
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "model.pt"
            torch.save(model.state_dict(), file)
            return file.stat().st_size / MB
    path = Path(model)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MB
    if path.is_file():
        return path.stat().st_size / MB
    raise FileNotFoundError(f"{path} is neither a model file nor a folder")


def latency(
    fn: Callable[..., Any], batch: Mapping[str, Any], *, repeats: int = 20, warmup: int = 3
) -> dict[str, float]:
    """Time ``fn(**batch)``: median and 95th-percentile milliseconds, and items per second.

    `warmup` calls run first and are not timed (first calls allocate memory and pick
    kernels); then each of `repeats` calls is timed alone with ``time.perf_counter``.
    ``per_second`` is the batch size (the length of the first input) over the median.
    ``cpu_median_ms`` is the median CPU time of the calling thread per call
    (``time.thread_time``): with one intra-op thread the whole computation runs in the
    calling thread, so on a machine busy with other programs this is what a call takes
    on an idle core, while the wall-clock times include waiting for a core.
    """
    return latencies([fn], batch, repeats=repeats, warmup=warmup)[0]


def latencies(
    fns: Sequence[Callable[..., Any]],
    batch: Mapping[str, Any],
    *,
    repeats: int = 20,
    warmup: int = 3,
) -> list[dict[str, float]]:
    """`latency` of several functions on one batch, timed in turns (fn 1, fn 2, ..., fn 1, ...).

    Taking turns, rather than timing one function after the other, spreads any change in
    the machine's load over all of them alike, so their ratios stay fair.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if not batch:
        raise ValueError("the batch is empty: expected inputs such as input_ids, attention_mask")
    size = len(next(iter(batch.values())))
    for _ in range(warmup):
        for fn in fns:
            fn(**batch)
    times, cpu = np.empty((len(fns), repeats)), np.empty((len(fns), repeats))
    for i in range(repeats):
        for k, fn in enumerate(fns):
            start, cpu_start = time.perf_counter(), time.thread_time()
            fn(**batch)
            times[k, i], cpu[k, i] = time.perf_counter() - start, time.thread_time() - cpu_start
    out = []
    for k in range(len(fns)):
        median = float(np.median(times[k]))
        out.append(
            {
                "median_ms": 1000 * median,
                "p95_ms": 1000 * float(np.percentile(times[k], 95)),
                "per_second": size / median,
                "cpu_median_ms": 1000 * float(np.median(cpu[k])),
            }
        )
    return out


def encode_batch(
    tokenizer: Any, texts: Sequence[str], *, max_length: int = 128
) -> dict[str, Tensor]:
    """Tokenize `texts` into one batch padded to its longest text.

    Returns ``input_ids`` and ``attention_mask`` (B, T), T the longest text's tokens.
    """
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return DynamicPadding(tokenizer.pad_token_id)([{"input_ids": x} for x in ids])


def predict(
    fn: LogitsFunction,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Logits (N, L) of any variant `fn` for `texts`, in the input order.

    As `nlpbook.finetune.predict_logits` does for a PyTorch model: texts are sorted by
    their number of characters, so that each batch is padded only to about its own
    longest text.
    """
    texts = text_list(texts, batch_size=batch_size)
    order = np.argsort([len(t) for t in texts], kind="stable")
    parts = []
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        batch = encode_batch(tokenizer, [texts[i] for i in rows], max_length=max_length)
        parts.append((rows, fn(**batch).float().cpu().numpy()))
    out = np.empty((len(texts), parts[0][1].shape[-1]), dtype=np.float32)
    for rows, logits in parts:
        out[rows] = logits
    return out


@dataclass(frozen=True)
class Variant:
    """One way of running the classifier: its name, its logits function, its size in MB."""

    name: str
    fn: LogitsFunction
    size_mb: float


def build_variants(
    model: nn.Module,
    tokenizer: Any,
    folder: str | Path,
    *,
    threads: int = 1,
    onnx_int8: bool = True,
) -> list[Variant]:
    """PyTorch fp32, PyTorch dynamic int8, ONNX Runtime fp32 (and int8) of one classifier.

    The ONNX files are written into `folder` (``model.onnx``, ``model-int8.onnx``). ONNX
    Runtime sessions use `threads` intra-op threads; `compare` sets PyTorch's.
    """
    folder = Path(folder)
    model = model.cpu().eval()
    int8 = quantize_dynamic(model)
    onnx_path = export_onnx(model, tokenizer, folder / "model.onnx")
    variants = [
        Variant("PyTorch fp32", logits_function(model), model_size_mb(model)),
        Variant("PyTorch int8 (dynamic)", logits_function(int8), model_size_mb(int8)),
        Variant(
            "ONNX Runtime fp32",
            OnnxClassifier(onnx_path, threads=threads),
            model_size_mb(onnx_path),
        ),
    ]
    if onnx_int8:
        int8_path = quantize_onnx(onnx_path, folder / "model-int8.onnx")
        variants.append(
            Variant(
                "ONNX Runtime int8 (dynamic)",
                OnnxClassifier(int8_path, threads=threads),
                model_size_mb(int8_path),
            )
        )
    return variants


@contextmanager
def torch_threads(n: int):
    """Run the block with PyTorch using `n` intra-op threads, then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compare(
    variants: Sequence[Variant],
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    batch_size: int = 32,
    repeats: int = 20,
    warmup: int = 3,
    threads: int = 1,
    max_length: int = 128,
) -> list[dict[str, Any]]:
    """One row per variant: size, latency at batch 1 and `batch_size`, accuracy, agreement.

    Latency is timed on the first text alone and on the first `batch_size` texts as one
    padded batch, the variants taking turns (`latencies`), PyTorch running on `threads`
    threads (set ONNX Runtime's when building the variants, `build_variants`);
    ``b<batch_size>_cpu_ms`` is the batch's median CPU
    time (see `latency`), and ``per_second`` is sentences per second at that batch size.
    Accuracy (percent) is on all `texts`; ``agreement`` is the percentage of texts whose
    predicted class equals the first variant's.
    """
    if not variants:
        raise ValueError("no variants to compare")
    if len(texts) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} texts, got {len(texts)}")
    labels = np.asarray(labels)
    one = encode_batch(tokenizer, texts[:1], max_length=max_length)
    many = encode_batch(tokenizer, texts[:batch_size], max_length=max_length)
    fns = [variant.fn for variant in variants]
    rows = []
    with torch_threads(threads):
        logits = [predict(fn, tokenizer, texts, max_length=max_length) for fn in fns]
        single = latencies(fns, one, repeats=repeats, warmup=warmup)
        batched = latencies(fns, many, repeats=repeats, warmup=warmup)
    reference = logits[0].argmax(axis=1)
    for k, variant in enumerate(variants):
        rows.append(
            {
                "variant": variant.name,
                "size_mb": variant.size_mb,
                "b1_median_ms": single[k]["median_ms"],
                "b1_p95_ms": single[k]["p95_ms"],
                f"b{batch_size}_median_ms": batched[k]["median_ms"],
                f"b{batch_size}_p95_ms": batched[k]["p95_ms"],
                f"b{batch_size}_cpu_ms": batched[k]["cpu_median_ms"],
                "per_second": batched[k]["per_second"],
                "accuracy": 100 * accuracy(logits[k], labels),
                "agreement": 100 * float(np.mean(logits[k].argmax(axis=1) == reference)),
            }
        )
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of `compare` (or any list of flat dicts) as an aligned text table."""
    if not rows:
        raise ValueError("no rows to format")
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(columns, widths, strict=True))
        )
    ]
    for r in cells:
        lines.append(
            "  ".join(
                v.rjust(w) if i else v.ljust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return (
            "nan" if math.isnan(value) else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
        )
    return str(value)
