"""Secrets the core generates once into its data dir (operator token, sealing key)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], str]) -> str:
    """The file's content (stripped), written first from `generate()` if it does not exist.

    Written to a temporary file (mode 0600 from mkstemp) and linked into place, so the file is
    never seen half-written or readable by others, and two processes starting together end up
    with the same secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(generate() + "\n")
                out.flush()
                os.fsync(out.fileno())  # a key that funds a wallet must not vanish in a power cut
            with contextlib.suppress(FileExistsError):  # another process was first: use its secret
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    value = path.read_text().strip()
    if not value:
        raise OSError(f"{path} is empty: delete it to have a new one generated")
    return value
