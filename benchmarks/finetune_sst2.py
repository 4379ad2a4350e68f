"""SST-2 sentiment: fine-tuned MiniLM against the book's other classifiers and prompting.

Fine-tunes all-MiniLM-L6-v2 (from the book's offline copy, with a linear layer on the mean of
its token vectors: `nlpbook.finetune.BertForMeanPooledClassification`; the word-embedding table
stays frozen) on the 67k GLUE SST-2 training phrases with `nlpbook.fit`, in batches of phrases
of similar lengths with dynamic padding, exactly as the chapter *Pretrained transformers* does,
and reports accuracy on the
872 dev sentences after the last step (no early stopping on dev). In the same run, on the
same dev sentences:

- the LSTM + GloVe classifier of the recurrent chapter, trained by `benchmarks/sentiment.py`'s
  own code with that chapter's settings for the profile (one seed);
- logistic regression (scikit-learn) on frozen MiniLM mean-pooled sentence embeddings of
  `frozen_examples` training phrases;
- SmolLM2-135M-Instruct prompted zero-shot and few-shot, comparing the next-token
  log-probabilities of the label words only, as they are and with contextual calibration
  (minus the log-probabilities for the content-free input "N/A"). `--layout plain`, the
  default and the better layout in the chapter, is a plain-text prompt; `chat` is the chat
  template with an instruction.

The last line is ``dev_accuracy=<percent> seconds=<training seconds>`` for the fine-tuned
MiniLM. Targets: >= 86% in the `cpu` profile within 10 minutes of training on 2 cores,
>= 89% in the `gpu` profile.

    python benchmarks/finetune_sst2.py [--profile smoke|cpu|gpu] [--threads 1]
                                       [--layout plain|chat] [--seed 0] [--finetune-only]
                                       [--save DIR]

`--finetune-only` skips the other models (to measure the fine-tuning over several seeds).
`--save DIR` keeps the fine-tuned classifier and its tokenizer in DIR
(`nlpbook.deploy.save_classifier`), for `benchmarks/deploy.py` and `python -m nlpbook.serve`.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

import nlpbook
from nlpbook import data
from nlpbook.deploy import save_classifier
from nlpbook.finetune import (
    BertForMeanPooledClassification,
    DynamicPadding,
    accuracy,
    classification_loss,
    fine_tune,
    predict_logits,
)
from nlpbook.pretrained import load_causal_lm
from nlpbook.prompting import chat_prompt, next_token_log_probs, prompt
from nlpbook.retrieval import encode

PROFILES = {
    # the chapter's fine-tuning settings in each profile (tests/test_repo.py checks them)
    "smoke": dict(steps=12, batch=8, lr=1e-4, warmup=2, max_length=64, frozen_examples=200,
                  shots=2, prompt_batch=8, dev_examples=64),
    "cpu": dict(steps=1000, batch=16, lr=1e-4, warmup=100, max_length=64, frozen_examples=3000,
                shots=4, prompt_batch=16, dev_examples=None),
    "gpu": dict(steps=4000, batch=32, lr=5e-5, warmup=400, max_length=64, frozen_examples=None,
                shots=4, prompt_batch=64, dev_examples=None),
}  # fmt: skip
INSTRUCTION = "Is the sentiment of this movie review positive or negative? Answer in one word."
LAYOUTS = ("plain", "chat")


def _sentiment_benchmark():
    """benchmarks/sentiment.py, the recurrent chapter's classifiers, loaded from beside us."""
    spec = importlib.util.spec_from_file_location(
        "sentiment", Path(__file__).with_name("sentiment.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finetune(cfg: dict, texts, labels, dev_texts, dev_labels, *, seed: int, device):
    """Fine-tune MiniLM on all training phrases.

    Returns (model, tokenizer, dev accuracy, wall seconds, CPU seconds of the training); with
    one thread and other programs sharing the machine, the CPU seconds are what the training
    takes on an idle core."""
    folder = nlpbook.assets.locate("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    nlpbook.set_seed(seed)
    model = BertForMeanPooledClassification.from_pretrained(folder, num_labels=2).to(device)
    # the word-embedding table (11.7M of the 22.7M parameters) stays as pretrained, as in the
    # chapter: its update was a third of each step's time on a CPU
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    ids = tokenizer(texts, truncation=True, max_length=cfg["max_length"])["input_ids"]
    features = [{"input_ids": x, "label": int(y)} for x, y in zip(ids, labels, strict=True)]
    cpu_start = time.process_time()
    history = fine_tune(
        model,
        features,
        collate=DynamicPadding(tokenizer.pad_token_id),
        loss_fn=classification_loss,
        steps=cfg["steps"],
        batch_size=cfg["batch"],
        lr=cfg["lr"],
        warmup_steps=cfg["warmup"],
        seed=seed,
        desc="fine-tuning MiniLM",
    )
    cpu_seconds = time.process_time() - cpu_start
    logits = predict_logits(model, tokenizer, dev_texts)
    return model, tokenizer, 100 * accuracy(logits, dev_labels), history.seconds, cpu_seconds


def frozen_probe(cfg: dict, texts, labels, dev_texts, dev_labels, *, seed: int, device):
    """Logistic regression on frozen, mean-pooled MiniLM embeddings; (dev accuracy, s)."""
    folder = nlpbook.assets.locate("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder).to(device)  # the pretrained BertModel
    rows = np.random.default_rng(seed).permutation(len(texts))[: cfg["frozen_examples"]]
    start = time.perf_counter()
    train = encode([texts[i] for i in rows], tokenizer=tokenizer, model=encoder)
    dev = encode(dev_texts, tokenizer=tokenizer, model=encoder)
    probe = LogisticRegression(max_iter=2000).fit(train, labels[rows])
    return 100 * accuracy(probe.predict(dev), dev_labels), time.perf_counter() - start, len(rows)


def few_shot_examples(texts, labels, n: int, *, seed: int) -> list[tuple[str, str]]:
    """`n` training sentences of 12-25 words, alternating positive and negative (seeded)."""
    rng = np.random.default_rng(seed)
    candidates = [int(i) for i in rng.permutation(len(texts)) if 12 <= len(texts[i].split()) <= 25]
    positives = [i for i in candidates if labels[i] == 1][: (n + 1) // 2]
    negatives = [i for i in candidates if labels[i] == 0][: n // 2]
    pairs = itertools.zip_longest(positives, negatives)  # one more positive if n is odd
    order = [i for pair in pairs for i in pair if i is not None]
    return [(texts[i], "positive" if labels[i] else "negative") for i in order]


def prompting(cfg: dict, shots, dev_texts, dev_labels, *, layout: str, device):
    """SmolLM2's zero- and few-shot accuracy, raw and calibrated: {setting: (dev accuracy, s)}."""
    tokenizer, lm = load_causal_lm("smollm2-135m-instruct", device=device)
    if layout == "chat":
        candidates = ["negative", "positive"]

        def build(text, examples):
            return chat_prompt(tokenizer, text, instruction=INSTRUCTION, examples=examples)
    else:
        candidates = [" negative", " positive"]

        def build(text, examples):
            return prompt(text, examples=examples)

    out = {}
    for setting, examples in [("zero-shot", []), (f"{len(shots)}-shot", shots)]:
        start = time.perf_counter()
        scores = next_token_log_probs(
            lm,
            tokenizer,
            [build(t, examples) for t in dev_texts],
            candidates=candidates,
            batch_size=cfg["prompt_batch"],
        )
        seconds = time.perf_counter() - start
        content_free = next_token_log_probs(
            lm, tokenizer, [build("N/A", examples)], candidates=candidates
        )
        out[setting] = (100 * accuracy(scores, dev_labels), seconds)
        out[f"{setting}, calibrated"] = (100 * accuracy(scores - content_free, dev_labels), seconds)
    return out


def other_models(args, cfg: dict, texts, labels, dev_texts, dev_labels, *, device) -> list:
    """The table's other rows: LSTM + GloVe, the frozen probe, SmolLM2 prompted."""
    rows = []  # (model, labelled examples, dev accuracy, seconds)
    # the recurrent chapter's LSTM + GloVe, by benchmarks/sentiment.py's own code and settings
    sentiment = _sentiment_benchmark()
    lstm_cfg = sentiment.PROFILES[args.profile]
    setup = sentiment.prepare(lstm_cfg, dev=(dev_texts, dev_labels))
    lstm_acc, lstm_seconds, _ = sentiment.train_one(setup, lstm_cfg, "lstm-glove", seed=args.seed)
    rows.append(("LSTM + GloVe (from scratch)", len(setup.texts), 100 * lstm_acc, lstm_seconds))
    print(f"LSTM + GloVe: {100 * lstm_acc:.1f}% in {lstm_seconds:.0f} s", flush=True)

    frozen_acc, frozen_seconds, n = frozen_probe(
        cfg, texts, labels, dev_texts, dev_labels, seed=args.seed, device=device
    )
    rows.append(("frozen MiniLM + logistic regression", n, frozen_acc, frozen_seconds))
    print(f"frozen MiniLM + LR: {frozen_acc:.1f}% in {frozen_seconds:.0f} s", flush=True)

    shots = few_shot_examples(texts, labels, cfg["shots"], seed=args.seed)
    for setting, (acc, seconds) in prompting(
        cfg, shots, dev_texts, dev_labels, layout=args.layout, device=device
    ).items():
        shown = len(shots) if "shot" in setting and not setting.startswith("zero") else 0
        rows.append((f"SmolLM2-135M-Instruct, {setting} ({args.layout})", shown, acc, seconds))
        print(f"SmolLM2 {setting}: {acc:.1f}% in {seconds:.0f} s", flush=True)

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--layout", choices=LAYOUTS, default="plain", help="prompt layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--finetune-only", action="store_true", help="skip the other models of the table"
    )
    parser.add_argument("--save", type=Path, help="folder to save the fine-tuned classifier in")
    args = parser.parse_args()
    cfg = PROFILES[args.profile]
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" report, every load
    device = nlpbook.auto_device()

    texts, labels = data.sst2("train")
    dev_texts, dev_labels = data.sst2("dev")
    dev_texts, dev_labels = dev_texts[: cfg["dev_examples"]], dev_labels[: cfg["dev_examples"]]
    rows = []  # (model, labelled examples, dev accuracy, seconds)

    ft_model, ft_tokenizer, ft_acc, ft_seconds, ft_cpu = finetune(
        cfg, texts, labels, dev_texts, dev_labels, seed=args.seed, device=device
    )
    if args.save is not None:
        save_classifier(ft_model, ft_tokenizer, args.save, labels=("negative", "positive"))
        print(f"saved the fine-tuned classifier in {args.save}", flush=True)
    rows.append(("fine-tuned MiniLM", len(texts), ft_acc, ft_seconds))
    print(
        f"fine-tuned MiniLM: {ft_acc:.1f}% in {ft_seconds:.0f} s ({ft_cpu:.0f} s of CPU time)",
        flush=True,
    )
    if not args.finetune_only:
        rows += other_models(args, cfg, texts, labels, dev_texts, dev_labels, device=device)

    print(
        f"\nSST-2 dev ({len(dev_texts)} sentences), profile {args.profile}, {args.threads} "
        f"thread(s), seed {args.seed}: MiniLM fine-tuned for {cfg['steps']} steps of "
        f"{cfg['batch']} phrases (lr {cfg['lr']:g}, {cfg['max_length']} tokens at most)"
    )
    print(f"{'model':<54} {'labelled examples':>17} {'dev acc %':>9} {'seconds':>8}")
    for name, n_labelled, acc, seconds in rows:
        print(f"{name:<54} {n_labelled:>17,} {acc:>9.1f} {seconds:>8.0f}")
    print(
        "seconds: training (fine-tuning, LSTM), embedding + fitting (frozen), scoring the dev "
        "set (prompting); prompts: label words only"
    )
    print(f"dev_accuracy={ft_acc:.2f} seconds={ft_seconds:.0f}")


if __name__ == "__main__":
    main()
