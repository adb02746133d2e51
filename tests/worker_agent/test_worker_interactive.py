"""The interactive labeler: through a pseudo-terminal as a person uses it, and piece by piece."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pty
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pexpect
import pytest
import pytest_asyncio
from conftest import TextSite, eventually, worker_env
from fake_core import FakeLabeling, assignment, serving
from pexpect import fdpexpect

from worker_agent.errors import LabelerExhausted
from worker_agent.labelers import Answer, InteractiveLabeler, Skip

SENTIMENT = ("positive", "negative")


async def expect(child: fdpexpect.fdspawn, text: str) -> None:
    """pexpect blocks: wait in a thread so the fake core keeps serving in this loop."""
    await asyncio.to_thread(child.expect_exact, text)


@dataclass
class Terminal:
    """An `asg-worker` whose stdin, stdout and stderr are a pseudo-terminal we drive."""

    proc: subprocess.Popen[bytes]
    screen: fdpexpect.fdspawn

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.screen.close()


def spawn_interactive(worker_bin: str, port: int, **env: str) -> Terminal:
    # pexpect.spawn forks this process and runs Python in the child before exec; gRPC (the fake
    # core runs here) objects to that. subprocess execs straight away, so start the agent with
    # it on a pty we opened, and let pexpect read the other end.
    screen_fd, agent_fd = pty.openpty()
    proc = subprocess.Popen(
        [worker_bin, "--labeler", "interactive"],
        stdin=agent_fd,
        stdout=agent_fd,
        stderr=agent_fd,
        env=worker_env(port, ASG_LOG_LEVEL="", **env),  # unset: a terminal gets WARNING and up
        start_new_session=True,
    )
    os.close(agent_fd)
    return Terminal(proc, fdpexpect.fdspawn(screen_fd, encoding="utf-8", timeout=10))


async def exit_code(terminal: Terminal) -> int:
    await asyncio.to_thread(terminal.screen.expect, pexpect.EOF)
    return await asyncio.to_thread(terminal.proc.wait, 10)


@pytest.fixture
def closing() -> Iterator[list[Terminal]]:
    terminals: list[Terminal] = []
    yield terminals
    for terminal in terminals:
        terminal.close()


@pytest.mark.asyncio
async def test_a_person_answers_by_number_skips_with_s_and_sigterm_returns_the_task(
    worker_bin: str, closing: list[Terminal]
) -> None:
    core = FakeLabeling([assignment(1), assignment(2)])
    async with serving(core) as port:
        terminal = spawn_interactive(worker_bin, port)
        closing.append(terminal)
        child = terminal.screen
        await expect(child, "tasks will appear here")
        await expect(child, "Task tsk_1 · image_classification · answer within ")
        for text in ("Which animal?", "1) cat", "2) dog"):
            await expect(child, text)
        await expect(child, "Image: https://cdn.example.com/1.jpg")
        await expect(child, "Answer 1-2, or s to skip: ")
        child.sendline("2")
        await expect(child, "answered 'dog'. Waiting for the next task")
        await core.wait_for(lambda: "tsk_1" in core.labels)
        assert core.labels["tsk_1"] == "dog"
        assert core.hellos[0].max_in_flight == 1

        await expect(child, "Task tsk_2")
        await expect(child, "Answer 1-2, or s to skip: ")
        child.sendline("maybe")
        await expect(child, "Please type a number from 1 to 2, or s to skip.")
        child.sendline("s")
        await core.wait_for(lambda: "tsk_2" in core.skips)
        assert core.skips["tsk_2"] == "skipped by labeler"

        core.add_tasks(assignment(3))
        await expect(child, "Task tsk_3")
        await expect(child, "Answer 1-2, or s to skip: ")
        terminal.proc.send_signal(signal.SIGTERM)
        assert await exit_code(terminal) == 0
    assert core.skips["tsk_3"] == "shutdown", "a person is not kept waiting: held work goes back"
    assert core.count("drain") == 1


@pytest.mark.asyncio
async def test_an_unanswered_question_goes_back_after_the_answer_timeout(
    worker_bin: str, closing: list[Terminal]
) -> None:
    core = FakeLabeling([assignment(1)])
    async with serving(core) as port:
        terminal = spawn_interactive(worker_bin, port, ASG_WORKER_ANSWER_TIMEOUT="2")
        closing.append(terminal)
        child = terminal.screen
        await expect(child, "Task tsk_1 · image_classification · answer within 2 s")
        await expect(child, "(no answer within 2 s: the task goes back to other workers)")
        await core.wait_for(lambda: "tsk_1" in core.skips)
        assert core.skips["tsk_1"] == "no answer in time"

        core.add_tasks(assignment(2))  # the person is back: the next question waits for them
        await expect(child, "Answer 1-2, or s to skip: ")
        child.sendline("1")
        await core.wait_for(lambda: "tsk_2" in core.labels)
        assert core.labels["tsk_2"] == "cat"


@pytest.mark.asyncio
async def test_a_text_task_shows_the_text_fetched_over_https(
    worker_bin: str, text_site: TextSite, closing: list[Terminal]
) -> None:
    tasks = [
        assignment("r", "sentiment", SENTIMENT, text_site.url("review.txt"), "How does it sound?"),
        assignment("m", "sentiment", SENTIMENT, text_site.url("missing.txt"), "How does it sound?"),
    ]
    core = FakeLabeling(tasks)
    async with serving(core) as port:
        terminal = spawn_interactive(worker_bin, port, SSL_CERT_FILE=str(text_site.cert))
        closing.append(terminal)
        child = terminal.screen
        await expect(child, f"Text (from {text_site.url('review.txt')}):")
        await expect(child, "I loved this phone.")
        await expect(child, "The battery lasts two days — really.")
        await expect(child, "Answer 1-2, or s to skip: ")
        child.sendline("1")
        await core.wait_for(lambda: "tsk_r" in core.labels)

        await expect(child, "fetching the text failed: HTTP 404")
        await expect(child, "you can still answer from the URL, or skip")
        await expect(child, "Answer 1-2, or s to skip: ")
        child.sendline("2")
        await core.wait_for(lambda: "tsk_m" in core.labels)
        terminal.proc.send_signal(signal.SIGTERM)
        assert await exit_code(terminal) == 0
    assert core.labels == {"tsk_r": "positive", "tsk_m": "negative"}


# -- the labeler on its own: a pipe or a pty for stdin, a StringIO for the screen -----------


@pytest_asyncio.fixture
async def client(text_site: TextSite) -> AsyncIterator[httpx.AsyncClient]:
    verify = ssl.create_default_context(cafile=str(text_site.cert))
    async with httpx.AsyncClient(verify=verify, timeout=5) as c:
        yield c


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):  # a test may have closed one already
            os.close(fd)


@pytest.mark.asyncio
async def test_wrong_replies_are_asked_again_until_a_number_or_s(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = io.StringIO()
    labeler = InteractiveLabeler(stdin_fd=read, out=out)
    os.write(write, b"x\n3\n0\n2\ns\n")
    try:
        assert await labeler.label(assignment(1)) == Answer("dog")
        assert await labeler.label(assignment(2)) == Skip("skipped by labeler")
    finally:
        await labeler.aclose()
    assert out.getvalue().count("Please type a number from 1 to 2, or s to skip.") == 3


@pytest.mark.asyncio
async def test_closed_input_stops_the_labeler(pipe: tuple[int, int]) -> None:
    read, write = pipe
    out = io.StringIO()
    labeler = InteractiveLabeler(stdin_fd=read, out=out)
    os.close(write)
    try:
        with pytest.raises(LabelerExhausted):
            await labeler.label(assignment(1))
    finally:
        await labeler.aclose()
    assert "(input closed: stopping)" in out.getvalue()


@pytest.mark.asyncio
async def test_what_was_typed_before_the_question_cannot_answer_it() -> None:
    terminal, stdin = pty.openpty()
    out = io.StringIO()
    labeler = InteractiveLabeler(stdin_fd=stdin, out=out)
    try:
        os.write(terminal, b"1\n")  # typed ahead, before the question is on screen
        answer = asyncio.create_task(labeler.label(assignment(1)))
        await eventually(lambda: "Answer 1-2" in out.getvalue())
        os.write(terminal, b"2\n")
        assert await asyncio.wait_for(answer, 10) == Answer("dog")
    finally:
        await labeler.aclose()
        os.close(terminal)
        os.close(stdin)


@pytest.mark.asyncio
async def test_long_text_is_cut_at_64_kib_and_escape_sequences_are_defused(
    pipe: tuple[int, int], client: httpx.AsyncClient, text_site: TextSite
) -> None:
    read, write = pipe
    out = io.StringIO()
    labeler = InteractiveLabeler(stdin_fd=read, out=out, client=client)
    os.write(write, b"1\n1\n1\n")
    try:
        for page in ("big.txt", "escape.txt"):
            await labeler.label(assignment(page, "moderation", ("ok", "remove"), text_site.url(page)))
        await labeler.label(assignment("s3", "text_classification", ("a", "b"), "s3://bucket/key.txt"))
    finally:
        await labeler.aclose()
    screen = out.getvalue()
    assert "a" * 65536 in screen and "a" * 65537 not in screen
    assert "[… truncated at 64 KiB]" in screen
    assert "before?[2Jafter" in screen and "\x1b" not in screen
    assert "only http and https URLs are fetched" in screen


@pytest.mark.asyncio
async def test_a_withdrawn_task_says_so_on_screen(pipe: tuple[int, int]) -> None:
    read, _ = pipe
    out = io.StringIO()
    labeler = InteractiveLabeler(stdin_fd=read, out=out)
    answer = asyncio.create_task(labeler.label(assignment(7)))
    await eventually(lambda: "Answer 1-2" in out.getvalue())
    answer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answer
    await labeler.aclose()
    assert "(task tsk_7 was withdrawn)" in out.getvalue()
