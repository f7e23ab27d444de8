"""Draw a timeline of one real PoolChain run: its three stages working at once.

The script runs a chain of three stages on a small input,

1. ``fetch``: waits like a download (a thread stage),
2. ``crunch``: hashes in a loop, pure CPU work (a process stage),
3. ``store``: waits like a disk write (a thread stage),

and writes an SVG picture of it (no plotting library needed) plus the data the
picture is drawn from as JSON. The picture has two parts:

* one row per worker (thread or process), with a bar for every item from the
  moment the stage function started on it to the moment it returned. These
  spans are recorded by the stage functions themselves (``time.time()``, which
  all processes of a machine share), because ``ChainStats`` keeps totals, not
  times; each item carries its spans on to the next stage;
* under it, the items each stage has finished so far, from ``run.stats``
  snapshots taken every few milliseconds while the run goes on, and in the
  legend the final ``ChainStats`` (busy time and utilisation per stage).

``max_in_flight`` bounds the items between "read from the input" and "handed
to the caller", so the chain cannot read its whole input before the first
result comes out: the bars of the three stages overlap by construction, and
how much they overlap is what the run measured.

Run it with::

    python examples/stage_timeline.py                      # docs/img/stage-timeline.svg
    python examples/stage_timeline.py --items 60 --svg /tmp/timeline.svg --json /tmp/t.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ori.poolchain import ChainStats, PoolChain

STAGES = ("fetch", "crunch", "store")
COLOURS = ("#4c72b0", "#dd8452", "#55a868")
SAMPLE_SECONDS = 0.01
DEFAULT_SVG = Path(__file__).resolve().parent.parent / "docs" / "img" / "stage-timeline.svg"


@dataclass(frozen=True)
class Span:
    """One stage function working on one item."""

    stage: int  # 1-based position in the chain
    index: int  # the item's position in the input
    worker: str  # thread name or process id
    start: float  # time.time()
    end: float


@dataclass(frozen=True)
class Tracked:
    """An item on its way through the chain, with the spans it collected."""

    index: int
    spans: tuple[Span, ...]
    wait_seconds: float
    crunch_rounds: int


def _worker_name(stage: int) -> str:
    if stage == 2:
        return f"process {os.getpid()}"
    return threading.current_thread().name


def _with_span(item: Tracked, stage: int, start: float) -> Tracked:
    span = Span(stage, item.index, _worker_name(stage), start, time.time())
    return Tracked(item.index, (*item.spans, span), item.wait_seconds, item.crunch_rounds)


# -- the stage functions (module level: worker processes import them) ---------------


def fetch(item: Tracked) -> Tracked:
    """Stage 1 (threads): wait, as a download would."""
    start = time.time()
    time.sleep(item.wait_seconds)
    return _with_span(item, 1, start)


def crunch(item: Tracked) -> Tracked:
    """Stage 2 (processes): CPU work, a chain of SHA-256 rounds."""
    start = time.time()
    digest = item.index.to_bytes(8, "little")
    for _ in range(item.crunch_rounds):
        digest = hashlib.sha256(digest).digest()
    return _with_span(item, 2, start)


def store(item: Tracked) -> Tracked:
    """Stage 3 (threads): a shorter wait, as a disk write would."""
    start = time.time()
    time.sleep(item.wait_seconds / 3)
    return _with_span(item, 3, start)


# -- running the chain and sampling its statistics -----------------------------------


@dataclass(frozen=True)
class Sample:
    """One ``run.stats`` snapshot: seconds since the start, items done per stage."""

    seconds: float
    items_out: tuple[int, ...]


@dataclass(frozen=True)
class StageSummary:
    """A stage's final statistics, from ``ChainStats``."""

    name: str
    workers: int
    items_out: int
    busy_seconds: float
    utilisation: float


@dataclass(frozen=True)
class Timeline:
    """Everything the picture is drawn from (written out as JSON too)."""

    started: float
    elapsed: float
    max_in_flight: int
    stages: tuple[StageSummary, ...]  # the final ChainStats
    spans: tuple[Span, ...]
    samples: tuple[Sample, ...]


