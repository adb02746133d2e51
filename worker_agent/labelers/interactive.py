"""A person at a terminal: sees the question, the numbered options and the data, and answers.

Text tasks show the fetched text (bounded, see `fetch`); image tasks show the URL to open.
Only one question is on screen at a time (the agent asks the core for one task at a time;
a lock keeps prompts from interleaving even if more arrive). A question nobody answers within
the idle time is handed back (a skip), so a person who walked away does not hold a task for
the whole lease while other workers could label it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

import httpx

from asg_grpc.v1 import labeling_pb2
from worker_agent.errors import LabelerExhausted
from worker_agent.labelers.base import Answer, Decision, Skip
from worker_agent.labelers.fetch import MAX_BYTES, fetch_text, new_client
from worker_agent.labelers.terminal import LineReader, printable

TEXT_TYPES = frozenset({"text_classification", "sentiment", "moderation"})
IDLE = "no answer in time"  # the skip reason of a question handed back unanswered
RULE = "─" * 60


class InteractiveLabeler:
    name = "interactive"
    can_finish_quickly = False

    def __init__(
        self,
        stdin_fd: int | None = None,
        out: TextIO | None = None,
        client: httpx.AsyncClient | None = None,
        answer_timeout: float = 0.0,
    ) -> None:
        self._idle = answer_timeout or None  # 0: wait for the person as long as the lease lasts
        self._reader = LineReader(sys.stdin.fileno() if stdin_fd is None else stdin_fd)
        self._out = out or sys.stdout
        self._client = client
        self._owns_client = client is None
        self._lock = asyncio.Lock()
        self._started = False
        self._prompt: str | None = None  # on screen, waiting for an answer

    async def label(self, assignment: labeling_pb2.Assignment) -> Decision:
        async with self._lock:
            if not self._started:
                self._reader.start()
                self._started = True
            try:
                await self._show(assignment)
                decision = await self._ask(list(assignment.label_spec.options))
            except asyncio.CancelledError:
                self._say(f"\n(task {assignment.task_id} was withdrawn)")
                raise
            said = f"answered {decision.option!r}" if isinstance(decision, Answer) else "skipped"
            self._say(f"{said}. Waiting for the next task (Ctrl-C to stop)…")
            return decision

    def done(self, task_id: str, outcome: str) -> None:
        return None  # nothing is queued here

    def paid(self, line: str) -> None:
        """Show the payment; if a question waits for an answer, ask it again below."""
        text = printable(line)
        if self._prompt is None:
            self._say(text)
        else:
            self._say(f"\n{text}\n{self._prompt}", end="")

    def greet(self) -> None:
        """Say something before the first task, so the person knows the agent is working."""
        self._say("asg-worker: tasks will appear here; answer with a number or s. Ctrl-C to stop.")

    async def aclose(self) -> None:
        self._reader.close()
        if self._client is not None and self._owns_client:
            await self._client.aclose()

    async def _show(self, a: labeling_pb2.Assignment) -> None:
        lines = [RULE, f"Task {a.task_id} · {a.task_type}"]
        left = _seconds_left(a)
        if self._idle is not None:
            left = int(self._idle) if left is None else min(left, int(self._idle))
        if left is not None:
            lines[-1] += f" · answer within {left} s"
        lines.append(f"Question: {a.label_spec.question}")
        lines += [f"  {n}) {option}" for n, option in enumerate(a.label_spec.options, start=1)]
        if a.task_type in TEXT_TYPES:
            self._say(printable("\n".join(lines)))
            self._say(f"Text (from {printable(a.data_url)}):")
            self._say(await self._text(a.data_url))
            return
        label = "Image" if a.task_type == "image_classification" else "Data"
        lines.append(f"{label}: {a.data_url}")
        self._say(printable("\n".join(lines)))

    async def _text(self, url: str) -> str:
        if self._client is None:
            self._client = new_client()
        got = await fetch_text(self._client, url)
        if got.error:
            return f"  [{printable(got.error)}; you can still answer from the URL, or skip]"
        body = "\n".join("  " + line for line in printable(got.text).splitlines()) or "  [empty]"
        if got.truncated:
            body += f"\n  [… truncated at {MAX_BYTES // 1024} KiB]"
        return body

    async def _ask(self, options: list[str]) -> Decision:
        n = len(options)
        if n == 0:
            self._say("(this task offers no options: skipped)")
            return Skip("no options")
        self._reader.discard_pending()
        choices = "1" if n == 1 else f"1-{n}"
        while True:
            self._prompt = f"Answer {choices}, or s to skip: "
            self._say(self._prompt, end="")
            try:
                line = await asyncio.wait_for(self._reader.readline(), self._idle)
            except TimeoutError:
                self._say(f"\n(no answer within {self._idle:g} s: the task goes back to other workers)")
                return Skip(IDLE)
            finally:
                self._prompt = None
            if line is None:
                self._say("\n(input closed: stopping)")
                raise LabelerExhausted("stdin closed")
            reply = line.strip().lower()
            if reply == "s":
                return Skip("skipped by labeler")
            if reply.isdigit() and 1 <= int(reply) <= n:
                return Answer(options[int(reply) - 1])
            self._say(f"Please type a number from 1 to {n}, or s to skip.")

    def _say(self, text: str, end: str = "\n") -> None:
        self._out.write(text + end)
        self._out.flush()


def _seconds_left(a: labeling_pb2.Assignment) -> int | None:
    if not a.HasField("lease_deadline") or a.lease_deadline.seconds <= 0:
        return None
    return max(0, int(a.lease_deadline.ToSeconds() - time.time()))
