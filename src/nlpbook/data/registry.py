"""Every data file the book uses: where it lives, its checksum, and how to get it.

`fetch(name)` returns a local path to a verified copy of one file, e.g.
``fetch("tinyshakespeare/input.txt")``. Files are cached per user (``NLPBOOK_CACHE``
overrides the folder). A file is taken from the folder named by ``NLPBOOK_DATA_MIRROR``
when that folder has it, otherwise downloaded from its canonical URL. Either way its
sha256 is checked before the path is returned, and a cached copy whose checksum no longer
matches (truncated, edited, corrupt) is fetched again.

The fetching and caching is done by `pooch`, which writes every download to a temporary
file and moves it into place only after the checksum matches: an interrupted download
never leaves a file that looks complete.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pooch

CACHE_ENV = "NLPBOOK_CACHE"
MIRROR_ENV = "NLPBOOK_DATA_MIRROR"
_REGISTRY_TSV = Path(__file__).with_name("registry.tsv")


class DataUnavailableError(RuntimeError):
    """A data file could be neither taken from a mirror nor downloaded."""


@dataclass(frozen=True)
class Entry:
    """One file of the registry (a row of ``registry.tsv``)."""

    name: str  # path relative to the data root, e.g. "sst2/dev.tsv"
    sha256: str
    size: int  # bytes
    url: str  # canonical download URL
    license: str


def load_entries(path: Path = _REGISTRY_TSV) -> dict[str, Entry]:
    """Read a registry table (tab-separated: file, sha256, bytes, url, license)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {
            r["file"]: Entry(r["file"], r["sha256"], int(r["bytes"]), r["url"], r["license"])
            for r in rows
        }


def cache_dir() -> Path:
    """The folder downloads are cached in: ``$NLPBOOK_CACHE`` or the per-user cache."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser().resolve() if env else Path(pooch.os_cache("nlpbook"))


def mirror_dir() -> Path | None:
    """The local mirror named by ``$NLPBOOK_DATA_MIRROR``, or None when unset."""
    env = os.environ.get(MIRROR_ENV)
    if not env:
        return None
    path = Path(env).expanduser().resolve()
    if not path.is_dir():
        raise DataUnavailableError(
            f"{MIRROR_ENV}={env!r} is not a folder; expected a folder laid out like the "
            "book's data mirror (e.g. tinyshakespeare/input.txt inside it), or unset it."
        )
    return path


class Registry:
    """A set of known files and the cache they are fetched into.

    >>> reg = Registry(load_entries(), cache=Path("/tmp/nlpbook-cache"))  # doctest: +SKIP
    >>> reg.fetch("sst2/dev.tsv")                                          # doctest: +SKIP
    PosixPath('/tmp/nlpbook-cache/sst2/dev.tsv')
    """

    def __init__(self, entries: dict[str, Entry], *, cache: Path, mirror: Path | None = None):
        self.entries = entries
        self.cache = Path(cache)
        self.mirror = mirror
        self._pooch = pooch.create(
            path=self.cache,
            base_url="",
            registry={e.name: f"sha256:{e.sha256}" for e in entries.values()},
            urls={e.name: e.url for e in entries.values()},
            retry_if_failed=0,
        )

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def entry(self, name: str) -> Entry:
        if not isinstance(name, str):
            raise TypeError(f"a data file name is a str such as 'sst2/dev.tsv', got {name!r}")
        if name not in self.entries:
            datasets = sorted({n.split("/")[0] for n in self.entries})
            raise KeyError(
                f"unknown data file {name!r}; expected a path such as 'sst2/dev.tsv' "
                f"from one of the datasets {', '.join(datasets)}"
            )
        return self.entries[name]

    def source(self, name: str) -> str:
        """Where `fetch` would take `name` from if it is not cached: 'mirror' or 'url'."""
        self.entry(name)
        return "mirror" if self.mirror and (self.mirror / name).is_file() else "url"

    def fetch(self, name: str) -> Path:
        """A local, sha256-verified copy of `name`; see the module docstring."""
        entry = self.entry(name)
        downloader = _copy_from(self.mirror / name) if self.source(name) == "mirror" else None
        logger = pooch.get_logger()
        level = logger.level
        logger.setLevel("WARNING")  # pooch announces every download at INFO level
        try:
            path = self._pooch.fetch(name, downloader=downloader)
        except ValueError as exc:  # pooch's checksum mismatch after a download
            raise DataUnavailableError(
                f"{name}: the {self.source(name)} copy does not match its sha256 "
                f"{entry.sha256} ({exc})"
            ) from exc
        except Exception as exc:  # network errors from requests, interrupted copies
            raise DataUnavailableError(
                f"could not fetch {name} from {entry.url} ({type(exc).__name__}: {exc}). "
                f"Without network, set {MIRROR_ENV} to a folder laid out like the book's "
                f"data mirror that contains {name}; downloads are cached in {self.cache} "
                f"(set {CACHE_ENV} to change it)."
            ) from exc
        finally:
            logger.setLevel(level)
        return Path(path)


def _copy_from(src: Path):
    """A pooch downloader that copies a mirrored file instead of downloading it."""

    def download(url: str, output_file: str, pooch_obj: pooch.Pooch) -> None:
        shutil.copyfile(src, output_file)

    return download


def default_registry() -> Registry:
    """The registry of every file in the book, configured from the environment."""
    return Registry(load_entries(), cache=cache_dir(), mirror=mirror_dir())


def fetch(name: str) -> Path:
    """Path to a verified local copy of data file `name` (e.g. "sst2/dev.tsv")."""
    return default_registry().fetch(name)
