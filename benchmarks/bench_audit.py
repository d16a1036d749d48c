"""Audit trail appends: the cost of writing one hash-chained event does not grow with the trail (the chain head is
one document, never a search for the newest event), and stays a small multiple of a bare insert: three round trips
(head read, insert, head update) plus the ORM save and the SHA-256, so the target is 6x one bare `insert_one`.

Not measured here: the audit page's keyset pages. They are `sequence < cursor` + sort by the unique `sequence`
index + limit, constant on mongod; the embedded stand-in does not sort by index (a sorted find scans the whole
collection), so a size ratio measured on it says nothing about the page.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from benchmarks.table import BenchRow

SMALL, LARGE = 1_000, 20_000
APPENDS = 60
ACTIONS = ("auth.login", "case.update", "run.record", "report.download", "import.csv")


def _fill(collection, start: int, stop: int) -> None:
    """Events written directly (fast); their hashes are not a valid chain, which appending does not check."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    batch = []
    for sequence in range(start, stop):
        batch.append(
            {
                "sequence": sequence,
                "actor_id": f"{sequence % 500:024x}",
                "actor_email": f"user{sequence % 500}@example.com",
                "action": ACTIONS[sequence % len(ACTIONS)],
                "resource": f"case:{sequence % 9000:024x}",
                "outcome": "success",
                "ip": "10.0.0.1",
                "user_agent": "bench",
                "request_id": f"{sequence:032x}",
                "metadata": {},
                "created_at": base + timedelta(seconds=sequence),
                "previous_hash": "0" * 64,
                "hash": f"{sequence:064x}",
            }
        )
        if len(batch) == 5000:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)


def _append_median() -> float:
    from audit.services import audit_record

    samples = []
    for index in range(APPENDS):
        started = time.perf_counter()
        audit_record(action="bench.append", resource=f"case:{index}", metadata={"n": index})
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run() -> list[BenchRow]:
    from django.db import connection

    from audit.services import CHAIN_HEAD_COLLECTION

    events = connection.database["auditEvents"]
    heads = connection.database[CHAIN_HEAD_COLLECTION]
    raw = connection.database["benchAuditRaw"]
    events.delete_many({})
    heads.delete_many({})
    try:
        _fill(events, 1, SMALL + 1)
        small = _append_median()
        _fill(events, SMALL + APPENDS + 1, LARGE + 1)
        heads.delete_many({})  # rebuilt once from the events, then kept current by every append
        large = _append_median()
        samples = []
        for index in range(APPENDS):
            started = time.perf_counter()
            raw.insert_one({"sequence": index, "action": "bench", "metadata": {"n": index}})
            samples.append(time.perf_counter() - started)
        bare = statistics.median(samples)
        return [
            BenchRow(
                "audit",
                f"append median at {LARGE // 1000}k / at {SMALL // 1000}k events",
                large / small,
                "<= 1.5",
                large / small <= 1.5,
                f"{small * 1000:.2f} ms -> {large * 1000:.2f} ms",
            ),
            BenchRow(
                "audit",
                "append to the hash chain / bare insert_one",
                large / bare,
                "<= 6.0",
                large / bare <= 6.0,
                f"{bare * 1000:.2f} ms -> {large * 1000:.2f} ms (head read, insert, head update)",
            ),
        ]
    finally:
        raw.drop()
        events.delete_many({})
        heads.delete_many({})
