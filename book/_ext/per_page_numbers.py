"""Number exercises, figures, tables and equations from 1 on every page.

With `numfig` on (Jupyter Book and sphinx-exercise turn it on) and no section numbers, Sphinx
counts each kind of numbered element across the whole book, so the first exercise of the third
chapter reads "Exercise 9". A reader expects the count to start again on each page. After
Sphinx has assigned its book-wide numbers, this renumbers each page's elements 1, 2, ... in
the same order; the titles ("Exercise 2"), the solutions ("Solution to Exercise 2") and
{numref} references all read these numbers.
"""

from __future__ import annotations

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def _renumber_per_page(app: Sphinx, env: BuildEnvironment) -> list[str]:
    for numbers in env.toc_fignumbers.values():
        for figtype, by_id in numbers.items():
            in_page_order = sorted(by_id, key=by_id.get)
            # keep a section-number prefix, if the book ever numbers its sections
            numbers[figtype] = {
                node_id: (*by_id[node_id][:-1], i)
                for i, node_id in enumerate(in_page_order, start=1)
            }
    return []


def setup(app: Sphinx) -> dict:
    # after Sphinx's own toctree collector has assigned the book-wide numbers (priority 500)
    app.connect("env-get-updated", _renumber_per_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
