"""Shared fixtures: where the repository is and which chapters the book contains.

The table of contents is read by the same code that `make book` uses to execute the chapters
(`book/_ext/execute_notebooks.py`), so the tests and the build agree on what the book holds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location(
    "execute_notebooks", ROOT / "book" / "_ext" / "execute_notebooks.py"
)
_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_book)


def toc_files() -> list[str]:
    """Every page in `_toc.yml` (the root first), as paths without suffix, e.g. 'book/intro'."""
    return _book.toc_files(ROOT)


def toc_notebooks() -> list[Path]:
    """The chapters that are notebooks, in table-of-contents order."""
    return _book.toc_notebooks(ROOT)


def word_level_tokenizer(words: list[str], *, lowercase: bool = False):
    """A BERT-style tokenizer over a fixed word list, built offline: [CLS] words [SEP].

    `words` must start with [PAD], [UNK], [CLS], [SEP] (ids 0-3); other words are [UNK].
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    assert words[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"], words[:4]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    if lowercase:
        backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def one_thread():
    """One torch thread for a test that trains: two threads stall each other on a busy
    2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
