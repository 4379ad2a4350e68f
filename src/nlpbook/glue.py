"""Numbers quoted in a chapter's prose come from its executed cells through `glue`.

Inside the book build, this is myst-nb's `glue`: the value is stored with the cell's
output and ``{glue:text}`name``` in the text shows it. Elsewhere (Colab, a plain Jupyter
without myst-nb) the value is simply displayed, so a notebook runs the same everywhere.
"""

from __future__ import annotations

from typing import Any


def glue(name: str, value: Any, *, display: bool = False) -> None:
    """Store `value` under `name` for the text to quote; show it too if `display`.

    NumPy and torch scalars become Python numbers first: their text form in NumPy 2
    (``np.float64(0.5)``) is not a number, so a format spec such as ``:.2f`` would fail.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.display import display as show

        show(value)
        return
    myst_glue(name, value, display=display)
