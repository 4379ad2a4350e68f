"""Every notebook in the table of contents executes end to end in the smoke profile.

The executed notebooks are stored in the execution cache of the smoke build that
`test_site.py` makes next, so the site build reuses them instead of running them again.
"""

from __future__ import annotations

import os

import nbformat
import pytest
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from nbclient import NotebookClient

from conftest import ROOT, toc_notebooks

SMOKE_BUILD = ROOT / "_build" / "smoke"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda p: p.stem)
def test_notebook_executes_in_smoke_profile(path, monkeypatch):
    monkeypatch.setenv("NLPBOOK_PROFILE", "smoke")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,  # timings in cell metadata would change the cache key
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    cache = get_cache(SMOKE_BUILD / "_build" / ".jupyter_cache")
    cache.cache_notebook_bundle(
        CacheBundleIn(nb, uri=os.fspath(path)), check_validity=False, overwrite=True
    )
