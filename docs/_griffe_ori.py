"""Griffe extension used by the API reference (loaded from mkdocs.yml).

Ori's docstrings are Google style, written to read well in ``help()`` and in an
editor, so they use two reStructuredText habits that Markdown does not know:

* cross-reference roles such as ``:class:`~ori.errors.OriError``` or
  ``:func:`run_in_background```, and
* bare doctest paragraphs (lines starting with ``>>>``) outside an ``Examples:``
  section, and literal blocks introduced by a paragraph ending in ``::``.

This extension rewrites both while the docstrings are loaded, before they are
parsed: a role becomes an optional cross-reference (a link when the target is
rendered somewhere in the reference, inline code otherwise, never a build
warning), a bare doctest paragraph becomes a fenced ``pycon`` block and a
literal block becomes a fenced ``python`` block. The
source files are not touched.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|exc|mod|obj|data|const|term|ref)"
    r":`(?P<body>[^`]+)`"
)
_LABELLED = re.compile(r"^(?P<label>.+?)\s*<(?P<target>[^<>]+)>$")
_CALLABLE_ROLES = {"func", "meth"}


def _public_path(path: str) -> str:
    """Map ``ori.pkg._private.Name`` to the public ``ori.pkg.Name`` it is re-exported as."""
    parts = path.split(".")
    kept = (
        [parts[0]]
        + [p for p in parts[1:-1] if not p.startswith("_")]
        + parts[-1:]
    )
    return ".".join(kept)


def _resolve(obj: griffe.Object, name: str) -> str:
    """Best-effort full path of *name* as seen from *obj*'s scope."""
    if name.startswith("ori."):
        return name
    scopes: list[griffe.Object] = [obj]
    parent = obj.parent
    while parent is not None:
        scopes.append(parent)
        parent = parent.parent
    head = name.split(".", 1)[0]
    for scope in scopes:
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            continue
        return resolved + name[len(head) :]
    return name


def _convert_role(obj: griffe.Object, match: re.Match[str]) -> str:
    role, body = match["role"], match["body"].strip()
    labelled = _LABELLED.match(body)
    if labelled:
        label, target = labelled["label"], labelled["target"]
    else:
        target = body.lstrip("~")
        label = target.rsplit(".", 1)[-1] if body.startswith("~") else target
    target = target.lstrip("~").lstrip(".")
    if role in _CALLABLE_ROLES and not labelled and not label.endswith(")"):
        label += "()"
    code = f"<code>{html.escape(label)}</code>"
    full = _resolve(obj, target)
    if not full.startswith("ori."):
        return code
    identifier = html.escape(_public_path(full), quote=True)
    return f'<autoref identifier="{identifier}" optional>{code}</autoref>'


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fence_literal_blocks(text: str) -> str:
    """Turn reST literal blocks (a paragraph ending in ``::``) into fenced code."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not line.rstrip().endswith("::") or line.lstrip().startswith(">>>"):
            continue
        # Find the indented block after the blank line(s).
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        base = _indent(line)
        if j >= len(lines) or _indent(lines[j]) <= base:
            continue
        block: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or _indent(lines[j]) > base
        ):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        depth = min(_indent(b) for b in block if b.strip())
        stripped = line.rstrip()[:-2].rstrip()
        out[-1] = f"{stripped}:" if stripped else ""
        pad = " " * base
        out += [
            "",
            f"{pad}```python",
            *(pad + b[depth:] for b in block),
            f"{pad}```",
            "",
        ]
        i = j
    return "\n".join(out)


def _fence_doctests(text: str) -> str:
    """Put unindented ``>>>`` paragraphs that are not fenced already in a pycon fence."""
    lines = text.splitlines()
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if not in_fence and line.startswith(">>>"):
            block: list[str] = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.extend(["```pycon", *block, "```"])
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class OriDocstrings(griffe.Extension):
    """Rewrite reST roles and bare doctests in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None:
            return
        text = _fence_doctests(_fence_literal_blocks(docstring.value))
        docstring.value = _ROLE.sub(lambda m: _convert_role(obj, m), text)
