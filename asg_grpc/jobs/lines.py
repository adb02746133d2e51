"""Splitting a byte stream into manifest lines, knowing where each line ends.

The end offsets let ingestion record, with each committed chunk, the byte where the next line
starts, so a restarted core resumes the read there.
"""

from __future__ import annotations

# A line longer than the limit: its bytes are dropped as they arrive, never held.
TOO_LONG = None


class LineSplitter:
    def __init__(self, max_line_bytes: int, offset: int = 0) -> None:
        self._max = max_line_bytes
        self._buf = b""
        self._end = offset  # the offset just past the last byte consumed into lines or _buf
        self._skipping = False  # inside a line already known to be too long

    def feed(self, data: bytes) -> list[tuple[bytes | None, int]]:
        """The lines `data` completes: (line without its newline, or TOO_LONG; the offset just
        past its newline)."""
        self._end += len(data)
        parts = (self._buf + data).split(b"\n") if self._buf else data.split(b"\n")
        self._buf = parts.pop()
        lines: list[tuple[bytes | None, int]] = []
        position = self._end - len(self._buf)
        # Walk back from the end of the last complete line to each line's end.
        ends = []
        for part in reversed(parts):
            ends.append(position)
            position -= len(part) + 1
        ends.reverse()
        for part, end in zip(parts, ends, strict=True):
            if self._skipping:
                self._skipping = False
                lines.append((TOO_LONG, end))
            else:
                lines.append((_strip_cr(part) if len(part) <= self._max else TOO_LONG, end))
        if len(self._buf) > self._max:
            self._skipping = True
            self._buf = b""
        return lines

    def finish(self) -> list[tuple[bytes | None, int]]:
        """The last line, when the stream does not end with a newline."""
        if self._skipping:
            self._skipping = False
            return [(TOO_LONG, self._end)]
        if self._buf:
            line, self._buf = self._buf, b""
            return [(_strip_cr(line), self._end)]
        return []


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line
