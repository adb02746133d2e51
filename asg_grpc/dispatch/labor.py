"""Who may be offered a task by its `labor` (docs/challenge.md, "Opting in one batch or task").

A task with labor "challenge" goes only to workers registered as challenge gateways; a
gateway's stream that said `opted_in_only` gets nothing else. Every other pairing is today's
rule (any worker of the task's type). Kept apart from the dispatcher's loop so the rule is one
function the eligibility check (`Dispatcher._offerable`) calls.
"""

from __future__ import annotations

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.workers import Worker

CHALLENGE = "challenge"


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
