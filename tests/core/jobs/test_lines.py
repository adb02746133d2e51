"""Manifest lines and where each ends: what a resumed read restarts from."""

from __future__ import annotations

import pytest

from asg_grpc.jobs.lines import TOO_LONG, LineSplitter


def split_all(data: bytes, pieces: list[int], max_line: int = 100, offset: int = 0) -> list:
    splitter = LineSplitter(max_line, offset)
    out, start = [], 0
    for size in pieces:
        out += splitter.feed(data[start : start + size])
        start += size
    out += splitter.feed(data[start:])
    return out + splitter.finish()


@pytest.mark.parametrize("pieces", [[], [1] * 30, [3, 5, 7], [10, 0, 2]])
def test_lines_and_their_end_offsets_do_not_depend_on_how_the_bytes_arrive(pieces: list[int]) -> None:
    data = b'{"a":1}\n\n{"b":2}\r\nlast'
    assert split_all(data, pieces) == [(b'{"a":1}', 8), (b"", 9), (b'{"b":2}', 18), (b"last", 22)]


def test_a_resumed_read_counts_offsets_from_where_it_resumed() -> None:
    assert split_all(b"x\ny\n", [], offset=1000) == [(b"x", 1002), (b"y", 1004)]


def test_a_line_over_the_limit_is_reported_without_being_kept_and_the_next_line_is_intact() -> None:
    data = b"short\n" + b"z" * 50 + b"\nafter\n"
    for pieces in ([], [4] * 20):
        lines = split_all(data, pieces, max_line=10)
        assert lines == [(b"short", 6), (TOO_LONG, 57), (b"after", 63)]


def test_an_unterminated_long_last_line_is_reported() -> None:
    assert split_all(b"ok\n" + b"q" * 30, [5, 5, 5], max_line=10) == [(b"ok", 3), (TOO_LONG, 33)]
