"""Multilingual models: a translator for six directions, caption retrieval, zero-shot transfer.

Prints three tables. The first measures the chapter `multilingual-translation`:

- translation: the encoder-decoder transformer of `nlpbook.encdec`, with the page's settings,
  trained on Multi30k for the six directions between English and German, French and Czech
  (target-language tags, one shared BPE), then a transformer of the same size trained on
  German->English alone, each for `mt_minutes` of wall clock (the 10 minutes that
  `benchmarks/translation.py` gives the GRU translator) or `mt_steps`; greedy BLEU on the
  1,000 captions of `test_2016_flickr` in every direction (sacrebleu 13a, case-insensitive,
  as for the GRU), beam search for German->English, the zero-shot directions de->fr and
  fr->de, and the share of outputs a character-trigram identifier (`nlpbook.langid`) puts in
  the requested language. Run `benchmarks/translation.py --profile cpu` beside it for the GRU.

The other two load the real multilingual-e5-small (`nlpbook.pretrained.load_encoder`) into
our `BERT`, as the chapter `multilingual` does:

- retrieval: every German, French and Czech caption of Multi30k `test_2016_flickr`, prefixed
  ``"query: "``, searches the English captions, prefixed ``"passage: "`` (all 1,000 in the
  cpu and gpu profiles), by cosine similarity of mean-pooled vectors; top-1 and top-10
  accuracy of finding its own translation;
- zero-shot transfer: a scikit-learn logistic regression trained on the e5 vectors
  (``"query: "``) of a seeded sample of `xlt_train` English SST-2 training sentences
  (`nlpbook.crosslingual.sst2_train_sample`), tested on the SST-2 dev set (872 English
  sentences) and on the 200 dev sentences with German and French translations written for
  the book (`nlpbook.crosslingual.sst2_translated`); accuracy per language and how often the
  German or French prediction equals the English one, as mean +- standard deviation over
  `--seeds` training samples (the test vectors are the same for every seed).

The last line is ``en_dev=<%> en=<%> de=<%> fr=<%>`` (means over the seeds).

    python benchmarks/multilingual.py [--profile smoke|cpu|gpu] [--threads 1] [--seeds 0 1 2]
        [--no-translation] [--no-bilingual] [--no-retrieval] [--no-transfer]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import nlpbook
from nlpbook import data
from nlpbook.bert import BERT
from nlpbook.crosslingual import (
    LANGUAGES,
    embed,
    sst2_train_sample,
    sst2_translated,
    zero_shot_transfer,
)
from nlpbook.encdec import EncoderDecoder, EncoderDecoderConfig, translate
from nlpbook.langid import LanguageIdentifier
from nlpbook.mtdata import decode, encode_sources, tagged_pairs, train_shared_bpe
from nlpbook.pretrained import load_encoder
from nlpbook.retrieval import cosine_top_k, top_k_accuracy
from nlpbook.schedule import warmup_cosine
from nlpbook.seq2seq import TranslationBatches, bleu

PROFILES = {
    # captions: Multi30k test captions searched (None: all 1,000); max_length: tokens kept per
    # text; batch_e5: texts per e5 call; xlt_train: English SST-2 training sentences the
    # classifier learns from (None: all); xlt_dev: English dev sentences scored (None: all
    # 872); xlt_test: translated sentences scored (None: all 200); the chapter uses the same
    # settings (tests/test_repo.py checks them)
    # mt_*: the translator of the chapter `multilingual-translation`, with that page's model
    # and optimiser settings; mt_minutes: wall-clock budget of each training (the GRU
    # benchmark's 10 minutes) or mt_steps a fixed number of steps; mt_test: test captions
    # per direction (None: all 1,000)
    "smoke": dict(captions=40, max_length=256, batch_e5=32, xlt_train=64, xlt_dev=32, xlt_test=40,
                  mt_minutes=0.1, mt_steps=None, mt_captions=300, mt_test=20, mt_vocab=400,
                  mt_d_model=32, mt_n_heads=2, mt_n_layers=1, mt_d_ff=64, mt_dropout=0.1,
                  mt_batch=16, mt_lr=2e-3, mt_warmup=1, mt_beam=2),
    "cpu": dict(captions=None, max_length=256, batch_e5=32, xlt_train=3000, xlt_dev=None,
                xlt_test=None,
                mt_minutes=10.0, mt_steps=None, mt_captions=None, mt_test=None, mt_vocab=4000,
                mt_d_model=128, mt_n_heads=4, mt_n_layers=2, mt_d_ff=512, mt_dropout=0.0,
                mt_batch=32, mt_lr=2e-3, mt_warmup=300, mt_beam=5),
    "gpu": dict(captions=None, max_length=512, batch_e5=128, xlt_train=20000, xlt_dev=None,
                xlt_test=None,
                mt_minutes=None, mt_steps=12000, mt_captions=None, mt_test=None, mt_vocab=8000,
                mt_d_model=512, mt_n_heads=8, mt_n_layers=4, mt_d_ff=2048, mt_dropout=0.1,
                mt_batch=128, mt_lr=7e-4, mt_warmup=1000, mt_beam=5),
}  # fmt: skip


def _e5(args):
    tokenizer, hf_model = load_encoder("multilingual-e5-small", device=args.device)
    model = BERT.from_hf(hf_model)
    cfg = PROFILES[args.profile]

    def vectors(texts, prefix):
        return embed(
            texts,
            tokenizer=tokenizer,
            model=model,
            prefix=prefix,
            batch_size=cfg["batch_e5"],
            max_length=cfg["max_length"],
        )

    return vectors


def retrieval_table(args) -> None:
    """Multi30k test_2016_flickr, de/fr/cs captions -> English captions, top-1 and top-10."""
    cfg, vectors = PROFILES[args.profile], args.e5
    start = time.perf_counter()
    english = [en for en, _ in data.multi30k("test_2016_flickr", "en", "de")][: cfg["captions"]]
    documents = vectors(english, "passage: ")
    targets = np.arange(len(english))  # caption i translates caption i
    rows = []
    for lang in ("de", "fr", "cs"):
        source = [s for s, _ in data.multi30k("test_2016_flickr", lang, "en")][: cfg["captions"]]
        _, ranked = cosine_top_k(vectors(source, "query: "), documents, k=10)
        rows.append(
            (
                f"{lang} -> en",
                100 * top_k_accuracy(ranked, targets, k=1),
                100 * top_k_accuracy(ranked, targets, k=10),
            )
        )
    print(
        f"\nMulti30k test_2016_flickr retrieval, {len(english)} English captions "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(f"{'search':<10} {'top-1 %':>8} {'top-10 %':>9}")
    for name, top1, top10 in rows:
        print(f"{name:<10} {top1:>8.1f} {top10:>9.1f}")


def transfer_table(args) -> dict[str, float]:
    """Train on English SST-2, test on en/de/fr: accuracy and agreement, mean +- sd over seeds."""
    cfg, vectors = PROFILES[args.profile], args.e5
    start = time.perf_counter()
    dev_texts, dev_labels = data.sst2("dev")
    dev_texts, dev_labels = dev_texts[: cfg["xlt_dev"]], dev_labels[: cfg["xlt_dev"]]
    rows = sst2_translated()[: cfg["xlt_test"]]
    labels = np.array([r.label for r in rows])
    test_sets = {"en (SST-2 dev)": (vectors(dev_texts, "query: "), dev_labels)}
    for lang in LANGUAGES:
        test_sets[lang] = (vectors([r.text(lang) for r in rows], "query: "), labels)
    test_s = time.perf_counter() - start
    results, train_s = [], []
    for seed in args.seeds:
        t0 = time.perf_counter()
        texts, train_labels = sst2_train_sample(cfg["xlt_train"], seed=seed)
        train_vectors = vectors(texts, "query: ")
        results.append(
            zero_shot_transfer(train_vectors, train_labels, test_sets, parallel=LANGUAGES)
        )
        train_s.append(time.perf_counter() - t0)
        accuracy = ", ".join(f"{k} {100 * v:.1f}" for k, v in results[-1].accuracy.items())
        print(f"seed {seed}: {accuracy}")

    def stats(values):
        values = 100 * np.array(values)
        return values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0

    print(
        f"\nZero-shot transfer: logistic regression on {len(texts):,} English SST-2 training "
        f"sentences, {len(args.seeds)} seed(s); test vectors in {test_s:.0f} s, "
        f"training vectors + fit {np.mean(train_s):.0f} s per seed"
    )
    print(f"{'test set':<16} {'sentences':>9} {'accuracy %':>14} {'agrees with en %':>17}")
    means = {}
    for name, (_, test_labels) in test_sets.items():
        mean, sd = stats([r.accuracy[name] for r in results])
        means[name] = mean
        agree = ""
        if name in results[0].agreement:
            a_mean, a_sd = stats([r.agreement[name] for r in results])
            agree = f"{a_mean:.1f} +- {a_sd:.1f}"
        print(f"{name:<16} {len(test_labels):>9} {mean:>7.1f} +- {sd:<4.1f} {agree:>17}")
    return means


# --- translation: one transformer for six directions (multilingual-translation page) -----

LANGS = ("en", "de", "fr", "cs")
DIRECTIONS = [("de", "en"), ("en", "de"), ("fr", "en"), ("en", "fr"), ("cs", "en"), ("en", "cs")]
MAX_TOKENS = 64


def _captions(split: str, lang: str) -> list[str]:
    return [t for _, t in data.multi30k(split, "de" if lang == "en" else "en", lang)]


def _train_translator(
    pairs: list, vocab_size: int, cfg: dict, *, seed: int
) -> tuple[EncoderDecoder, int, float]:
    """Train for cfg['steps'], or for as many steps as fit in cfg['minutes'] (the speed is
    measured on a copy of the model, and that counts towards the budget).
    Returns (model, steps, seconds)."""
    nlpbook.set_seed(seed)
    config = EncoderDecoderConfig(
        vocab_size=vocab_size, d_model=cfg["d_model"], n_heads=cfg["n_heads"],
        n_enc_layers=cfg["n_layers"], n_dec_layers=cfg["n_layers"], d_ff=cfg["d_ff"],
        max_len=256, dropout=cfg["dropout"], label_smoothing=0.1,
    )  # fmt: skip
    model = EncoderDecoder(config)
    batches = TranslationBatches(pairs, batch_size=cfg["batch"], seed=seed, bos_id=1, pad_id=0)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg["lr"], betas=(0.9, 0.98), weight_decay=0.01
    )
    start = time.perf_counter()
    steps = cfg["steps"]
    if steps is None:  # time 30 steps of a copy (after 5 to warm up), fit the schedule to it
        probe = copy.deepcopy(model)
        probe_optimizer = torch.optim.AdamW(probe.parameters())
        nlpbook.fit(probe, batches, optimizer=probe_optimizer, steps=5, progress=False)
        t0 = time.perf_counter()
        nlpbook.fit(probe, batches, optimizer=probe_optimizer, steps=30, progress=False)
        per_step = (time.perf_counter() - t0) / 30
        steps = int((cfg["minutes"] * 60 - (time.perf_counter() - start)) / per_step)
    scheduler = warmup_cosine(
        optimizer, warmup_steps=min(cfg["warmup"], steps - 1), total_steps=steps,
        min_lr=cfg["lr"] / 10,
    )  # fmt: skip
    nlpbook.fit(model, batches, optimizer=optimizer, scheduler=scheduler, steps=steps,
                grad_clip=1.0, progress=False)  # fmt: skip
    return model.eval(), steps, time.perf_counter() - start


def translation_table(args: argparse.Namespace) -> None:
    """BLEU per direction of one transformer trained on six directions, and of a transformer
    of the same size trained on German->English alone, each for the same budget."""
    cfg = {k[3:]: v for k, v in PROFILES[args.profile].items() if k.startswith("mt_")}
    train = {lang: _captions("train", lang)[: cfg["captions"]] for lang in LANGS}
    test = {lang: _captions("test_2016_flickr", lang)[: cfg["test"]] for lang in LANGS}
    tokenizer = train_shared_bpe(train, vocab_size=cfg["vocab"])
    identifier = LanguageIdentifier().fit(train)

    def run(model: EncoderDecoder, s: str, t: str, *, beam: int = 1) -> tuple[float, float]:
        out = translate(model, encode_sources(tokenizer, test[s], into=t), bos_id=1, eos_id=2,
                        num_beams=beam)  # fmt: skip
        hyps = [decode(tokenizer, ids) for ids in out]
        on_target = 100 * float(np.mean([x == t for x in identifier.predict(hyps)]))
        return bleu(hyps, test[t]).score, on_target

    rows = []
    multi_pairs = tagged_pairs(tokenizer, train, DIRECTIONS, max_tokens=MAX_TOKENS)
    model, steps, seconds = _train_translator(
        multi_pairs, tokenizer.get_vocab_size(), cfg, seed=args.seed
    )
    print(f"multilingual: {steps} steps in {seconds:.0f} s", flush=True)
    for s, t in [*DIRECTIONS, ("de", "fr"), ("fr", "de")]:
        greedy, on_target = run(model, s, t)
        beam = run(model, s, t, beam=cfg["beam"])[0] if (s, t) == ("de", "en") else float("nan")
        kind = "zero-shot" if (s, t) not in DIRECTIONS else "trained"
        rows.append(("6 directions", f"{s}->{t}", kind, greedy, beam, on_target, steps, seconds))
    if not args.no_bilingual:
        pairs = tagged_pairs(tokenizer, train, [("de", "en")], max_tokens=MAX_TOKENS)
        model, steps, seconds = _train_translator(
            pairs, tokenizer.get_vocab_size(), cfg, seed=args.seed
        )
        print(f"de->en only: {steps} steps in {seconds:.0f} s", flush=True)
        greedy, on_target = run(model, "de", "en")
        beam = run(model, "de", "en", beam=cfg["beam"])[0]
        rows.append(("de->en only", "de->en", "trained", greedy, beam, on_target, steps, seconds))
    print()
    print(
        f"Multi30k test_2016_flickr ({len(test['en']):,} captions per direction), sacrebleu "
        f"13a case-insensitive; each model trained "
        + (f"{cfg['minutes']:g} minutes" if cfg["minutes"] else f"{cfg['steps']} steps")
        + f" on {torch.get_num_threads()} thread(s)"
    )
    print(f"{'model':<14}{'direction':<11}{'kind':<11}{'greedy':>7}{'beam':>7}"
          f"{'on-target %':>13}{'steps':>7}{'seconds':>9}")  # fmt: skip
    for name, direction, kind, greedy, beam, on_target, steps, seconds in rows:
        beam_text = "" if np.isnan(beam) else f"{beam:.1f}"
        print(f"{name:<14}{direction:<11}{kind:<11}{greedy:>7.1f}{beam_text:>7}"
              f"{on_target:>13.0f}{steps:>7}{seconds:>9.0f}")  # fmt: skip
    print(
        "compare: python benchmarks/translation.py --profile cpu, the GRU translator of "
        "rnn-pytorch on de->en, with the same test set, metric and budget"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-retrieval", action="store_true", help="skip the retrieval table")
    parser.add_argument("--no-transfer", action="store_true", help="skip the transfer table")
    parser.add_argument(
        "--no-translation", action="store_true", help="skip training the translators"
    )
    parser.add_argument(
        "--no-bilingual", action="store_true", help="train only the six-direction translator"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the translators")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nlpbook.set_seed(0)
    args.device = nlpbook.auto_device()
    print(f"profile {args.profile}, {args.threads} thread(s), device {args.device}")
    if not args.no_translation:
        translation_table(args)
    if args.no_retrieval and args.no_transfer:
        return
    args.e5 = _e5(args)
    if not args.no_retrieval:
        retrieval_table(args)
    if not args.no_transfer:
        means = transfer_table(args)
        print(
            f"en_dev={means['en (SST-2 dev)']:.1f} en={means['en']:.1f} de={means['de']:.1f} "
            f"fr={means['fr']:.1f}"
        )


if __name__ == "__main__":
    main()
