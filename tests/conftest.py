"""Shared fixtures: where the repository is and which chapters the book contains.

The table of contents is read by the same code that `make book` uses to execute the chapters
(`book/_ext/execute_notebooks.py`), so the tests and the build agree on what the book holds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