def run_chain(
    items: int,
    wait_seconds: float,
    crunch_rounds: int,
    max_in_flight: int,
    start_method: str | None = None,
) -> Timeline:
    """Run the chain once over *items* items; return its spans and statistics."""
    chain = (
        PoolChain()
        .add_threadpool(fetch, max_workers=4)
        .add_processpool(crunch, max_workers=2, chunksize=1, start_method=start_method)
        .add_threadpool(store, max_workers=2)
    )
    inputs = [Tracked(i, (), wait_seconds, crunch_rounds) for i in range(items)]
    samples: list[Sample] = []
    done = threading.Event()
    results: list[Tracked] = []
    started = time.time()
    with chain.execute_lazy(inputs, max_in_flight=max_in_flight) as run:

        def sample() -> None:  # snapshots may be taken from any thread
            while not done.wait(SAMPLE_SECONDS):
                samples.append(_sample(run.stats, started))

        sampler = threading.Thread(target=sample, name="timeline-sampler")
        sampler.start()
        try:
            results.extend(run)
        finally:
            done.set()
            sampler.join()
    final = chain.stats
    assert final is not None
    samples.append(_sample(final, started))
    stages = tuple(
        StageSummary(s.name, s.workers, s.items_out, s.busy_seconds, s.utilisation)
        for s in final.stages
    )
    spans = tuple(span for result in results for span in result.spans)
    return Timeline(started, final.elapsed, max_in_flight, stages, spans, tuple(samples))


def _sample(stats: ChainStats, started: float) -> Sample:
    return Sample(time.time() - started, tuple(stage.items_out for stage in stats.stages))


# -- drawing --------------------------------------------------------------------------

WIDTH = 900
LEFT = 90  # room for the row labels
RIGHT = 20
ROW = 16
GAP = 10  # between stages
CURVE_HEIGHT = 120


def draw_svg(timeline: Timeline) -> str:
    """The timeline as a standalone SVG document."""
    span_end = max((s.end for s in timeline.spans), default=timeline.started)
    seconds = max(span_end - timeline.started, timeline.samples[-1].seconds, 1e-3)
    plot = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:  # seconds since the start -> pixels
        return LEFT + plot * t / seconds

    parts: list[str] = []
    y = 44
    for number, name in enumerate(STAGES, 1):
        spans = [s for s in timeline.spans if s.stage == number]
        workers = _workers_in_order(spans)
        kind, kinds = ("process", "processes") if number == 2 else ("thread", "threads")
        parts.append(_text(8, y + 12, f"stage {number}: {name} ({kinds})", weight="bold"))
        y += ROW + 2
        for row, worker in enumerate(workers, 1):
            top = y + (row - 1) * ROW
            parts.append(_text(24, top + 12, f"{kind} {row}", size=10))
            for span in (s for s in spans if s.worker == worker):
                left = x(span.start - timeline.started)
                width = max(0.8, x(span.end - timeline.started) - left)  # never invisible
                parts.append(
                    f'<rect class="span" data-stage="{number}" data-index="{span.index}" '
                    f'data-worker="{escape(worker)}" x="{left:.1f}" y="{top + 2}" '
                    f'width="{width:.1f}" height="{ROW - 4}" fill="{COLOURS[number - 1]}" '
                    'stroke="white" stroke-width="0.5"/>'
                )
        y += len(workers) * ROW + GAP
    lanes_bottom = y
    curve_top = lanes_bottom + 30
    parts.append(_text(8, curve_top - 8, "items finished (run.stats every 10 ms)", size=11))
    total = max(1, max((max(s.items_out, default=0) for s in timeline.samples), default=1))
    for number in range(1, len(STAGES) + 1):
        heights = [CURVE_HEIGHT * s.items_out[number - 1] / total for s in timeline.samples]
        points = " ".join(
            f"{x(s.seconds):.1f},{curve_top + CURVE_HEIGHT - h:.1f}"
            for s, h in zip(timeline.samples, heights, strict=True)
        )
        parts.append(
            f'<polyline class="done-curve" data-stage="{number}" points="{points}" fill="none" '
            f'stroke="{COLOURS[number - 1]}" stroke-width="2"/>'
        )
    parts.append(_text(LEFT - 30, curve_top + 10, str(total), size=10))
    parts.append(_text(LEFT - 30, curve_top + CURVE_HEIGHT, "0", size=10))
    axis_y = curve_top + CURVE_HEIGHT + 6
    parts.insert(0, _grid(x, seconds, 40, axis_y))
    parts.append(_axis(x, seconds, axis_y))
    legend_y = axis_y + 40
    for number, stage in enumerate(timeline.stages, 1):
        line = (
            f"{stage.name}: {stage.workers} workers, {stage.items_out} items, "
            f"busy {stage.busy_seconds:.2f} s ({stage.utilisation:.0%} of its capacity)"
        )
        top = legend_y + (number - 1) * 16
        parts.append(
            f'<rect x="8" y="{top - 9}" width="10" height="10" fill="{COLOURS[number - 1]}"/>'
        )
        parts.append(_text(24, top, line, size=11))
    height = legend_y + len(timeline.stages) * 16 + 10
    title = (
        f"One PoolChain run over {len({s.index for s in timeline.spans})} items "
        f"(max_in_flight={timeline.max_in_flight}): {timeline.elapsed:.2f} s"
    )
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
            "<!-- made by examples/stage_timeline.py from one real run -->",
            f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
            _text(8, 24, title, size=14, weight="bold"),
            *parts,
            "</svg>",
            "",
        ]
    )


