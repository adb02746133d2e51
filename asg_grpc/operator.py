"""The operator token: what guards operator RPCs such as RegisterWorker.

From ASG_OPERATOR_TOKEN when set; otherwise generated on first start into the data dir with
mode 0600, so `asg worker register` on the same machine finds it without configuration.
"""

from __future__ import annotations

import os
import secrets

from asg_grpc.settings import Settings

PREFIX = "op_"


def operator_token(settings: Settings, *, create: bool = True) -> str | None:
    if settings.operator_token:
        return settings.operator_token
    path = settings.operator_token_path
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = PREFIX + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token
