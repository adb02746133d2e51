"""A core paused past every lease (SIGSTOP, then SIGCONT) strands no task.

While the core is stopped, the workers' leases run out and their streams go quiet; when it
resumes it sees all of that at once. Every task must still end decided: the lapsed slots go
back to the pool, and the workers that held them may take them again.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_stack, register

LEASE = 1.0


def status_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        return dict(db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())


@pytest.mark.slow
@pytest.mark.parametrize("pause", [3 * LEASE, 12 * LEASE])  # past the lease; past the idle timeout too
def test_tasks_held_during_a_pause_are_decided_after_it(tmp_path: Path, pause: float) -> None:
    with make_stack(
        tmp_path,
        ASG_LEASE_SECONDS=str(LEASE),
        ASG_WORKER_IDLE_TIMEOUT="5",
        ASG_BLOCK_INTERVAL="0.3",
    ) as stack:
        stack.start_workers(3, "--delay", "0.3", "--max-in-flight", "4")
        key = register(stack.base_url)["api_key"]
        tasks = [
            {
                "type": "image_classification",
                "data_url": f"https://cdn.example.com/pause/{i}.jpg",
                "label_spec": {"question": "Animal?", "options": ["cat", "dog"]},
                "consensus_threshold": 3,
            }
            for i in range(24)
        ]
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        ) as http:
            reply = http.post("/v1/tasks/batch", json={"tasks": tasks})
            assert reply.status_code == 202, reply.text
            db_path = stack.data_dir / "asg.sqlite3"
            deadline = time.monotonic() + 20
            while status_counts(db_path).get("in_progress", 0) == 0:
                assert time.monotonic() < deadline, "no task was ever claimed"
                time.sleep(0.05)

            core = stack.procs["core"]
            core.send_signal(signal.SIGSTOP)
            time.sleep(pause)
            core.send_signal(signal.SIGCONT)

            deadline = time.monotonic() + 45
            while (counts := status_counts(db_path)).keys() - {"settled", "verified"}:
                assert time.monotonic() < deadline, f"tasks stranded after the pause: {counts}"
                time.sleep(0.2)