def _workers_in_order(spans: Sequence[Span]) -> list[str]:
    """Worker names, the one that started first on top."""
    first: dict[str, float] = {}
    for span in spans:
        first[span.worker] = min(span.start, first.get(span.worker, span.start))
    return sorted(first, key=first.__getitem__)


def _axis(x: Callable[[float], float], seconds: float, y: float) -> str:
    step = _tick_step(seconds)
    ticks: list[str] = [
        f'<line x1="{x(0):.1f}" y1="{y}" x2="{x(seconds):.1f}" y2="{y}" stroke="#555"/>'
    ]
    t = 0.0
    while t <= seconds + 1e-9:
        ticks.append(f'<line x1="{x(t):.1f}" y1="{y}" x2="{x(t):.1f}" y2="{y + 4}" stroke="#555"/>')
        ticks.append(_text(x(t) - 8, y + 16, f"{t:g} s", size=10))
        t = round(t + step, 6)
    return "\n".join(ticks)


def _grid(x: Callable[[float], float], seconds: float, top: float, bottom: float) -> str:
    """Faint vertical lines at the ticks, across the rows and the curves."""
    step = _tick_step(seconds)
    lines = []
    t = 0.0
    while t <= seconds + 1e-9:
        lines.append(
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{bottom}" stroke="#ddd"/>'
        )
        t = round(t + step, 6)
    return "\n".join(lines)


def _tick_step(seconds: float) -> float:
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        if seconds / step <= 10:
            return step
    return 30.0


def _text(x: float, y: float, text: str, size: int = 12, weight: str = "normal") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}">'
        f"{escape(text)}</text>"
    )


def to_json(timeline: Timeline) -> str:
    """The data behind the picture, for checking or another plot."""
    return json.dumps(asdict(timeline), indent=1)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=40, help="input items (40)")
    parser.add_argument("--wait-ms", type=float, default=30, help="fetch wait per item (30 ms)")
    parser.add_argument("--rounds", type=int, default=40_000, help="SHA-256 rounds per item")
    parser.add_argument("--max-in-flight", type=int, default=8, help="the chain's window (8)")
    parser.add_argument("--svg", type=Path, default=DEFAULT_SVG, help="where to write the SVG")
    parser.add_argument("--json", type=Path, default=None, help="also write the data as JSON")
    parser.add_argument(
        "--start-method", choices=["fork", "spawn", "forkserver"], default=None,
        help="how the process stage starts its workers (default: the platform's)",
    )  # fmt: skip
    args = parser.parse_args(None if argv is None else list(argv))
    timeline = run_chain(
        args.items, args.wait_ms / 1000, args.rounds, args.max_in_flight, args.start_method
    )
    args.svg.write_text(draw_svg(timeline), encoding="utf-8")
    if args.json is not None:
        args.json.write_text(to_json(timeline), encoding="utf-8")
    print(f"{len(timeline.spans)} spans over {timeline.elapsed:.2f} s -> {args.svg}")


if __name__ == "__main__":
    main()
