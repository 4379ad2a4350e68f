"""``python -m nlpbook.data verify``: fetch and check every data file, print a table."""

from __future__ import annotations

import argparse
import sys

from nlpbook.data.registry import cache_dir, mirror_dir
from nlpbook.data.verify import verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlpbook.data", description=__doc__)
    parser.add_argument("command", choices=["verify"], help="verify: check every data file")
    parser.parse_args(argv)
    print(f"cache:  {cache_dir()}")
    print(f"mirror: {mirror_dir() or '(none; files come from their URLs)'}")
    table = verify()
    with_status = table.assign(status=table["status"].str.slice(0, 200))
    print(with_status.to_string(index=False))
    failed = int((table["status"] != "ok").sum())
    print(f"{len(table) - failed} of {len(table)} files verified")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
