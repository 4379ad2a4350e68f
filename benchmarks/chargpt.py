"""The character-level "baby GPT" on Tiny Shakespeare: validation loss and training speed.

The recipe is nanoGPT's CPU example (4 layers, 4 heads, 128 dimensions, block 64, batch 12,
2,000 iterations, AdamW with lr 1e-3, beta2 0.99, weight decay 0.1 on matrices, 100 warm-up
steps and cosine decay to 1e-4, gradient clipping at 1, no dropout) on nanoGPT's split: the
first 90% of the characters for training, the rest for validation. Our model is
`nlpbook.gpt.GPT`, trained by the book's shared loop `nlpbook.fit`; the validation loss is the
mean over the *whole* validation split (`nlpbook.lmdata.mean_loss`), not an estimate.

    python benchmarks/chargpt.py                      # ours
    python benchmarks/chargpt.py --nanogpt ../nanoGPT # and nanoGPT's train.py, side by side
    python benchmarks/chargpt.py --seeds 0 1 2 3 4 --threads 1 --nanogpt ../nanoGPT
    torchrun --nproc_per_node=2 benchmarks/chargpt.py --iters 200   # data-parallel

With ``--nanogpt PATH`` (a checkout of https://github.com/karpathy/nanoGPT), the same run
writes the data in nanoGPT's format to a temporary folder and runs its `train.py` there with
the same settings and thread count *at the same time* as ours (so that both see the same
machine: give each process one core with ``--threads 1``), reads its per-iteration times, and
scores its final checkpoint with the same `mean_loss`. One run of a small model says little
about a target a hundredth of a nat wide, so ``--seeds`` trains once per seed and ends with
the mean and standard deviation over the seeds; seed ``s`` is our ``set_seed(s)`` and, for
nanoGPT, its fixed ``torch.manual_seed(1337)`` changed to ``1337 + s`` in the copy it runs
(seed 0 is nanoGPT as published). Under `torchrun`, each of the N
processes trains on its share of every global batch of 12 and gradients are averaged
(DistributedDataParallel).

The last line printed is ``val_loss=<float> seconds=<float>`` for our model (means over the
seeds).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import nlpbook
from nlpbook import data, distributed
from nlpbook.gpt import GPT, GPTConfig
from nlpbook.lmdata import RandomChunks, mean_loss
from nlpbook.schedule import warmup_cosine

RECIPE = dict(
    n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, lr=1e-3, min_lr=1e-4,
    warmup=100, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
)  # fmt: skip


def char_data() -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Tiny Shakespeare as character ids, split 90/10 as nanoGPT does."""
    text = data.tiny_shakespeare()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    return chars, ids[:split], ids[split:]


