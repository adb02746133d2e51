"""The terminal side of the interactive labeler: lines from stdin without blocking the loop.

The event loop keeps reading the stream (acks, errors, withdrawals) while a person thinks, so
stdin is watched with `loop.add_reader`. A regular file cannot be watched that way; it is read
by a daemon thread instead, which never holds up the exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import termios
import threading

# Everything but tab and newline below 0x20, DEL, and the C1 range: fetched text and task
# fields come from strangers, and escape sequences could rewrite what the person sees.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text safe to print on a terminal: control characters shown as '?'."""
    return _CONTROL.sub("?", text.replace("\r\n", "\n"))


class LineReader:
    """Lines from a file descriptor as an async API; `None` once the input is closed."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffer = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._eof = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_reader(self._fd, self._on_readable)
        except (PermissionError, ValueError, OSError, NotImplementedError):
            threading.Thread(target=self._read_blocking, name="stdin", daemon=True).start()

    def close(self) -> None:
        if self._loop is not None and not self._eof:
            self._loop.remove_reader(self._fd)

    def discard_pending(self) -> None:
        """Drop what was typed before the question was shown, so it cannot answer it blind.

        Only on a terminal: answers piped in from a file or another program are meant.
        """
        if not os.isatty(self._fd):
            return
        termios.tcflush(self._fd, termios.TCIFLUSH)  # typed, not yet read by us
        self._buffer = b""
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line is None:  # keep the end of input: it is not a stale answer
                self._lines.put_nowait(None)
                return

    async def readline(self) -> str | None:
        return await self._lines.get()

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        self._feed(chunk)

    def _read_blocking(self) -> None:
        assert self._loop is not None
        while True:
            try:
                chunk = os.read(self._fd, 4096)
            except OSError:
                chunk = b""
            try:
                self._loop.call_soon_threadsafe(self._feed, chunk)
            except RuntimeError:  # the loop is closed: the agent is exiting
                return
            if not chunk:
                return

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            if self._buffer:
                self._lines.put_nowait(self._buffer.decode(errors="replace"))
                self._buffer = b""
            if not self._eof:
                self._eof = True
                if self._loop is not None:
                    self._loop.remove_reader(self._fd)
                self._lines.put_nowait(None)
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._lines.put_nowait(line.decode(errors="replace").rstrip("\r"))
