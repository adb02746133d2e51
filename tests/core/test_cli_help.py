"""Every option and argument of every installed command has help text: `--help` is the manual
a person reads first (issue 16). New console scripts must be added to PARSERS, or this fails."""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import asg_challenge.settings
import asg_grpc.cli
import asg_grpc.server
import rest_gateway.main
import worker_agent.main

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "asg": asg_grpc.cli.parser,
    "asg-server": asg_grpc.server.parser,
    "asg-gateway": rest_gateway.main.parser,
    "asg-worker": worker_agent.main.parser,
    "asg-challenge": lambda: asg_challenge.settings.parser({}),
}
NEEDS_NO_HELP = (argparse._HelpAction, argparse._VersionAction)


def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    """(command path, action) of every option, argument and subcommand, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", argparse.Action([], name, help=helped.get(name))
                yield from walk(sub, f"{path} {name}")
        elif not isinstance(action, NEEDS_NO_HELP):
            yield path, action


def test_every_console_script_is_checked() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert set(scripts) == set(PARSERS)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help(name: str) -> None:
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, action in walk(PARSERS[name](), name)
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS
    ]
    assert missing == [], f"options without help text: {missing}"


def test_the_walk_finds_a_missing_help() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--helped", help="yes")
    commands = parser.add_subparsers()
    commands.add_parser("sub", help="a subcommand").add_argument("--bare")
    found = [(path, action.dest) for path, action in walk(parser, "x") if not action.help]
    assert found == [("x sub", "bare")]
