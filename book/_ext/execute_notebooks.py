"""Execute the book's notebooks in parallel into the execution cache, before the Sphinx build.

Jupyter Book executes notebooks one at a time while it reads them, so on a 2-core machine one
core idles through every long chapter. `make book` runs this first: each notebook of the table
of contents that has no up-to-date entry in the jupyter-cache is executed by a pool of worker
processes (jupyter-cache's own parallel worker, in the notebook's folder as Jupyter Book runs
it) and stored in the same cache, so the Sphinx build that follows finds every notebook
cached and executes nothing.

    python book/_ext/execute_notebooks.py --cache _build/.jupyter_cache --jobs 2

A notebook that raises stops `make book` here, with its traceback, as the build would.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

ROOT = Path(__file__).resolve().parents[2]


def toc_files(root: Path = ROOT) -> list[str]:
    """Every page of `_toc.yml` (the root first), as paths without suffix, e.g. 'book/intro'."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return files


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks of `_toc.yml`, in reading order."""
    return [root / f"{f}.ipynb" for f in toc_files(root) if (root / f"{f}.ipynb").is_file()]


def _execute(data: ProcessData) -> tuple[int, str, float]:
    start = time.perf_counter()
    status, uri = ExecutionWorkerLocalMProc()(data)
    return status, uri, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "_build" / ".jupyter_cache")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=int, default=config["execute"]["timeout"])
    args = parser.parse_args(argv)

    if config["execute"]["execute_notebooks"] != "cache":
        print("_config.yml does not execute into a cache: nothing to do", flush=True)
        return 0
    cache = get_cache(args.cache)
    for path in toc_notebooks():
        cache.add_nb_to_project(str(path))  # myst-nb names notebooks by absolute path too
    uris = [str(p) for p in toc_notebooks()]
    todo = cache.list_unexecuted(filter_uris=uris)
    print(f"{len(uris) - len(todo)} of {len(uris)} notebooks are cached", flush=True)
    if not todo:
        return 0
    jobs = max(1, min(args.jobs, len(todo)))
    print(f"executing {len(todo)} with {jobs} worker(s)", flush=True)
    work = [ProcessData(r.pk, r.uri, cache, args.timeout, False) for r in todo]
    failed = []
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for status, uri, seconds in pool.imap_unordered(_execute, work, chunksize=1):
            name = Path(uri).relative_to(ROOT) if uri.startswith(str(ROOT)) else uri
            print(f"  {'ok    ' if status == 0 else 'FAILED'} {name} ({seconds:.0f} s)", flush=True)
            if status != 0:
                failed.append(uri)
    print(f"executed in {time.perf_counter() - start:.0f} s", flush=True)
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"\n{uri} raised:\n{record.traceback or '(no traceback recorded)'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
