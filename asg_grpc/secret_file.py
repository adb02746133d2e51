"""The data dir and the secrets the core generates once into it (operator token, sealing key,
wallet): nobody but the core's user may read any of it (issue 15, defect 7)."""

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
        make_private_dir(path.parent)
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


def make_private_dir(path: Path) -> None:
    """Create the directory mode 0700 when it does not exist (parents as the umask says). One
    that exists is left as its owner set it: the data dir may be a mount point or /tmp."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def make_private_file(path: Path) -> None:
    """Create the file empty, mode 0600, when it does not exist; make an existing one 0600 (a
    database created before this rule was world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
