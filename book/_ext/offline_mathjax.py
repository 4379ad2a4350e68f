"""Serve MathJax from the built site, so formulas are typeset without a network.

Sphinx loads MathJax 3 from a CDN by default; a reader who builds the book offline (or opens
it from disk on a train) would see raw `\\(x\\)`. The PyPI package `sphinx-mathjax-offline`
(pinned in requirements.txt) ships MathJax 3.2.2's browser files. This extension uses the
package only as a folder of files (it is never imported): it points `mathjax_path` at
`_static/mathjax/tex-mml-chtml.js`, the same component the CDN default names, and copies that
component with what it loads on demand (TeX extensions, CHTML fonts, the menu and the
accessibility code) into the HTML output.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

PACKAGE = "sphinx-mathjax-offline"
COMPONENT = "tex-mml-chtml.js"
# what COMPONENT loads at run time, relative to the MathJax folder
ON_DEMAND = ["input", "output/chtml", "output/chtml.js", "ui", "a11y", "sre"]


def mathjax_folder() -> Path:
    """The folder of MathJax's browser files inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            f"{PACKAGE} is not installed: `make setup` installs it from requirements.txt"
        )
    folder = Path(spec.submodule_search_locations[0]) / "static" / "mathjax"
    if not (folder / COMPONENT).is_file():
        raise ExtensionError(f"{folder / COMPONENT} is missing: reinstall {PACKAGE}")
    return folder


def _use_local_mathjax(app: Sphinx, config: Config) -> None:
    mathjax_folder()  # fail at the start of the build, not after executing every notebook
    config.mathjax_path = f"mathjax/{COMPONENT}"  # relative paths are served from _static/


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_folder(), Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / COMPONENT, target / COMPONENT)
    for name in ON_DEMAND:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
