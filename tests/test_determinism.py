"""Executing a chapter twice in one profile prints the same numbers (DESIGN.md, Determinism).

`word-embeddings` trains GloVe from random initial vectors, fits a classifier on embedding
features and projects vectors with PCA, so it exercises `nlpbook.set_seed` and the seeded
generators that the package's functions take. It prints no timings. Two things are masked
because they name objects, not results: memory addresses (``<... at 0x7f...>``) and the random
ids pandas gives a styled table (``T_1a2b3``) in its HTML; the numbers in the table are compared.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

CHAPTER = ROOT / "book" / "word-embeddings.ipynb"


_OBJECT_NAMES = [
    (re.compile(r" at 0x[0-9a-f]+"), " at 0x..."),
    (re.compile(r"T_[0-9a-f]{5}"), "T_..."),
]


def _masked(text: str) -> str:
    for pattern, placeholder in _OBJECT_NAMES:
        text = pattern.sub(placeholder, text)
    return text


def _text_outputs(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """(cell index, kind, text) for every stream, result, display and error output."""
    texts = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                # the kernel may split one cell's printing into several stream messages,
                # depending on when its buffer flushed: compare the joined text
                if texts and texts[-1][:2] == (index, output.name):
                    texts[-1] = (index, output.name, texts[-1][2] + _masked(output.text))
                else:
                    texts.append((index, output.name, _masked(output.text)))
            elif output.output_type == "error":
                texts.append((index, "error", f"{output.ename}: {output.evalue}"))
            else:
                for mime, data in output.get("data", {}).items():
                    if mime.startswith("text/") or mime.endswith("json"):
                        text = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
                        texts.append((index, mime, _masked(text)))
    return texts


def _execute(path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("NLPBOOK_PROFILE", "smoke")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    return nb


@pytest.mark.notebooks
def test_a_chapter_prints_the_same_outputs_twice(monkeypatch):
    first = _text_outputs(_execute(CHAPTER, monkeypatch))
    second = _text_outputs(_execute(CHAPTER, monkeypatch))
    assert len(first) >= 10, "the chapter should print enough to compare"
    assert [t[:2] for t in first] == [t[:2] for t in second], "different outputs per cell"
    differing = [(a, b) for a, b in zip(first, second, strict=True) if a != b]
    assert differing == [], "outputs that differ between two runs (cell, kind, text)"
