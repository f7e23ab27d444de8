"""Turn the chunks read from a pipe into complete, decoded lines.

A pipe hands over bytes in whatever pieces the writer and the kernel produced:
a read can end in the middle of a line or in the middle of a multi-byte
character. :class:`LineSplitter` keeps what it cannot finish yet and returns
only whole lines:

    bytes chunk -> incremental decoder -> text -> split on "\\n"
        -> first piece joined to the unfinished tail of the previous chunk
        -> last piece kept as the new unfinished tail
        -> "\\r" dropped from the end of lines that ended with "\\r\\n"

Decoding happens before splitting, so the splitter works for any encoding the
codecs module knows, not only ASCII-compatible ones. The unfinished tail is a
list of pieces joined once, so a single line of many megabytes costs linear,
not quadratic, time.
"""

from __future__ import annotations

import codecs

__all__ = ("LineSplitter",)


class LineSplitter:
    """Incremental splitter of a byte stream into text lines.

    Only ``"\\n"`` ends a line; a ``"\\r"`` directly before it is removed too.
    A lone ``"\\r"`` (as progress bars print) stays part of the line. Not
    thread-safe: one splitter belongs to one reader.
    """

    __slots__ = ("_decoder", "_tail")

    def __init__(self, encoding: str = "utf-8", errors: str = "replace") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._tail: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        """Decode *data* and return the lines it completes, without line endings.

        Raises:
            UnicodeDecodeError: the bytes are invalid and ``errors="strict"``.
        """
        return self._split(self._decoder.decode(data))

    def finish(self) -> list[str]:
        """Flush the decoder and return the remaining lines, an unterminated last one included.

        Returns an empty list when the stream ended with a newline (or was
        empty). The splitter can be reused afterwards as if it were new.

        Raises:
            UnicodeDecodeError: the stream ended inside a character and
                ``errors="strict"``.
        """
        lines = self._split(self._decoder.decode(b"", final=True))
        if self._tail:
            lines.append("".join(self._tail))
            self._tail.clear()
        self._decoder.reset()
        return lines

    def _split(self, text: str) -> list[str]:
        if "\n" not in text:
            if text:
                self._tail.append(text)
            return []
        lines = text.split("\n")
        if self._tail:
            self._tail.append(lines[0])
            lines[0] = "".join(self._tail)
            self._tail.clear()
        last = lines.pop()
        if last:
            self._tail.append(last)
        if "\r" in text or lines[0].endswith("\r"):
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines
