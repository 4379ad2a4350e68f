"""Deploying the fine-tuned SST-2 classifier: size, latency, throughput and accuracy of
PyTorch fp32, PyTorch dynamic int8, ONNX Runtime fp32 and ONNX Runtime int8, and a load
test of the FastAPI service with and without micro-batching.

The classifier is the fine-tuned MiniLM of the chapter *Pretrained transformers*: a folder
saved by ``benchmarks/finetune_sst2.py --save DIR`` given with `--model DIR`, or, without
it, one fine-tuned here by that script's own code with its settings for the profile. Every
variant runs on the CPU with `--threads` intra-op threads (1 by default, the same for all,
so the comparison is fair), whatever the profile: int8 dynamic quantisation is a CPU
technique. Latency is timed on the first dev sentence alone (batch 1) and on the first 32
as one padded batch, the variants taking turns call by call, so that a change in the
machine's load hits all of them alike; ``b32_cpu_ms`` is the median CPU time of a batch-32
call, what it takes on an idle core (on a shared machine the wall-clock times also hold the
waiting for a core). Accuracy and agreement with fp32's predictions are on the dev
sentences (all 872 in `cpu` and `gpu`).

The load test starts ``python -m nlpbook.serve`` on 127.0.0.1 (one model thread), sends
single-sentence requests with 1 and with `concurrency` clients at a time, without
micro-batching and with a window of `batch_wait_ms` milliseconds; client and server share
the machine.

    python benchmarks/deploy.py [--profile smoke|cpu|gpu] [--model DIR] [--threads 1]
                                [--save DIR]

The last line is ``int8_speedup=<x> onnx_speedup=<x>``: the batch-32 median latency of
PyTorch fp32 over that of PyTorch int8 and of ONNX Runtime fp32.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

import nlpbook
from nlpbook import data
from nlpbook.deploy import build_variants, compare, format_table, load_classifier, save_classifier
from nlpbook.serve import load_test, serving

PROFILES = {
    # dev_examples: dev sentences scored (None: all 872); repeats/warmup: timed/untimed calls
    # per latency; requests: per load-test scenario; concurrency: clients at once in the
    # concurrent scenarios; batch_wait_ms: the micro-batching window
    "smoke": dict(dev_examples=64, repeats=3, warmup=1, requests=40, concurrency=8,
                  batch_wait_ms=5.0),
    "cpu": dict(dev_examples=None, repeats=20, warmup=3, requests=300, concurrency=16,
                batch_wait_ms=5.0),
    "gpu": dict(dev_examples=None, repeats=50, warmup=5, requests=1000, concurrency=16,
                batch_wait_ms=5.0),
}  # fmt: skip
BATCH = 32


def _finetune_benchmark():
    """benchmarks/finetune_sst2.py, the chapter's fine-tuning, loaded from beside us."""
    spec = importlib.util.spec_from_file_location(
        "finetune_sst2", Path(__file__).with_name("finetune_sst2.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finetuned_classifier(profile: str, folder: Path, *, seed: int) -> Path:
    """Fine-tune MiniLM with finetune_sst2.py's settings for `profile`; save it in `folder`."""
    finetune_sst2 = _finetune_benchmark()
    cfg = finetune_sst2.PROFILES[profile]
    texts, labels = data.sst2("train")
    dev_texts, dev_labels = data.sst2("dev")
    n = cfg["dev_examples"]
    model, tokenizer, acc, seconds, _ = finetune_sst2.finetune(
        cfg, texts, labels, dev_texts[:n], dev_labels[:n], seed=seed, device=nlpbook.auto_device()
    )
    print(f"fine-tuned MiniLM ({profile} settings): {acc:.1f}% dev accuracy in {seconds:.0f} s")
    return save_classifier(model, tokenizer, folder, labels=("negative", "positive"))


def load_tests(folder: Path, texts: list[str], cfg: dict, *, threads: int) -> list[dict]:
    rows = []
    for wait in (0.0, cfg["batch_wait_ms"]):
        with serving(folder, threads=threads, batch_wait_ms=wait) as url:
            load_test(url, texts, requests=10, concurrency=2)  # warm-up, not reported
            for concurrency in (1, cfg["concurrency"]):
                stats = load_test(url, texts, requests=cfg["requests"], concurrency=concurrency)
                rows.append(
                    {
                        "micro-batching": f"{wait:g} ms" if wait else "off",
                        "clients": concurrency,
                        "requests": stats["requests"],
                        "errors": sum(stats["errors"].values()),
                        "p50_ms": stats["p50_ms"],
                        "p95_ms": stats["p95_ms"],
                        "requests_per_s": stats["per_second"],
                    }
                )
                print(f"load test {rows[-1]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--model", type=Path, help="a classifier saved by finetune_sst2.py")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, every variant")
    parser.add_argument("--save", type=Path, help="keep the classifier fine-tuned here in DIR")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fine-tuning")
    args = parser.parse_args()
    cfg = PROFILES[args.profile]
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model
        if folder is None:
            nlpbook.set_seed(args.seed)
            folder = finetuned_classifier(
                args.profile, args.save or Path(tmp) / "classifier", seed=args.seed
            )
        tokenizer, model = load_classifier(folder)
        variants = build_variants(model, tokenizer, Path(tmp) / "onnx", threads=args.threads)
        dev_texts, dev_labels = data.sst2("dev")
        n = cfg["dev_examples"]
        dev_texts, dev_labels = dev_texts[:n], dev_labels[:n]
        rows = compare(
            variants,
            tokenizer,
            dev_texts,
            dev_labels,
            batch_size=BATCH,
            repeats=cfg["repeats"],
            warmup=cfg["warmup"],
            threads=args.threads,
        )
        served = load_tests(folder, dev_texts, cfg, threads=args.threads)

    print(
        f"\nSST-2 dev ({len(dev_texts)} sentences), profile {args.profile}, {args.threads} "
        f"thread(s); latency of batch 1 and batch {BATCH} over {cfg['repeats']} calls; "
        "sizes in MB (10^6 bytes) on disk; accuracy and agreement with fp32 in %"
    )
    print(format_table(rows))
    print(
        f"\nload test: POST /predict with one sentence per request, {cfg['requests']} "
        "requests per row, client and server on this machine"
    )
    print(format_table(served))
    cpu = {r["variant"]: r[f"b{BATCH}_cpu_ms"] for r in rows}
    ups = [f"{name} {cpu['PyTorch fp32'] / ms:.2f}" for name, ms in cpu.items()]
    print(f"speed-ups over PyTorch fp32 in CPU time at batch {BATCH}: {', '.join(ups)}")
    by_name = {r["variant"]: r[f"b{BATCH}_median_ms"] for r in rows}
    fp32 = by_name["PyTorch fp32"]
    print(
        f"int8_speedup={fp32 / by_name['PyTorch int8 (dynamic)']:.2f} "
        f"onnx_speedup={fp32 / by_name['ONNX Runtime fp32']:.2f}"
    )


if __name__ == "__main__":
    main()
