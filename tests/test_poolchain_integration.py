"""The headline chain end to end: HTTP downloads -> CPU work in processes -> disk.

A real HTTP server (standard library, 127.0.0.1, a background thread) serves
generated files; thread workers download them with urllib, worker processes on
every core compress and hash them, thread workers save them. Every result is
checked against the original bytes.
"""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing
import os
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import poolchain_workers as workers
import pytest

from ori.poolchain import PoolChain

FILES = 40
# The test's own HTTP server thread makes the process multi-threaded, so process
# stages start their workers from the forkserver (conftest fails any fork beside it).


def make_files() -> dict[str, bytes]:
    files = {}
    for number in range(FILES):
        line = f"line of file {number} with some repeated words words words\n".encode()
        files[f"file{number:03d}.txt"] = line * (200 + 37 * number)
    return files


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    files = make_files()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404, "no such file")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="test-http-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def download(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return url.rsplit("/", 1)[-1], response.read()


def saver(folder: Path) -> Any:
    def save(item: tuple[str, bytes, str, int]) -> tuple[str, str, int]:
        name, compressed, digest, pid = item
        path = folder / (name + ".z")
        path.write_bytes(compressed)
        return str(path), digest, pid

    return save


def chain_for(folder: Path, method: str | None) -> PoolChain:
    context = multiprocessing.get_context(method) if method else None
    return (
        PoolChain()
        .add_threadpool(download, max_workers=8, timeout=60)
        .add_processpool(workers.compress_and_hash, mp_context=context)  # one per CPU
        .add_threadpool(saver(folder), max_workers=4)
    )


@pytest.mark.parametrize(
    ("method", "ordered"),
    [(None, True), (None, False), ("forkserver", True), ("spawn", False)],
)
def test_download_compute_save_over_http(
    server: tuple[str, dict[str, bytes]], tmp_path: Path, method: str | None, ordered: bool
) -> None:
    if method and method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    base_url, files = server
    names = sorted(files)
    urls = [f"{base_url}/{name}" for name in names]
    results = chain_for(tmp_path, method).execute_eager(urls, ordered=ordered)

    assert len(results) == len(names)
    if ordered:
        assert [Path(path).name for path, _, _ in results] == [n + ".z" for n in names]
    by_name = {Path(path).name.removesuffix(".z"): (path, digest) for path, digest, _ in results}
    assert sorted(by_name) == names
    for name, original in files.items():
        path, digest = by_name[name]
        assert zlib.decompress(Path(path).read_bytes()) == original
        assert digest == hashlib.sha256(original).hexdigest()
    pids = {pid for _, _, pid in results}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= (os.cpu_count() or 1)


def test_http_error_surfaces_with_the_stage_and_url(
    server: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    base_url, files = server
    urls = [f"{base_url}/{name}" for name in sorted(files)]
    urls.insert(5, f"{base_url}/missing.txt")
    with pytest.raises(urllib.error.HTTPError) as info:
        chain_for(tmp_path, None).execute_eager(urls)
    assert info.value.code == 404
    info.value.close()
    note = "\n".join(getattr(info.value, "__notes__", []))
    assert "stage 1/3 (thread pool, download) on input item 5" in note
    assert "missing.txt" in note
