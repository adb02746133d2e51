"""The request models' `to_proto()`: what the gateway sends the core is what the client sent."""

from __future__ import annotations

from asg_grpc.v1 import tasks_pb2
from rest_gateway import models

SPEC = {"question": "Tone?", "options": ["positive", "negative"]}
FULL_TASK = {
    "type": "image_classification",
    "data_url": "https://example.com/i.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
    "consensus_threshold": 4,
    "callback_url": "https://hooks.example.com/h",
    "idempotency_key": "k-1",
    "expires_in_seconds": 3600,
    "consensus_method": "adaptive",
    "target_confidence": 0.9,
    "max_labels": 12,
    "gold_label": "cat",
    "labor": "challenge",
}


def _as_sent(message: tasks_pb2.TaskInput) -> dict[str, object]:
    sent: dict[str, object] = {}
    for field, value in message.ListFields():
        if field.name == "label_spec":
            value = {"question": value.question, "options": list(value.options)}
        sent[field.name] = value
    return sent


def test_task_input_carries_every_field_and_no_other() -> None:
    # A model field the proto lacks would fail here (to_proto dumps the model by field name).
    assert set(models.TaskInput.model_fields) == set(FULL_TASK)
    assert _as_sent(models.TaskInput.model_validate(FULL_TASK).to_proto()) == FULL_TASK


def test_absent_fields_stay_unset() -> None:
    task = {"type": "sentiment", "data_url": "https://example.com/t.txt", "label_spec": SPEC}
    message = models.TaskInput.model_validate(task).to_proto()
    assert _as_sent(message) == task
    assert not message.HasField("consensus_threshold") and not message.HasField("gold_label")


def test_batch_carries_its_tasks_and_callback() -> None:
    body = {
        "tasks": [FULL_TASK, {"type": "sentiment", "data_url": "https://e.com/x", "label_spec": SPEC}],
        "callback_url": "https://h.example.com/b",
    }
    message = models.BatchInput.model_validate(body).to_proto()
    assert [_as_sent(t) for t in message.tasks] == body["tasks"]
    assert message.callback_url == "https://h.example.com/b"
    assert not models.BatchInput.model_validate({"tasks": []}).to_proto().HasField("callback_url")
