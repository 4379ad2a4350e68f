"""Give every figure that a code cell draws a text alternative that says what it shows.

myst-nb takes a figure's alt text from the cell's metadata (`mystnb: image: alt: ...`) or
its caption (`mystnb: figure: caption: ...`); without either, the image has no alt and the
HTML writer puts the file's path there (`../_images/3f2a....png`), which is what a screen
reader would read out. For such images this extension writes an alt text from the cell
itself: the plot's title and axis labels as the code spells them (`title=...`,
`ax.set_title(...)`, `xlabel=...`, ...), else the section the figure sits in.
Metadata and captions, where a chapter gives them, always win.
"""

from __future__ import annotations

import ast

from docutils import nodes
from sphinx.application import Sphinx

_TITLE_CALLS = {"set_title", "title", "suptitle"}
_XLABEL_CALLS = {"set_xlabel", "xlabel"}
_YLABEL_CALLS = {"set_ylabel", "ylabel"}


def _text(node: ast.expr) -> str | None:
    """The text of a string literal; an f-string's replacement fields become '…'."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    return None


def plot_texts(source: str) -> dict[str, list[str]]:
    """Titles and axis labels that the code of a cell gives its plots, in order.

    >>> plot_texts('ax.set(title="GloVe loss", xlabel="epoch")\\nplt.ylabel("J")')
    {'title': ['GloVe loss'], 'xlabel': ['epoch'], 'ylabel': ['J']}
    """
    found: dict[str, list[str]] = {"title": [], "xlabel": [], "ylabel": []}
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics and the like: no plot texts to read
        return found
    calls = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for call in calls:
        name = call.func.attr if isinstance(call.func, ast.Attribute) else None
        for kind, calls in [
            ("title", _TITLE_CALLS),
            ("xlabel", _XLABEL_CALLS),
            ("ylabel", _YLABEL_CALLS),
        ]:
            if name in calls and call.args and (text := _text(call.args[0])):
                found[kind].append(text)
        for keyword in call.keywords:
            if keyword.arg in found and (text := _text(keyword.value)):
                found[keyword.arg].append(text)
    return found


def describe(source: str, section: str, index: int, count: int) -> str:
    """The alt text of the `index`-th of `count` figures drawn by a cell with `source`."""
    texts = plot_texts(source)
    titles = texts["title"]
    if len(titles) == count:  # one titled plot per image
        title = titles[index]
    else:
        title = "; ".join(dict.fromkeys(titles))
    axes = ""
    if texts["xlabel"] and texts["ylabel"]:
        axes = f"{texts['ylabel'][0]} against {texts['xlabel'][0]}"
    elif texts["xlabel"] or texts["ylabel"]:
        axes = (texts["xlabel"] or texts["ylabel"])[0]
    if title and axes:
        return f"Plot: {title} ({axes})"
    if title or axes:
        return f"Plot: {title or axes}"
    return f"Figure in the section “{section}”"


def _cell_of(node: nodes.Node) -> nodes.Element | None:
    while node is not None:
        if isinstance(node, nodes.container) and node.get("nb_element") == "cell_code":
            return node
        node = node.parent
    return None


def _section_title(node: nodes.Node) -> str:
    while node is not None:
        if isinstance(node, nodes.section) and node.children:
            return node[0].astext()
        node = node.parent
    return ""


def _add_alt_texts(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    cells: dict[int, tuple[nodes.Element, list[nodes.image]]] = {}
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        figure = image.parent
        if isinstance(figure, nodes.figure):
            caption = next(iter(figure.findall(nodes.caption)), None)
            if caption is not None and caption.astext().strip():
                image["alt"] = caption.astext().strip()
                continue
        cell = _cell_of(image)
        if cell is not None:
            cells.setdefault(id(cell), (cell, []))[1].append(image)
    for cell, images in cells.values():
        source = "\n".join(
            block.astext()
            for block in cell.findall(nodes.literal_block)
            if block.parent.get("nb_element") == "cell_code_source"
        )
        section = _section_title(cell)
        for index, image in enumerate(images):
            image["alt"] = describe(source, section, index, len(images))


def setup(app: Sphinx) -> dict:
    app.connect("doctree-resolved", _add_alt_texts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
