"""Who may be offered a task by its `labor` (docs/challenge.md, "Opting in one batch or task").

A task with labor "challenge" goes only to workers registered as challenge gateways; a
gateway's stream that said `opted_in_only` gets nothing else. Every other pairing is today's
rule (any worker of the task's type). Kept apart from the dispatcher's loop so the rule is one
function the eligibility check (`Dispatcher._offerable`) calls, and the no-worker-left sweep
(`Dispatcher._close_stranded`) counts by the same rule (`could_label`, `hopeless`).
"""

from __future__ import annotations

import dataclasses

from asg_grpc.domain import consensus
from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.workers import Worker

CHALLENGE = "challenge"
# The failure_reason of a `labor: challenge` task that failed because too few challenge
# gateways could label it (docs/labeling.md, "When no worker is left").
NO_CHALLENGE_GATEWAY = "no_challenge_gateway"


def allows(task_labor: str, challenge_gateway: bool, opted_in_only: bool) -> bool:
    """Whether a stream of a worker (a challenge gateway or not, taking opted-in work only or
    not) may be offered a task of this labor."""
    if task_labor == CHALLENGE:
        return challenge_gateway
    return not opted_in_only


def check_hello(worker: Worker, opted_in_only: bool) -> None:
    """Only a challenge gateway may ask for opted-in work only: any other worker would never
    be offered a task."""
    if opted_in_only and not worker.challenge_gateway:
        raise ValidationError(
            "hello.opted_in_only", "is for workers registered as challenge gateways (--challenge-gateway)"
        )


def could_label(task_labor: str, worker: Worker) -> bool:
    """Whether a registered worker could ever be offered a task of this labor: the sweep's
    roster. A plain worker can never label a `challenge` task, so it must not keep one open."""
    return worker.challenge_gateway if task_labor == CHALLENGE else True


def hopeless(task: OpenTask, able: int) -> bool:
    """A `challenge` task that can never reach its `consensus_threshold`: its labels and the
    challenge gateways (`able`) that could still label it are fewer. Closed at once, held or
    seen or not: waiting would only spend the gateways' visitors on a task bound to fail (and,
    with no gateway at all, keep it open for ever). Other tasks wait as the sweep says."""
    return task.labor == CHALLENGE and len(task.labels) + able < task.threshold


def failure_reason(task: OpenTask, outcome: consensus.Outcome) -> consensus.Outcome:
    """The outcome of a task closed because nobody is left: a `challenge` task that fails says
    it was for want of challenge gateways (its `failure_reason`); others keep `no_consensus`."""
    if task.labor == CHALLENGE and isinstance(outcome, consensus.NoConsensus):
        outcome = dataclasses.replace(outcome, reason=NO_CHALLENGE_GATEWAY)
        task.outcome = outcome
    return outcome
