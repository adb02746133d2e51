"""A valid task body, as the seeds' quickstart submits it: the gateway tests change one field."""

from __future__ import annotations

TASK = {
    "type": "image_classification",
    "data_url": "https://example.com/i.jpg",
    "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
}
