"""A completed job's export: one JSON line per task, in manifest order."""

from __future__ import annotations

import orjson

from asg_grpc.store.job_records import ExportRow


def export_line(row: ExportRow) -> bytes:
    return orjson.dumps(
        {
            "task_id": row.task_id,
            "data_url": row.data_url,
            # Echoed exactly as stored (it was re-encoded from the manifest's JSON once).
            "metadata": None if row.metadata is None else orjson.Fragment(row.metadata),
            "status": row.status,
            "consensus_label": row.consensus_label,
            "confidence": row.confidence,
            "worker_count": row.worker_count,
            "agreement_count": row.agreement_count,
            "bsv_txid": row.bsv_txid,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )
