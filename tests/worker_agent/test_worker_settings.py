"""Flags, their environment twins, and errors that name both."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker_agent.errors import ConfigError
from worker_agent.main import parser
from worker_agent.settings import WorkerSettings

ENV = {"ASG_WORKER_TOKEN": "wk_env", "ASG_WORKER_LABELER": "simulated"}


def settings(argv: list[str], env: dict[str, str]) -> WorkerSettings:
    flags = vars(parser().parse_args(argv))
    return WorkerSettings.from_env(env).with_overrides(**flags).validate()


def test_every_flag_has_an_environment_twin() -> None:
    env = {
        **ENV,
        "ASG_WORKER_SERVER": "core.example:443",
        "ASG_WORKER_MAX_IN_FLIGHT": "8",
        "ASG_WORKER_TASK_TYPES": "sentiment, moderation",
        "ASG_WORKER_ACCURACY": "0.8",
        "ASG_WORKER_SEED": "5",
        "ASG_WORKER_DELAY": "0.5",
        "ASG_WORKER_HEARTBEAT": "2",
        "ASG_WORKER_PROGRESS": "0",
        "ASG_WORKER_DRAIN_TIMEOUT": "3",
        "ASG_WORKER_TLS": "true",
        "ASG_LOG_LEVEL": "debug",
    }
    s = settings([], env)
    assert (s.server, s.token, s.labeler, s.max_in_flight) == ("core.example:443", "wk_env", "simulated", 8)
    assert s.task_types == ("sentiment", "moderation")
    assert (s.accuracy, s.seed, s.delay, s.heartbeat, s.progress, s.drain_timeout) == (0.8, 5, 0.5, 2, 0, 3)
    assert s.tls is True and s.log_level == "DEBUG"


def test_flags_override_the_environment(tmp_path: Path) -> None:
    s = settings(["--token", "wk_flag", "--max-in-flight", "3", "--always", "dog"], ENV)
    assert (s.token, s.max_in_flight, s.always) == ("wk_flag", 3, "dog")
    assert s.server == "127.0.0.1:50051" and s.heartbeat == 5.0 and s.progress == 10.0


def test_interactive_holds_one_task_whatever_is_asked() -> None:
    assert settings(["--labeler", "interactive", "--max-in-flight", "9"], ENV).effective_max_in_flight == 1
    assert settings([], ENV).effective_max_in_flight == 16


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ASG_WORKER_TOKEN": "wk_x"}, "--labeler / ASG_WORKER_LABELER is required"),
        ({"ASG_WORKER_LABELER": "simulated"}, "--token / ASG_WORKER_TOKEN is required"),
        ({**ENV, "ASG_WORKER_TOKEN": "sk_sandbox_abc"}, "worker token"),
        ({**ENV, "ASG_WORKER_SERVER": "nohost"}, "HOST:PORT"),
        ({**ENV, "ASG_WORKER_ACCURACY": "1.5"}, "--accuracy / ASG_WORKER_ACCURACY"),
        ({**ENV, "ASG_WORKER_ACCURACY": "high"}, "ASG_WORKER_ACCURACY must be a number"),
        ({**ENV, "ASG_WORKER_MAX_IN_FLIGHT": "0"}, "1..256"),
        ({**ENV, "ASG_WORKER_TASK_TYPES": "audio"}, "unknown audio"),
        ({**ENV, "ASG_WORKER_HEARTBEAT": "0"}, "--heartbeat / ASG_WORKER_HEARTBEAT must be positive"),
        ({**ENV, "ASG_WORKER_LABELER": "interactive", "ASG_WORKER_ALWAYS": "x"}, "only apply to"),
        ({**ENV, "ASG_LOG_LEVEL": "LOUD"}, "--log-level / ASG_LOG_LEVEL"),
    ],
)
def test_unusable_values_name_the_flag_and_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings([], env)


def test_loopback_servers_are_recognised() -> None:
    assert WorkerSettings(server="127.0.0.1:1").server_is_loopback
    assert WorkerSettings(server="localhost:1").server_is_loopback
    assert WorkerSettings(server="[::1]:1").server_is_loopback
    assert not WorkerSettings(server="core.example.com:443").server_is_loopback
