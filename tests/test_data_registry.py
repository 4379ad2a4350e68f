"""The data layer: fetching from a mirror or a URL, sha256 checks, and every fault path.

Each test builds a small registry of files it writes itself, so that it controls what is
correct and what is corrupt; URLs point at an HTTP server on the loopback interface.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nlpbook.data import registry as reg
from nlpbook.data.registry import DataUnavailableError, Entry, Registry
from nlpbook.data.verify import verify

FILES = {
    "toy/hello.txt": b"hello, world\n" * 100,
    "toy/sub/numbers.csv": b"".join(b"%d,%d\n" % (i, i * i) for i in range(500)),
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's files; paths under /cut/ send half the body, then hang up."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        if self.path.startswith("/cut/"):
            body = (Path(self.directory) / self.path[len("/cut/") :]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving the toy files; yields its base URL."""
    served = tmp_path / "served"
    for name, content in FILES.items():
        (served / name).parent.mkdir(parents=True, exist_ok=True)
        (served / name).write_bytes(content)

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(served), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:  # bind then close: nothing listens on this port afterwards
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _entries(base_url: str) -> dict[str, Entry]:
    return {
        name: Entry(name, hashlib.sha256(data).hexdigest(), len(data), f"{base_url}/{name}", "CC0")
        for name, data in FILES.items()
    }


def _mirror(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "mirror"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def _leftovers(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_fetch_copies_from_mirror_and_verifies(tmp_path):
    """A mirrored file is copied into the cache; bytes equal the original exactly."""
    registry = Registry(
        _entries(_closed_port_url()), cache=tmp_path / "cache", mirror=_mirror(tmp_path, FILES)
    )
    assert registry.source("toy/hello.txt") == "mirror"
    path = registry.fetch("toy/sub/numbers.csv")
    assert path == tmp_path / "cache" / "toy/sub/numbers.csv"
    assert path.read_bytes() == FILES["toy/sub/numbers.csv"]


def test_fetch_downloads_when_the_mirror_lacks_the_file(tmp_path, server):
    """Files missing from the mirror come from their URL (a loopback server here)."""
    mirror = _mirror(tmp_path, {"toy/hello.txt": FILES["toy/hello.txt"]})
    registry = Registry(_entries(server), cache=tmp_path / "cache", mirror=mirror)
    assert registry.source("toy/sub/numbers.csv") == "url"
    assert registry.fetch("toy/sub/numbers.csv").read_bytes() == FILES["toy/sub/numbers.csv"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_cached_file_is_fetched_again(tmp_path, server, damage):
    """A cached copy whose sha256 no longer matches is replaced by a good one."""
    registry = Registry(_entries(server), cache=tmp_path / "cache")
    path = registry.fetch("toy/hello.txt")
    good = path.read_bytes()
    bad = {"truncate": good[:10], "flip": b"J" + good[1:], "empty": b""}[damage]
    path.write_bytes(bad)
    assert registry.fetch("toy/hello.txt").read_bytes() == FILES["toy/hello.txt"]


def test_corrupt_mirror_copy_is_rejected_and_not_cached(tmp_path):
    """A mirror file with the wrong bytes raises, naming the checksum; nothing is cached."""
    mirror = _mirror(tmp_path, {"toy/hello.txt": b"not the right content\n"})
    registry = Registry(_entries(_closed_port_url()), cache=tmp_path / "cache", mirror=mirror)
    with pytest.raises(DataUnavailableError, match="does not match its sha256"):
        registry.fetch("toy/hello.txt")
    assert _leftovers(tmp_path / "cache") == []


def test_interrupted_download_leaves_no_file(tmp_path, server):
    """The server hangs up halfway: an error, and no (partial) file anywhere in the cache."""
    entries = _entries(server)
    name = "toy/hello.txt"
    entries[name] = Entry(
        name, entries[name].sha256, entries[name].size, f"{server}/cut/{name}", ""
    )
    registry = Registry(entries, cache=tmp_path / "cache")
    with pytest.raises(DataUnavailableError):
        registry.fetch(name)
    assert _leftovers(tmp_path / "cache") == []


def test_no_network_and_no_mirror_names_file_url_and_variables(tmp_path):
    """Offline without a mirror: one error naming the file, its URL and the variables."""
    entries = _entries(_closed_port_url())
    registry = Registry(entries, cache=tmp_path / "cache")
    with pytest.raises(DataUnavailableError) as info:
        registry.fetch("toy/hello.txt")
    message = str(info.value)
    for expected in (
        "toy/hello.txt",
        entries["toy/hello.txt"].url,
        "NLPBOOK_DATA_MIRROR",
        "NLPBOOK_CACHE",
    ):
        assert expected in message
    assert _leftovers(tmp_path / "cache") == []


def test_bad_names(tmp_path):
    registry = Registry(_entries(_closed_port_url()), cache=tmp_path / "cache")
    with pytest.raises(KeyError, match="unknown data file 'toy/nope.txt'.*toy"):
        registry.fetch("toy/nope.txt")
    with pytest.raises(TypeError, match="a data file name is a str"):
        registry.fetch(Path("toy/hello.txt"))


def test_mirror_variable_must_name_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(reg.MIRROR_ENV, str(tmp_path / "missing"))
    with pytest.raises(DataUnavailableError, match="is not a folder"):
        reg.mirror_dir()
    monkeypatch.setenv(reg.MIRROR_ENV, "")
    assert reg.mirror_dir() is None


def test_cache_variable_moves_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(reg.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert reg.cache_dir() == tmp_path / "elsewhere"


def test_verify_reports_each_file(tmp_path):
    """verify() fetches every file and reports failures in the table instead of raising."""
    mirror = _mirror(tmp_path, {"toy/hello.txt": FILES["toy/hello.txt"]})
    registry = Registry(_entries(_closed_port_url()), cache=tmp_path / "cache", mirror=mirror)
    table = verify(registry).set_index("file")
    assert table.loc["toy/hello.txt", "status"] == "ok"
    assert table.loc["toy/hello.txt", "from"] == "mirror"
    assert table.loc["toy/sub/numbers.csv", "status"].startswith("FAILED: could not fetch")
    assert verify(registry).set_index("file").loc["toy/hello.txt", "from"] == "cache"


def test_registry_matches_the_manifest_of_the_mirror():
    """The package's registry lists exactly the mirror's files, with the same checksums."""
    mirror = reg.mirror_dir()
    if mirror is None or not (mirror / "MANIFEST.tsv").exists():
        pytest.skip("needs NLPBOOK_DATA_MIRROR pointing at the book's data mirror")
    manifest = {}
    lines = (mirror / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        manifest[row["file"]] = (row["sha256"], int(row["bytes"]), row["canonical_url"])
    ours = {n: (e.sha256, e.size, e.url) for n, e in reg.load_entries().items()}
    assert ours == manifest


def test_verify_command_checks_every_file(tmp_path):
    """`python -m nlpbook.data verify` fetches and verifies every registered file."""
    if reg.mirror_dir() is None:
        pytest.skip("needs NLPBOOK_DATA_MIRROR pointing at the book's data mirror")
    env = {**os.environ, reg.CACHE_ENV: str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "nlpbook.data", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    n = len(reg.load_entries())
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{n} of {n} files verified" in out.stdout
