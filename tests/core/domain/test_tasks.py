"""validate_task / validate_batch: seed 004's field table and docs/api.md's limits, as pure
functions (no I/O): what is refused names its field, what is accepted comes back normalised."""

from __future__ import annotations

from dataclasses import replace

import pytest

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tasks import (
    MAX_BATCH,
    TASK_TYPES,
    TaskDraft,
    TaskSpec,
    TaskStatus,
    validate_batch,
    validate_task,
)

DRAFT = TaskDraft(
    type="image_classification",
    data_url="https://cdn.example.com/a.jpg",
    question="Animal?",
    options=("cat", "dog"),
    has_label_spec=True,
)


def refused(draft: TaskDraft, default_callback_url: str | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate_task(draft, default_callback_url)
    return info.value


def test_valid_draft_gets_the_default_threshold() -> None:
    spec = validate_task(DRAFT)

    assert spec == TaskSpec(
        task_type="image_classification",
        data_url="https://cdn.example.com/a.jpg",
        question="Animal?",
        options=("cat", "dog"),
        consensus_threshold=3,
        callback_url=None,
        idempotency_key=None,
    )


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_each_documented_type_is_accepted(task_type: str) -> None:
    assert validate_task(replace(DRAFT, type=task_type)).task_type == task_type


def test_the_four_types_are_the_seeds() -> None:
    assert set(TASK_TYPES) == {
        "image_classification",
        "text_classification",
        "sentiment",
        "moderation",
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"type": None}, "type", "type is required"),
        ({"type": "video"}, "type", None),
        ({"type": ""}, "type", None),
        ({"data_url": None}, "data_url", "data_url is required"),
        ({"data_url": "http://ex.com/a.jpg"}, "data_url", "data_url must be an https URL"),
        ({"data_url": "ftp://ex.com/a.jpg"}, "data_url", None),
        ({"data_url": "https://"}, "data_url", None),
        ({"data_url": "https:///a.jpg"}, "data_url", None),
        ({"data_url": "ex.com/a.jpg"}, "data_url", None),
        ({"data_url": "https://[::1"}, "data_url", None),
        ({"data_url": "https://ex.com/" + "a" * 2034}, "data_url", None),
        ({"has_label_spec": False, "question": None, "options": None}, "label_spec",
         "label_spec is required"),
        ({"question": None}, "label_spec.question", "label_spec.question is required"),
        ({"question": ""}, "label_spec.question", None),
        ({"question": " \n"}, "label_spec.question", None),
        ({"question": "q" * 1001}, "label_spec.question", None),
        ({"options": None}, "label_spec.options", None),
        ({"options": ()}, "label_spec.options", None),
        ({"options": ("cat",)}, "label_spec.options",
         "label_spec.options must contain at least 2 entries"),
        ({"options": tuple(f"o{i}" for i in range(51))}, "label_spec.options", None),
        ({"options": ("cat", "cat")}, "label_spec.options", "label_spec.options must be distinct"),
        ({"options": ("caf\u00e9", "cafe\u0301")}, "label_spec.options", None),  # NFC alike
        ({"options": ("cat", "cat ")}, "label_spec.options", None),  # whitespace aside
        ({"options": ("cat", "")}, "label_spec.options[1]", None),
        ({"options": ("\t", "dog")}, "label_spec.options[0]", None),
        ({"options": ("cat", "d" * 201)}, "label_spec.options[1]", None),
        ({"consensus_threshold": 1}, "consensus_threshold", None),
        ({"consensus_threshold": 11}, "consensus_threshold", None),
        ({"consensus_threshold": 0}, "consensus_threshold", None),
        ({"consensus_threshold": -2}, "consensus_threshold", None),
        ({"callback_url": "http://hooks.example.com"}, "callback_url", None),
        ({"callback_url": ""}, "callback_url", None),
        ({"idempotency_key": ""}, "idempotency_key", None),
        ({"idempotency_key": "k" * 256}, "idempotency_key", None),
    ],
)  # fmt: skip
def test_broken_rule_names_its_field(changes: dict, field: str, message: str | None) -> None:
    err = refused(replace(DRAFT, **changes))

    assert err.field == field
    assert err.message.startswith(f"{field} ")
    if message is not None:
        assert err.message == message


def test_first_broken_rule_in_table_order_wins() -> None:
    err = refused(TaskDraft(type="video", data_url="http://x", consensus_threshold=99))

    assert err.field == "type"


@pytest.mark.parametrize("threshold", [2, 3, 10])
def test_thresholds_in_range_are_kept(threshold: int) -> None:
    assert validate_task(replace(DRAFT, consensus_threshold=threshold)).consensus_threshold == threshold


def test_limits_are_inclusive() -> None:
    url = "https://ex.com/" + "a" * (2048 - len("https://ex.com/"))
    options = tuple(f"{i:02d}" + "o" * 198 for i in range(50))

    spec = validate_task(
        replace(DRAFT, data_url=url, question="q" * 1000, options=options, idempotency_key="k" * 255)
    )

    assert (len(spec.data_url), len(spec.question), len(spec.options)) == (2048, 1000, 50)
    assert {len(o) for o in spec.options} == {200}