def adamw(model: torch.nn.Module) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (not on norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": RECIPE["weight_decay"]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=RECIPE["lr"], betas=(0.9, RECIPE["beta2"]))


def train_ours(iters: int, seed: int) -> dict:
    chars, train_ids, val_ids = char_data()
    nlpbook.set_seed(seed)
    config = GPTConfig(
        vocab_size=len(chars),
        block_size=RECIPE["block_size"],
        n_layer=RECIPE["n_layer"],
        n_head=RECIPE["n_head"],
        n_embd=RECIPE["n_embd"],
        bias=False,
        mlp="gelu",
    )
    model = GPT(config)
    optimizer = adamw(model)
    schedule = warmup_cosine(
        optimizer, warmup_steps=RECIPE["warmup"], total_steps=iters, min_lr=RECIPE["min_lr"]
    )
    batches = RandomChunks(
        train_ids, block_size=RECIPE["block_size"], batch_size=RECIPE["batch_size"], seed=seed
    )
    stamps: list[float] = []
    history = nlpbook.fit(
        model,
        batches,  # under torchrun, fit gives each process its rows of every batch
        optimizer=optimizer,
        scheduler=schedule,
        steps=iters,
        grad_clip=RECIPE["grad_clip"],
        callbacks=[lambda step, loss, model: stamps.append(time.perf_counter())],
        progress=False,
    )
    val = mean_loss(model, val_ids, block_size=RECIPE["block_size"])
    return {
        "what": "nlpbook GPT + fit",
        "params": sum(p.numel() for p in model.parameters()),
        "ms/iter": 1000 * statistics.median(np.diff(stamps)) if len(stamps) > 1 else float("nan"),
        "seconds": history.seconds,
        "train loss": statistics.fmean(history.loss[-50:]),
        "val loss": val,
    }


class _FullLogits(torch.nn.Module):
    """nanoGPT's model returns logits for every position only when given targets."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor):
        idx = idx.contiguous()  # nanoGPT views the targets as one row
        return self.model(idx, idx)


NANOGPT_SEED = "torch.manual_seed(1337 + seed_offset)"  # the line of train.py that seeds it


def start_nanogpt(
    checkout: Path, work: Path, iters: int, threads: int, *, seed: int = 0
) -> subprocess.Popen:
    """Start nanoGPT's own train.py in `work` on the same data and settings as ours, its
    seed 1337 moved to ``1337 + seed``."""
    chars, train_ids, val_ids = char_data()
    for name in ("model.py", "configurator.py"):
        shutil.copy(checkout / name, work / name)
    train_py = (checkout / "train.py").read_text()
    if train_py.count(NANOGPT_SEED) != 1:
        raise RuntimeError(
            f"expected the line {NANOGPT_SEED!r} once in {checkout / 'train.py'}, to change its "
            "seed; this nanoGPT differs from the one the benchmark was written for"
        )
    seeded = NANOGPT_SEED.replace("1337", f"{1337 + seed}")
    (work / "train.py").write_text(train_py.replace(NANOGPT_SEED, seeded))
    folder = work / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    train_ids.numpy().astype(np.uint16).tofile(folder / "train.bin")
    val_ids.numpy().astype(np.uint16).tofile(folder / "val.bin")
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars))}
    (folder / "meta.pkl").write_bytes(pickle.dumps(meta))
    r = RECIPE
    args = [
        "--dataset=shakespeare_char", "--device=cpu", "--compile=False", "--dtype=float32",
        "--eval_iters=20", "--log_interval=1", f"--block_size={r['block_size']}",
        f"--batch_size={r['batch_size']}", f"--n_layer={r['n_layer']}",
        f"--n_head={r['n_head']}", f"--n_embd={r['n_embd']}", f"--max_iters={iters}",
        f"--lr_decay_iters={iters}", "--dropout=0.0", f"--eval_interval={iters}",
        "--always_save_checkpoint=True", "--out_dir=out", "--gradient_accumulation_steps=1",
        f"--learning_rate={r['lr']}", f"--min_lr={r['min_lr']}",
        f"--warmup_iters={r['warmup']}", f"--beta2={r['beta2']}", "--wandb_log=False",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_nanogpt(process: subprocess.Popen, work: Path, iters: int, start: float) -> dict:
    """Wait for nanoGPT, read its per-iteration times, score its final checkpoint."""
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"nanoGPT's train.py failed:\n{stdout[-2000:]}{stderr}")
    times = [float(t) for t in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", stdout, re.M)]
    losses = [float(x) for x in re.findall(r"^iter \d+: loss ([\d.]+),", stdout, re.M)]
    spec = importlib.util.spec_from_file_location("nanogpt_model", work / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ckpt = torch.load(work / "out" / "ckpt.pt", map_location="cpu", weights_only=False)
    if ckpt["iter_num"] != iters:
        raise RuntimeError(f"nanoGPT's checkpoint is from iteration {ckpt['iter_num']}")
    with contextlib.redirect_stdout(io.StringIO()):  # its constructor prints the size
        model = module.GPT(module.GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    _, _, val_ids = char_data()
    val = mean_loss(_FullLogits(model), val_ids, block_size=RECIPE["block_size"])
    return {
        "what": "nanoGPT train.py",
        "params": sum(p.numel() for p in model.parameters()),
        "ms/iter": statistics.median(times[1:]),  # the first includes warm-up of the kernels
        "seconds": seconds,
        "train loss": statistics.fmean(losses[-50:]),
        "val loss": val,
    }


def _run_seed(args: argparse.Namespace, seed: int, threads: int, rank: int) -> list[dict]:
    """Our model, and nanoGPT's at the same time when asked (so both see the same machine)."""
    if args.nanogpt is None or rank != 0:
        return [train_ours(args.iters, seed)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        process = start_nanogpt(args.nanogpt, Path(tmp), args.iters, threads, seed=seed)
        rows = [train_ours(args.iters, seed)]
        rows.append(finish_nanogpt(process, Path(tmp), args.iters, start))
    return rows


def _mean_sd(values: list[float], *, digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} +- {sd:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=2000, help="training iterations")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument(
        "--seeds", "--seed", type=int, nargs="+", default=[0], help="one training run per seed"
    )
    parser.add_argument("--nanogpt", type=Path, default=None, help="a nanoGPT checkout to compare")
    args = parser.parse_args()
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct non-negative integers, got {args.seeds}")
    rank, world = distributed.init()
    threads = args.threads or max(1, torch.get_num_threads() // world)
    torch.set_num_threads(threads)
    runs = {seed: _run_seed(args, seed, threads, rank) for seed in args.seeds}
    if rank == 0:
        print(
            f"Tiny Shakespeare, characters, {args.iters} iterations of {RECIPE['batch_size']} x "
            f"{RECIPE['block_size']}, {world} process(es) x {threads} thread(s)"
        )
        print(f"{'model':<20}{'seed':>6}{'params':>10}{'ms/iter':>10}{'seconds':>10}"
              f"{'train loss':>12}{'val loss':>10}")  # fmt: skip
        for seed, rows in runs.items():
            for row in rows:
                print(
                    f"{row['what']:<20}{seed:>6}{row['params']:>10,}{row['ms/iter']:>10.1f}"
                    f"{row['seconds']:>10.1f}{row['train loss']:>12.4f}{row['val loss']:>10.4f}"
                )
        columns = list(zip(*runs.values(), strict=True))  # one tuple of runs per model
        if len(runs) > 1:
            print(f"over {len(runs)} seeds, mean +- sd:")
            for model_runs in columns:
                val = _mean_sd([r["val loss"] for r in model_runs], digits=4)
                speed = _mean_sd([r["ms/iter"] for r in model_runs], digits=1)
                print(f"  {model_runs[0]['what']:<20} val loss {val}   ms/iter {speed}")
        if len(columns) == 2:
            ratios = [
                theirs["ms/iter"] / ours["ms/iter"] for ours, theirs in zip(*columns, strict=True)
            ]
            print(f"speed ratio (nanoGPT ms/iter / ours): {statistics.median(ratios):.2f}"
                  + (" (median over the seeds)" if len(ratios) > 1 else ""))  # fmt: skip
        ours = columns[0]
        print(
            f"val_loss={statistics.fmean(r['val loss'] for r in ours):.4f} "
            f"seconds={statistics.fmean(r['seconds'] for r in ours):.1f}"
        )
    distributed.finish()


if __name__ == "__main__":
    main()
