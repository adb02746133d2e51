"""A labeler for tests, `asg dev` and benchmarks: right with probability p, or always one option.

Never point it at a production core: it is paid like a person for answers nobody read.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

from asg_grpc.v1 import labeling_pb2
from worker_agent.labelers import truth as truth_mod
from worker_agent.labelers.base import Answer, Decision, Skip


class SimulatedLabeler:
    name = "simulated"
    can_finish_quickly = True

    def __init__(
        self,
        truth: Mapping[str, str] | None = None,
        accuracy: float = 1.0,
        always: str | None = None,
        seed: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self._truth = dict(truth or {})
        self._accuracy = accuracy
        self._always = always
        self._rng = random.Random(seed)
        self._delay = delay

    async def label(self, assignment: labeling_pb2.Assignment) -> Decision:
        if self._delay:
            await asyncio.sleep(self._delay)
        return self.decide(assignment.data_url, list(assignment.label_spec.options))

    def decide(self, data_url: str, options: list[str]) -> Decision:
        """The decision itself, synchronous so statistics can be checked without a loop."""
        if not options:
            return Skip("no options")
        if self._always is not None:
            return Answer(self._always) if self._always in options else Skip("option not offered")
        right = self.truth_for(data_url, options)
        if len(options) == 1 or self._rng.random() < self._accuracy:
            return Answer(right)
        return Answer(self._rng.choice([o for o in options if o != right]))

    def truth_for(self, data_url: str, options: list[str]) -> str:
        known = self._truth.get(data_url)
        if known is not None and known in options:
            return known
        # Unknown URL, or a truth the task does not offer (a stale file): derive one.
        return truth_mod.derived(data_url, options)

    def done(self, task_id: str, outcome: str) -> None:
        return None  # nothing is queued here

    def paid(self, line: str) -> None:
        return None  # nobody to tell: the log line is enough

    async def aclose(self) -> None:
        return None
