"""Single-record reads and writes, each retried on connection failures (Retry), with the
record-existence and generation policies every area's atomic steps are built from."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from functools import partial
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike_helpers.batch.records import BatchRecords, Write
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain.errors import Unavailable
from asg_grpc.store.aerospike.connection import TRANSIENT, Retry

CREATE_ONLY: Mapping[str, int] = {"exists": aerospike.POLICY_EXISTS_CREATE}
UPDATE_ONLY: Mapping[str, int] = {"exists": aerospike.POLICY_EXISTS_UPDATE}
GEN_EQ: Mapping[str, int] = {"gen": aerospike.POLICY_GEN_EQ}
BATCH_CHUNK = 200  # records per batch write
# A batch write's policy: the record must be new; it never expires (as `put` with no ttl).
_CREATE = {"exists": aerospike.POLICY_EXISTS_CREATE, "ttl": aerospike.TTL_NEVER_EXPIRE}


class Records:
    def __init__(self, client: Any, namespace: str, retry: Retry | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.retry = retry or Retry()

    def key(self, set_name: str, key: str) -> tuple[str, str, str]:
        return (self.namespace, set_name, key)

    def get(self, set_name: str, key: str) -> tuple[dict[str, Any], int] | None:
        """The record's bins and generation, None when there is no record."""

        def read() -> tuple[dict[str, Any], int] | None:
            try:
                _, meta, bins = self.client.get(self.key(set_name, key))
            except aex.RecordNotFound:
                return None
            return bins, meta["gen"]

        return self.retry(read)

    def put(
        self,
        set_name: str,
        key: str,
        bins: dict[str, Any],
        policy: Mapping[str, int],
        *,
        gen: int = 0,
        ttl: int | None = None,
    ) -> None:
        """`gen`: the generation a GEN_EQ policy expects. `ttl` None: the record never expires."""
        write = {**policy, "ttl": aerospike.TTL_NEVER_EXPIRE if ttl is None else ttl}
        self.retry(lambda: self.client.put(self.key(set_name, key), bins, {"gen": gen}, write))

    def create(self, set_name: str, key: str, bins: dict[str, Any], *, ttl: int | None = None) -> bool:
        """CREATE_ONLY: False when the record exists (also when an earlier try of ours,
        reported as timed out, did write it: callers compare what they find)."""
        try:
            self.put(set_name, key, bins, CREATE_ONLY, ttl=ttl)
        except aex.RecordExistsError:
            return False
        return True

    def create_many(self, set_name: str, records: list[tuple[str, dict[str, Any]]]) -> list[bool]:
        """CREATE_ONLY for each (key, bins), in batch writes of BATCH_CHUNK: per record, False
        when it existed (as `create`; a record another error refused raises that error)."""
        created: list[bool] = []
        # In chunks: one batch of a thousand records can outlast the client's 1 s timeout on a
        # loaded machine, and a timed-out chunk is retried whole (CREATE_ONLY: harmless).
        for start in range(0, len(records), BATCH_CHUNK):
            writes = [
                Write(self.key(set_name, key), [ops.write(n, v) for n, v in bins.items()], policy=_CREATE)
                for key, bins in records[start : start + BATCH_CHUNK]
            ]
            answer = self.retry(partial(self.client.batch_write, BatchRecords(writes)))
            for row in answer.batch_records:
                if row.result not in (0, aex.RecordExistsError.code):
                    raise aex.AerospikeError(f"batch create refused: result {row.result}")
                created.append(row.result == 0)
        return created

    def get_many(self, keys: list[Any]) -> list[tuple[Any, Any, Any]]:
        """(key, meta, bins) per key in order, meta None for a missing record (one batch read)."""
        answer = self.retry(lambda: self.client.batch_read(keys))
        out: list[tuple[Any, Any, Any]] = []
        for row in answer.batch_records:
            if row.result == 0 and row.record is not None:
                out.append((row.key, row.record[1], row.record[2]))
            else:
                out.append((row.key, None, None))
        return out

    def remove(self, set_name: str, key: str) -> None:
        with contextlib.suppress(aex.RecordNotFound):
            self.retry(lambda: self.client.remove(self.key(set_name, key)))


_TRANSIENT_CODES = frozenset(getattr(kind, "code", None) for kind in TRANSIENT) - {None}


def refused(result: int) -> Exception:
    """What to raise for a batch record the server answered `result` to that its caller did
    not expect: Unavailable (retry shortly) when it is one of reaching the cluster (a busy
    key, a timeout), else the server's refusal."""
    if result in _TRANSIENT_CODES:
        return Unavailable("the store is busy; retry shortly")
    return aex.AerospikeError(f"batch write refused: result {result}")


def ensure_index(records: Records, bin_name: str, index_type: int, name: str) -> None:
    """A secondary index on `bin_name` for the whole namespace, whatever the set prefix (CE
    allows 256 per cluster, and a query names its set, so each deployment still reads only its
    own records). Asked about first: creating one that exists still takes the client seconds."""
    client, ns = records.client, records.namespace
    answer = records.retry(lambda: client.info_random_node(f"sindex-exists:namespace={ns};indexname={name}"))
    if str(answer).strip().endswith("true"):
        return
    with contextlib.suppress(aex.IndexFoundError):
        records.retry(lambda: client.index_single_value_create(ns, None, bin_name, index_type, name))


def query(records: Records, set_name: str, predicate: Any) -> list[dict[str, Any]]:
    """The bins of every record of the set the predicate (on an indexed bin) selects."""
    q = records.client.query(records.namespace, set_name)
    q.where(predicate)
    return [bins for _, _, bins in records.retry(q.results)]
