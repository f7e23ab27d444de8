"""LineSplitter: chunks of bytes in, whole decoded lines out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ori.subprocess._lines import LineSplitter


def split_all(chunks: list[bytes], encoding: str = "utf-8", errors: str = "replace") -> list[str]:
    splitter = LineSplitter(encoding, errors)
    lines: list[str] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.finish()


def reference(data: bytes) -> list[str]:
    """What the whole stream means, decoded at once."""
    text = data.decode("utf-8", "replace")
    pieces = text.split("\n")
    last = pieces.pop()
    lines = [p[:-1] if p.endswith("\r") else p for p in pieces]
    return [*lines, last] if last else lines


def test_lines_without_endings() -> None:
    assert split_all([b"a\nbb\n\nccc\n"]) == ["a", "bb", "", "ccc"]


def test_final_line_without_newline_is_delivered() -> None:
    assert split_all([b"a\nlast"]) == ["a", "last"]


def test_empty_stream_gives_no_lines() -> None:
    assert split_all([]) == []
    assert split_all([b""]) == []


def test_single_newline_is_one_empty_line() -> None:
    assert split_all([b"\n"]) == [""]


def test_crlf_stripped_also_across_chunks() -> None:
    assert split_all([b"a\r\nb\r", b"\nc\r\n"]) == ["a", "b", "c"]


def test_lone_carriage_return_stays() -> None:
    assert split_all([b"10%\r50%\r100%\n"]) == ["10%\r50%\r100%"]
    assert split_all([b"end\r"]) == ["end\r"]


def test_line_split_over_many_chunks() -> None:
    assert split_all([b"ab", b"c", b"d\ne", b"f", b"\n"]) == ["abcd", "ef"]


def test_multibyte_character_split_between_chunks() -> None:
    data = "héllo wörld €\n".encode()
    for cut in range(len(data)):
        assert split_all([data[:cut], data[cut:]]) == ["héllo wörld €"]


def test_invalid_utf8_is_replaced() -> None:
    assert split_all([b"ok\xff\xfe\n", b"\xc3(\n"]) == ["ok\ufffd\ufffd", "\ufffd("]


def test_truncated_character_at_end_is_replaced() -> None:
    assert split_all([b"euro \xe2\x82"]) == ["euro \ufffd"]


def test_strict_errors_raise() -> None:
    splitter = LineSplitter("utf-8", "strict")
    with pytest.raises(UnicodeDecodeError):
        splitter.feed(b"bad \xff\n")


def test_other_encodings() -> None:
    assert split_all(["ça\nva\n".encode("latin-1")], "latin-1") == ["ça", "va"]
    # Not ASCII-compatible: splitting happens after decoding.
    data = "one\ntwo\r\n".encode("utf-16-le")
    assert split_all([data[:3], data[3:]], "utf-16-le") == ["one", "two"]


def test_megabyte_line() -> None:
    line = b"x" * 1_000_000
    chunks = [line[i : i + 65536] for i in range(0, len(line), 65536)]
    assert split_all([*chunks, b"\nafter"]) == ["x" * 1_000_000, "after"]


def test_finish_resets_the_splitter() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"half") == []
    assert splitter.finish() == ["half"]
    assert splitter.feed(b"new\n") == ["new"]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            [b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\n", b"\r", b"\r\n", b"\xff", b"\xe2"]
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_any_chunking_gives_the_same_lines(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert split_all(chunks) == reference(data)
