"""MkDocs hooks for the Ori site (registered in mkdocs.yml).

A region of a page written as::

    <!-- include-if-present: PATH -->
    fallback text
    <!-- end-include -->

is replaced by the contents of PATH (relative to the repository root) when
that file exists, and by the fallback text when it does not. The benchmarks page
uses it for the results file that the benchmark suite generates, which is not
in the repository until someone runs the suite. Every other include goes
through the snippets extension, which fails the build on a missing file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_REGION = re.compile(
    r"^<!-- include-if-present: (?P<path>\S+) -->\n(?P<fallback>.*?)^<!-- end-include -->$",
    re.MULTILINE | re.DOTALL,
)


def _include(match: re.Match[str]) -> str:
    path = (_ROOT / match["path"]).resolve()
    if _ROOT not in path.parents or not path.is_file():
        return match["fallback"]
    return path.read_text(encoding="utf-8")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _REGION.sub(_include, markdown)
