"""examples/stage_timeline.py draws a real run: its SVG and JSON are parsed and checked.

Nothing here depends on how fast the machine is: the checks are counts, the
order of events that causality fixes (an item leaves a stage before the next
one starts on it; with ``max_in_flight=k`` item ``k`` cannot be read before
item 0 came out of the last stage) and the geometry of the drawing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "stage_timeline.py"
COMMITTED = ROOT / "docs" / "img" / "stage-timeline.svg"
SVG = "{http://www.w3.org/2000/svg}"
ITEMS = 16
WINDOW = 4


def _run(tmp_path: Path, start_method: str) -> tuple[ET.Element, dict[str, Any], str]:
    svg, data = tmp_path / "timeline.svg", tmp_path / "timeline.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--items", str(ITEMS), "--wait-ms", "5",
         "--rounds", "2000", "--max-in-flight", str(WINDOW), "--start-method", start_method,
         "--svg", str(svg), "--json", str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert re.fullmatch(rf"{3 * ITEMS} spans over [\d.]+ s -> {re.escape(str(svg))}\n", done.stdout)
    text = svg.read_text()
    return ET.fromstring(text), json.loads(data.read_text()), text


def _spans_by_stage(root: ET.Element) -> dict[int, list[ET.Element]]:
    by_stage: dict[int, list[ET.Element]] = {}
    for rect in root.iter(f"{SVG}rect"):
        if rect.get("class") == "span":
            by_stage.setdefault(int(rect.get("data-stage", "0")), []).append(rect)
    return by_stage


def _check_drawing(root: ET.Element, items: int) -> None:
    assert root.tag == f"{SVG}svg"
    width = float(root.get("width", "0"))
    by_stage = _spans_by_stage(root)
    assert sorted(by_stage) == [1, 2, 3]
    for rects in by_stage.values():
        assert sorted(int(r.get("data-index", "-1")) for r in rects) == list(range(items))
        for rect in rects:
            left, span = float(rect.get("x", "-1")), float(rect.get("width", "-1"))
            assert left > 0
            assert span > 0
            assert left + span <= width
    curves = [p for p in root.iter(f"{SVG}polyline") if p.get("class") == "done-curve"]
    assert [c.get("data-stage") for c in curves] == ["1", "2", "3"]
    for curve in curves:
        ys = [float(point.split(",")[1]) for point in curve.get("points", "").split()]
        assert len(ys) >= 2
        assert ys == sorted(ys, reverse=True), "finished items never decrease"
        assert ys[-1] < ys[0], "the curve rises to the finished total"


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_timeline_of_a_real_run(tmp_path: Path, start_method: str) -> None:
    root, data, text = _run(tmp_path, start_method)
    assert "made by examples/stage_timeline.py" in text
    _check_drawing(root, ITEMS)

    # The statistics the legend and the curves come from.
    assert [s["items_out"] for s in data["stages"]] == [ITEMS] * 3
    assert [s["workers"] for s in data["stages"]] == [4, 2, 2]
    assert all(s["busy_seconds"] > 0 for s in data["stages"])
    assert data["samples"][-1]["items_out"] == [ITEMS] * 3
    assert data["max_in_flight"] == WINDOW

    spans = {(s["stage"], s["index"]): s for s in data["spans"]}
    assert len(spans) == 3 * ITEMS
    for index in range(ITEMS):
        fetched, crunched, stored = (spans[stage, index] for stage in (1, 2, 3))
        assert fetched["start"] <= fetched["end"] <= crunched["start"] <= crunched["end"]
        assert crunched["end"] <= stored["start"] <= stored["end"]
        assert crunched["worker"].startswith("process ")
    # The window makes the stages overlap: the first result was stored before
    # the item WINDOW places later was even fetched.
    assert spans[3, 0]["end"] <= spans[1, WINDOW]["start"]
    assert len({s["worker"] for s in data["spans"] if s["stage"] == 2}) <= 2


def test_committed_picture_is_the_scripts_drawing() -> None:
    text = COMMITTED.read_text()
    assert "made by examples/stage_timeline.py" in text
    root = ET.fromstring(text)
    items = len({r.get("data-index") for r in _spans_by_stage(root)[1]})
    assert items == 40, "drawn with the script's defaults"
    _check_drawing(root, items)
