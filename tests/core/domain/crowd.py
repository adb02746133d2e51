"""A simulated crowd with known truth for the consensus tests: good workers (90 % right),
spammers (uniformly random), contrarians (90 % wrong), 10 % of tasks gold."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from asg_grpc.domain.consensus_engine import ConsensusEngine, ConsensusSpec, Decision, NeedOne, Verdict

OPTIONS = ("a", "b")


@dataclass
class Crowd:
    rng: random.Random
    good: int = 8
    spammers: int = 0
    contrarians: int = 0
    gold_share: float = 0.1
    stream: list[tuple[str, str, str, ConsensusSpec | None]] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)  # by task, from `run`
    final: dict[str, Verdict] = field(default_factory=dict)  # by task: the verdict that ended it

    @property
    def workers(self) -> list[str]:
        return (
            [f"good{n}" for n in range(self.good)]
            + [f"spam{n}" for n in range(self.spammers)]
            + [f"contra{n}" for n in range(self.contrarians)]
        )

    def answer(self, worker: str, truth: str) -> str:
        wrong = next(o for o in OPTIONS if o != truth)
        if worker.startswith("spam"):
            return self.rng.choice(OPTIONS)
        right = self.rng.random() < 0.9
        if worker.startswith("contra"):
            right = not right
        return truth if right else wrong

    def run(self, engine: ConsensusEngine, tasks: int, refresh_every: int, start: int = 0) -> list[Verdict]:
        """Serve each task to eligible workers in random order until the engine stops. Returns
        every verdict the engine gave, in order, and records the calls for `replay`."""
        verdicts: list[Verdict] = []
        for n in range(start, start + tasks):
            truth = self.rng.choice(OPTIONS)
            gold = truth if self.rng.random() < self.gold_share else None
            spec = ConsensusSpec(OPTIONS, min_labels=2, gold=gold)
            task = f"t{n}"
            self.truth[task] = truth
            engine.open(task, spec)
            self.stream.append((task, "", "open", spec))
            for worker in self.rng.sample(self.workers, len(self.workers)):
                if not engine.eligible(worker, spec):
                    continue
                label = self.answer(worker, truth)
                self.stream.append((task, worker, label, None))
                verdicts.append(engine.add_label(task, worker, label))
                if not isinstance(verdicts[-1], NeedOne):
                    break
            else:
                self.stream.append((task, "", "close", None))
                verdicts.append(engine.close(task))
            self.final[task] = verdicts[-1]
            if (n + 1) % refresh_every == 0:
                engine.refresh()
                self.stream.append(("", "", "refresh", None))
        return verdicts

    def replay(self, engine: ConsensusEngine) -> list[Verdict]:
        """The recorded calls, fed to another engine."""
        verdicts: list[Verdict] = []
        for task, worker, label, spec in self.stream:
            if spec is not None:
                engine.open(task, spec)
            elif label == "refresh":
                engine.refresh()
            elif label == "close":
                verdicts.append(engine.close(task))
            else:
                verdicts.append(engine.add_label(task, worker, label))
        return verdicts

    def accuracy(self) -> float:
        """Share of the non-gold tasks `run` decided right (a task given up counts as wrong)."""
        plain = [t for t, *_, spec in self.stream if spec is not None and spec.gold is None]
        right = sum(isinstance(v := self.final[t], Decision) and v.label == self.truth[t] for t in plain)
        return right / len(plain)
