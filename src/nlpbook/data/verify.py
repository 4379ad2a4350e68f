"""Check every registered data file: fetch it (from cache, mirror or URL) and verify it."""

from __future__ import annotations

import pandas as pd

from nlpbook.data.registry import DataUnavailableError, Registry, default_registry


def verify(registry: Registry | None = None) -> pd.DataFrame:
    """One row per registered file: its dataset, size, where it came from, and status.

    `status` is "ok" when a copy whose sha256 matches is now in the cache, otherwise the
    error that prevented it. Nothing is raised, so one missing file does not hide others.
    """
    registry = registry or default_registry()
    rows = []
    for name, entry in registry.entries.items():
        cached = (registry.cache / name).is_file()
        source = "cache" if cached else registry.source(name)
        try:
            registry.fetch(name)
            status = "ok"
        except DataUnavailableError as exc:
            status = f"FAILED: {exc}"
        rows.append(
            {
                "dataset": name.split("/")[0],
                "file": name,
                "kB": round(entry.size / 1000, 1),
                "from": source,
                "status": status,
            }
        )
    return pd.DataFrame(rows)
