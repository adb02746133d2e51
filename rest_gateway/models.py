"""The JSON request bodies, as the OpenAPI describes them (examples from shared/seeds/).

decode.py reads the bodies (its messages name fields the way docs/api.md promises); these models
say the same shapes for /v1/openapi.json, and tests/gateway/test_openapi.py checks that what one
accepts the other does. Rules of the field table (lengths, ranges) are the core's and are listed
in docs/api.md, Limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid", strict=True)


class LabelSpec(BaseModel):
    model_config = _STRICT
    question: str = Field(description="Asked of every worker; at most 1000 characters")
    options: list[str] = Field(description="2 to 50 distinct answers, each at most 200 characters")


class TaskInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "type": "image_classification",
                    "data_url": "https://example.com/image.jpg",
                    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
                    "consensus_threshold": 3,
                }
            ]
        },
    )
    type: str = Field(description="image_classification, text_classification, sentiment or moderation")
    data_url: str = Field(description="https URL of the item to label")
    label_spec: LabelSpec
    consensus_threshold: int | None = Field(None, description="Matching labels needed, 2 to 10 (default 3)")
    callback_url: str | None = Field(None, description="URL of one of the customer's webhooks")
    idempotency_key: str | None = Field(None, description="1 to 255 characters; a repeat replays the task")
    expires_in_seconds: int | None = Field(None, description="1 to 2592000; absent: no deadline")


class BatchInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "tasks": [
                        {
                            "type": "image_classification",
                            "data_url": "https://ex.com/a.jpg",
                            "label_spec": {"question": "Q?", "options": ["a", "b"]},
                        }
                    ]
                }
            ]
        },
    )
    tasks: list[TaskInput] = Field(description="1 to 1000 tasks, validated whole before any is stored")
    callback_url: str | None = Field(None, description="For the tasks that name none")


class CustomerInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"name": "Demo", "email": "demo@example.com"}]},
    )
    name: str = Field(description="At most 200 characters")
    email: str = Field(description="At most 254 characters; one customer per address")


class WebhookInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"callback_url": "https://hooks.example.com/asg", "secret": "whsec_at_least_8"}]
        },
    )
    callback_url: str = Field(description="https URL receiving the signed events")
    secret: str = Field(description="8 to 256 characters; signs every delivery, never returned")
    events: list[str] | None = Field(None, description="Event types (default: all)")


class S3Credentials(BaseModel):
    model_config = _STRICT
    access_key_id: str
    secret_access_key: str
    region: str
    endpoint_url: str | None = None


class JobInput(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "manifest_url": "https://example.com/manifest.jsonl",
                    "type": "image_classification",
                    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
                }
            ]
        },
    )
    manifest_url: str = Field(description="https:// or s3:// URL of a JSONL manifest (docs/jobs.md)")
    label_spec: LabelSpec
    type: str | None = None
    consensus_threshold: int | None = None
    callback_url: str | None = None
    s3_credentials: S3Credentials | None = None
