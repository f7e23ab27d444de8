"""Every Python example in the documentation runs, so the docs cannot rot.

Collected: each fenced block whose language is ``python`` (or ``py``) in
``docs/**/*.md``, ``README.md`` and ``packages/*/README.md``. The blocks of one
page run in order in one shared namespace, like a reader pasting them into one
script, and each page is one test case named after its path.

A line ``--8<-- "path"`` inside a block (the snippets extension, which the
site uses to show a repository file such as the demo script) is replaced by
that file, so the code that runs is the code the reader sees.

A block that is deliberately only a fragment (a signature sketch, code that
needs a network) is marked with ``<!-- no-run -->`` on the line before its
opening fence. Marked blocks must still compile, so they cannot rot into
invalid Python either. Use the marker sparingly: a runnable example is worth
more than a pretty one.

Where pages run:

* ``README.md`` files run with their own folder as the working directory, so
  examples may read the files next to them;
* docs pages run in an empty temporary folder, so examples may write files.

Process pools import the functions they run by module and name. Each page's
namespace is therefore a real module (``ori_docs_<page>``) registered in
``sys.modules``, and a file of that name holding the page's top-level imports,
definitions and literal constants is put on ``sys.path``: a worker started with
``spawn`` or ``forkserver`` imports the definitions from it without re-running
the example. Tracebacks point at the Markdown file and line.

Examples must clean up after themselves: the root conftest's leak fixture fails
a page that leaves a thread or a process behind.
"""

from __future__ import annotations

import ast
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NO_RUN_MARKER = "<!-- no-run -->"
PYTHON_LANGUAGES = {"python", "py", "python3"}

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a Markdown page."""

    page: Path
    line: int  # 1-based line number of the first line of code
    code: str
    runs: bool


def markdown_pages() -> list[Path]:
    """Every Markdown page whose Python examples must run."""
    pages = sorted((ROOT / "docs").rglob("*.md"))
    pages.append(ROOT / "README.md")
    pages += sorted((ROOT / "packages").glob("*/README.md"))
    return [p for p in pages if p.is_file()]


def python_blocks(page: Path) -> list[Block]:
    """The fenced Python blocks of *page*, in order, with their run marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        words = opening["info"].split()
        # ```python, ```python title="x.py", or the attribute form ```{.python}
        # (which ruff's Markdown formatter leaves alone, for snippet includes).
        language = words[0].strip("{.}").lower() if words else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if language in PYTHON_LANGUAGES:
            body = _expand_snippets(body)
            previous = next(
                (lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), ""
            )
            blocks.append(
                Block(page, i + 2, "\n".join(body) + "\n", runs=previous != NO_RUN_MARKER)
            )
        i = j + 1
    return blocks


_SNIPPET = re.compile(r'^\s*--8<-- "(?P<path>[^"]+)"\s*$')


def _expand_snippets(body: list[str]) -> list[str]:
    """Replace snippet-include lines with the file they include, as the site shows it."""
    expanded: list[str] = []
    for line in body:
        match = _SNIPPET.match(line)
        if match is None:
            expanded.append(line)
        else:
            expanded += (ROOT / match["path"]).read_text(encoding="utf-8").splitlines()
    return expanded


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _module_name(page: Path) -> str:
    slug = re.sub(r"\W+", "_", _page_id(page).removesuffix(".md")).strip("_").lower()
    return f"ori_docs_{slug}"


def _definitions_only(blocks: list[Block]) -> str:
    """Top-level imports, defs, classes and literal constants of the blocks, for workers."""
    keep: list[str] = []
    for block in blocks:
        tree = ast.parse(block.code)
        lines = block.code.splitlines()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue  # only valid at the top of a file, and not needed by workers
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                try:
                    ast.literal_eval(node.value) if node.value is not None else None
                except ValueError:
                    continue
            elif not isinstance(
                node,
                (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef),
            ):
                continue
            decorators = getattr(node, "decorator_list", [])
            start = decorators[0].lineno if decorators else node.lineno
            keep.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n\n".join(keep) + "\n"