def test_default_callback_url_applies_unless_the_task_has_its_own() -> None:
    inherited = validate_task(DRAFT, "https://hooks.example.com/batch")
    own = validate_task(replace(DRAFT, callback_url="https://hooks.example.com/own"), "https://x.io/b")

    assert inherited.callback_url == "https://hooks.example.com/batch"
    assert own.callback_url == "https://hooks.example.com/own"


def test_bad_default_callback_url_is_named_as_callback_url() -> None:
    assert refused(DRAFT, "http://hooks.example.com").field == "callback_url"


# fingerprint: what "the same body" means for idempotency ---------------------------------


def test_fingerprint_is_equal_for_an_explicit_default_threshold() -> None:
    implicit = validate_task(DRAFT)
    explicit = validate_task(replace(DRAFT, consensus_threshold=3))

    assert implicit.fingerprint() == explicit.fingerprint()


def test_fingerprint_ignores_the_idempotency_key() -> None:
    a = validate_task(replace(DRAFT, idempotency_key="a"))
    b = validate_task(replace(DRAFT, idempotency_key="b"))

    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "sentiment"},
        {"data_url": "https://cdn.example.com/b.jpg"},
        {"question": "Pet?"},
        {"options": ("cat", "dog")},
        {"consensus_threshold": 4},
        {"callback_url": "https://hooks.example.com"},
        # The same characters with a field boundary moved: still another request.
        {"question": "Animal?\x1fcat", "options": ("dog", "bird")},
    ],
    ids=["type", "data_url", "question", "options", "threshold", "callback_url",
         "option-moved-into-question"],
)  # fmt: skip
def test_fingerprint_differs_for_any_other_body(changes: dict) -> None:
    three = replace(DRAFT, options=("cat", "dog", "bird"))
    base = validate_task(three)
    other = validate_task(replace(three, **changes))

    assert other != base
    assert other.fingerprint() != base.fingerprint()


# batches --------------------------------------------------------------------------------


def test_batch_returns_specs_in_order() -> None:
    drafts = [replace(DRAFT, data_url=f"https://ex.com/{i}") for i in range(5)]

    specs = validate_batch(drafts, None)

    assert [s.data_url for s in specs] == [f"https://ex.com/{i}" for i in range(5)]


def test_batch_accepts_the_maximum_and_refuses_one_more() -> None:
    assert len(validate_batch([DRAFT] * MAX_BATCH, None)) == MAX_BATCH == 1000

    with pytest.raises(ValidationError) as info:
        validate_batch([DRAFT] * (MAX_BATCH + 1), None)
    assert info.value.field == "tasks"


def test_empty_batch_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        validate_batch([], None)

    assert info.value.field == "tasks"


@pytest.mark.parametrize("k", [0, 4, 999])
def test_bad_task_is_named_by_its_index(k: int) -> None:
    drafts = [DRAFT] * 1000
    drafts[k] = replace(DRAFT, options=("cat", ""))

    with pytest.raises(ValidationError) as info:
        validate_batch(drafts, None)

    assert info.value.field == f"tasks[{k}].label_spec.options[1]"
    assert info.value.message == f"tasks[{k}].label_spec.options[1] must be a non-empty string"


def test_first_bad_task_is_the_one_named() -> None:
    drafts = [DRAFT, replace(DRAFT, type=None), replace(DRAFT, data_url=None)]

    with pytest.raises(ValidationError) as info:
        validate_batch(drafts, None)

    assert info.value.message == "tasks[1].type is required"


def test_batch_callback_url_is_checked_and_applied() -> None:
    with pytest.raises(ValidationError) as info:
        validate_batch([DRAFT], "ftp://hooks.example.com")
    assert info.value.field == "callback_url"

    [spec] = validate_batch([DRAFT], "https://hooks.example.com")
    assert spec.callback_url == "https://hooks.example.com"


def test_key_repeated_inside_a_batch_is_refused_at_its_second_use() -> None:
    drafts = [
        replace(DRAFT, idempotency_key="a"),
        replace(DRAFT, idempotency_key="b"),
        replace(DRAFT, idempotency_key="a"),
    ]

    with pytest.raises(ValidationError) as info:
        validate_batch(drafts, None)

    assert info.value.field == "tasks[2].idempotency_key"


def test_tasks_without_keys_may_repeat_in_a_batch() -> None:
    assert len(validate_batch([DRAFT, DRAFT], None)) == 2


def test_error_relocated_inside_a_container_keeps_its_problem() -> None:
    err = ValidationError("data_url", "must be an https URL").at("tasks[3].")

    assert (err.field, err.message) == ("tasks[3].data_url", "tasks[3].data_url must be an https URL")


# status ---------------------------------------------------------------------------------


def test_every_status_but_pending_and_in_progress_is_decided() -> None:
    assert {s for s in TaskStatus if s.decided} == {
        TaskStatus.VERIFIED,
        TaskStatus.SETTLED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.EXPIRED,
    }
    assert {s for s in TaskStatus if s.ended} == {TaskStatus.CANCELLED, TaskStatus.EXPIRED}
    assert [s.value for s in TaskStatus] == [
        "pending",
        "in_progress",
        "verified",
        "settled",
        "failed",
        "cancelled",
        "expired",
    ]
