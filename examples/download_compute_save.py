"""Download, compress and save files with one PoolChain: threads -> processes -> threads.

The demo needs no internet: it starts a small HTTP server on 127.0.0.1 (standard
library, in a background thread) that serves generated files with a simulated
network delay. Then it streams the file URLs through three stages:

1. download each file over HTTP (a thread stage: it mostly waits),
2. compress it and hash it (a process stage: pure CPU work, on every core),
3. save the compressed file to a temporary folder (a thread stage: disk I/O),

then checks every saved file and prints the chain's own statistics
(``PoolChain.print_stats()``: per stage, its workers, items, busy time and
utilisation, and which stage is the bottleneck). The three stages overlap, so
the run takes about as long as its slowest stage, not as long as all of them
added up. ``--progress`` shows a live bar per stage while it runs
(``progress=True``, which needs tqdm: ``pip install 'ori-poolchain[progress]'``).

Run it with::

    python -m pip install -q -e packages/ori-errors -e packages/ori-poolchain
    python examples/download_compute_save.py            # --help for the knobs
    python examples/download_compute_save.py --progress
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import random
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from ori.errors import OriValidationError
from ori.poolchain import PoolChain


class Downloaded(NamedTuple):
    name: str
    data: bytes


class Compressed(NamedTuple):
    name: str
    compressed: bytes
    size: int
    sha256: str


class Saved(NamedTuple):
    path: str
    size: int
    compressed_size: int
    sha256: str


# -- the three stage functions (module level, so worker processes can import them) --


def download(url: str) -> Downloaded:
    """Fetch one file over HTTP (runs in a thread)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data = response.read()
    return Downloaded(url.rsplit("/", 1)[-1], data)


def compress_and_hash(item: Downloaded) -> Compressed:
    """Compress and hash one file (runs in a worker process)."""
    compressed = zlib.compress(item.data, 9)
    digest = hashlib.sha256(item.data).hexdigest()
    return Compressed(item.name, compressed, len(item.data), digest)


def make_saver(folder: Path) -> Any:
    """A save function bound to *folder* (thread stages accept closures)."""

    def save(item: Compressed) -> Saved:
        path = folder / f"{item.name}.z"
        path.write_bytes(item.compressed)
        return Saved(str(path), item.size, len(item.compressed), item.sha256)

    return save


# -- a local HTTP server with generated files ----------------------------------------


def generate_files(folder: Path, count: int, size: int) -> None:
    """Write *count* compressible files of *size* bytes, each different."""
    rng = random.Random(1)
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)
    ]
    corpus = " ".join(rng.choices(words, k=2 * size // 5 + 1000)).encode()
    for number in range(count):
        start = rng.randrange(len(corpus) - size)
        header = f"file {number}\n".encode()
        (folder / f"file{number:04d}.txt").write_bytes(
            header + corpus[start : start + size - len(header)]
        )


@contextmanager
def local_server(folder: Path, latency: float) -> Iterator[str]:
    """Serve *folder* on 127.0.0.1 in a background thread; yields the base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            time.sleep(latency)  # pretend the server is far away
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the demo's output short

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="demo-http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the demo -------------------------------------------------------------------------


def build_chain(
    out_folder: Path, downloaders: int, processes: int | None, savers: int
) -> PoolChain:
    return (
        PoolChain()
        .add_threadpool(download, max_workers=downloaders, timeout=60)
        .add_processpool(compress_and_hash, max_workers=processes)
        .add_threadpool(make_saver(out_folder), max_workers=savers)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=48, help="number of files (48)")
    parser.add_argument("--size-kib", type=int, default=512, help="size of each file (512 KiB)")
    parser.add_argument("--latency-ms", type=float, default=40, help="server delay (40 ms)")
    parser.add_argument("--downloaders", type=int, default=8, help="download threads (8)")
    parser.add_argument("--processes", type=int, default=None, help="workers (one per CPU)")
    parser.add_argument("--savers", type=int, default=4, help="saving threads (4)")
    parser.add_argument(
        "--progress", action="store_true", help="a live progress bar per stage (needs tqdm)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ori-demo-") as tmp:
        served, saved = Path(tmp, "served"), Path(tmp, "saved")
        served.mkdir()
        saved.mkdir()
        generate_files(served, args.files, args.size_kib * 1024)
        names = sorted(p.name for p in served.iterdir())
        with local_server(served, args.latency_ms / 1000) as base_url:
            urls = [f"{base_url}/{name}" for name in names]
            chain = build_chain(saved, args.downloaders, args.processes, args.savers)
            print(f"PoolChain demo: {len(urls)} files of {args.size_kib} KiB from {base_url}")
            print("  download (threads) -> compress + sha256 (processes) -> save (threads)")
            started = time.perf_counter()
            try:
                results: list[Saved] = chain.execute_eager(urls, progress=args.progress)
            except OriValidationError as exc:
                if not args.progress:
                    raise
                # Ori's message says what is missing and how to install it.
                sys.exit(f"--progress: {exc}")
            wall = time.perf_counter() - started

        # Check every result: right file, right content, in input order.
        for name, result in zip(names, results, strict=True):
            original = (served / name).read_bytes()
            restored = zlib.decompress(Path(result.path).read_bytes())
            assert Path(result.path).name == f"{name}.z"
            assert restored == original
            assert result.sha256 == hashlib.sha256(original).hexdigest()

        # The chain's own statistics of the run: per stage, how busy it was,
        # and which stage set the pace.
        print()
        chain.print_stats()

        total_mb = sum(r.size for r in results) / 1e6
        ratio = sum(r.compressed_size for r in results) / max(1, sum(r.size for r in results))
        stats = chain.stats
        assert stats is not None
        busy_total = sum(stage.busy_seconds for stage in stats.stages)
        print(
            f"\n{len(results)} files, {total_mb:.1f} MB -> {ratio:.0%} after compression, "
            f"all {len(results)} verified"
        )
        print(
            f"wall time {wall:.2f} s for {busy_total:.2f} s of work "
            f"({busy_total / wall:.1f}x overlap); throughput {len(results) / wall:.1f} files/s"
        )


if __name__ == "__main__":
    main()