PAGES = [page for page in markdown_pages() if any(b.runs for b in python_blocks(page))]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in python_blocks(page) if b.runs]
    if page.name == "README.md":
        monkeypatch.chdir(page.parent)
    else:
        workdir = tmp_path / "work"
        workdir.mkdir()
        monkeypatch.chdir(workdir)

    name = _module_name(page)
    module_dir = tmp_path / "modules"
    module_dir.mkdir()
    module_file = module_dir / f"{name}.py"
    module_file.write_text(_definitions_only(blocks), encoding="utf-8")
    monkeypatch.syspath_prepend(str(module_dir))

    module = types.ModuleType(name)
    module.__file__ = str(module_file)
    monkeypatch.setitem(sys.modules, name, module)
    try:
        for block in blocks:
            # Pad with blank lines so that tracebacks show the Markdown line numbers.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(page), "exec"), module.__dict__)
    finally:
        # Drop the page's objects now, so that anything they own is released
        # before the leak check runs.
        module.__dict__.clear()


def test_every_block_compiles() -> None:
    """Blocks marked no-run are fragments, but still valid Python."""
    for page in markdown_pages():
        for block in python_blocks(page):
            compile(block.code, f"{_page_id(page)}:{block.line}", "exec")


def test_collector_finds_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "```python\nx = 1\n```\n\n"
        "<!-- no-run -->\n"
        "```python\nconnect(...)\n```\n\n"
        "```bash\necho not python\n```\n\n"
        '=== "Tab"\n\n    ```py title="t.py"\n    y = x + 1\n    ```\n'
        "````python\n```\nz = 3\n````\n"
        "```{.python}\nw = 4\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [(b.line, b.code, b.runs) for b in blocks] == [
        (4, "x = 1\n", True),
        (9, "connect(...)\n", False),
        (19, "y = x + 1\n", True),
        (22, "```\nz = 3\n", True),
        (26, "w = 4\n", True),
    ]


def test_collector_expands_snippet_includes(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '```python\nbefore = 1\n--8<-- "packages/ori-errors/README.md"\n```\n',
        encoding="utf-8",
    )
    (block,) = python_blocks(page)
    readme = (ROOT / "packages" / "ori-errors" / "README.md").read_text(encoding="utf-8")
    assert block.code == "before = 1\n" + "\n".join(readme.splitlines()) + "\n"


def test_definitions_only_keeps_what_workers_import() -> None:
    code = (
        "from __future__ import annotations\nimport zlib\nSIZE = 10\nitems = list(range(SIZE))\n\n"
        "@staticmethod\ndef f(x):\n    return x\n\nprint(f(1))\n"
        "class C:\n    pass\n"
    )
    kept = _definitions_only([Block(Path("p.md"), 1, code, True)])
    namespace: dict[str, object] = {}
    exec(kept, namespace)
    assert {"zlib", "SIZE", "f", "C"} <= namespace.keys()
    assert "items" not in namespace
    assert "print" not in kept
    assert "__future__" not in kept


def test_the_docs_have_examples() -> None:
    ids = {_page_id(p) for p in PAGES}
    assert "README.md" in ids
    assert any(i.startswith("docs/") for i in ids)


# -- the site covers every package --------------------------------------------


def _library_modules() -> list[str]:
    """``ori.X`` module names of the distributions in packages/ (``X`` only)."""
    return sorted(
        init.parent.name for init in (ROOT / "packages").glob("ori-*/src/ori/*/__init__.py")
    )


def _public_names(module: str) -> list[str]:
    init = next((ROOT / "packages").glob(f"ori-*/src/ori/{module}/__init__.py"))
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [str(name) for name in ast.literal_eval(node.value)]
    raise AssertionError(f"ori.{module} has no __all__")


@pytest.mark.parametrize("module", _library_modules())
def test_reference_documents_every_public_name(module: str) -> None:
    page = ROOT / "docs" / "reference" / f"{module}.md"
    assert page.is_file(), f"ori.{module} has no API reference page"
    directives = set(re.findall(r"^::: (\S+)$", page.read_text(encoding="utf-8"), re.MULTILINE))
    missing = [n for n in _public_names(module) if f"ori.{module}.{n}" not in directives]
    assert missing == [], f"docs/reference/{module}.md does not render {missing}"


@pytest.mark.parametrize("module", _library_modules())
def test_every_package_has_a_guide_and_a_changelog_in_the_nav(module: str) -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    changelog = ROOT / "docs" / "changelog" / f"ori-{module}.md"
    assert f'--8<-- "packages/ori-{module}/CHANGELOG.md"' in changelog.read_text(encoding="utf-8")
    for page in (f"guides/{module}.md", f"reference/{module}.md", f"changelog/ori-{module}.md"):
        assert (ROOT / "docs" / page).is_file(), page
        assert f": {page}\n" in nav, f"{page} is not in the mkdocs.yml nav"
