"""The simulated labeler: accuracy statistics, --always, derived truth, truth files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker_agent.errors import ConfigError
from worker_agent.labelers import Answer, SimulatedLabeler, Skip, truth

OPTIONS = ["cat", "dog", "bird"]


def urls(n: int) -> list[str]:
    return [f"https://cdn.example.com/{i}.jpg" for i in range(n)]


def test_accuracy_is_the_share_of_answers_equal_to_the_truth() -> None:
    key = {url: OPTIONS[i % 3] for i, url in enumerate(urls(2000))}
    labeler = SimulatedLabeler(truth=key, accuracy=0.7, seed=7)
    decisions = [labeler.decide(url, OPTIONS) for url in key]
    right = sum(d == Answer(key[url]) for url, d in zip(key, decisions, strict=True))
    assert right / 2000 == pytest.approx(0.7, abs=0.04)
    assert all(isinstance(d, Answer) and d.option in OPTIONS for d in decisions)


def test_wrong_answers_are_other_options_spread_over_all_of_them() -> None:
    labeler = SimulatedLabeler(truth={}, accuracy=0.0, seed=1)
    wrong = [labeler.decide(url, OPTIONS) for url in urls(600)]
    assert all(d != Answer(truth.derived(url, OPTIONS)) for url, d in zip(urls(600), wrong, strict=True))
    assert {d.option for d in wrong if isinstance(d, Answer)} == set(OPTIONS)


def test_the_same_seed_gives_the_same_answers() -> None:
    def run(seed: int) -> list[object]:
        labeler = SimulatedLabeler(accuracy=0.5, seed=seed)
        return [labeler.decide(url, OPTIONS) for url in urls(200)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_without_a_truth_file_agents_agree_on_a_derived_truth() -> None:
    a, b = SimulatedLabeler(seed=1), SimulatedLabeler(seed=2)
    assert [a.decide(u, OPTIONS) for u in urls(100)] == [b.decide(u, OPTIONS) for u in urls(100)]
    assert len({a.decide(u, OPTIONS) for u in urls(100)}) == 3, "the derived truth uses every option"


def test_a_truth_the_task_does_not_offer_falls_back_to_the_derived_one() -> None:
    url = urls(1)[0]
    labeler = SimulatedLabeler(truth={url: "zebra"})
    assert labeler.decide(url, OPTIONS) == Answer(truth.derived(url, OPTIONS))


def test_always_answers_the_option_or_skips_when_it_is_not_offered() -> None:
    labeler = SimulatedLabeler(always="dog", accuracy=0.0)
    assert labeler.decide("u", OPTIONS) == Answer("dog")
    assert labeler.decide("u", ["yes", "no"]) == Skip("option not offered")


def test_a_task_without_options_is_skipped() -> None:
    assert SimulatedLabeler().decide("u", []) == Skip("no options")


def test_truth_file_csv_with_header(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("data_url,label\nhttps://a/1.jpg,cat\nhttps://a/2.jpg, dog\n")
    assert truth.load(path) == {"https://a/1.jpg": "cat", "https://a/2.jpg": "dog"}


def test_truth_file_json_object(tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    path.write_text(json.dumps({"https://a/1.jpg": "cat"}))
    assert truth.load(path) == {"https://a/1.jpg": "cat"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.csv", "url,answer\nx,y\n", "header line 'data_url,label'"),
        ("t.csv", "data_url,label\nhttps://a/1.jpg,\n", "line 2 needs both"),
        ("t.json", "[1, 2]", "JSON object"),
        ("t.json", "{nope", "invalid JSON"),
    ],
)
def test_a_bad_truth_file_is_a_config_error_that_says_why(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        truth.load(path)


def test_a_missing_truth_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        truth.load(tmp_path / "absent.csv")
