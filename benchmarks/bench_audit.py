"""Audit trail appends and sealing.

Appending (`audit_record`) is one insert of an unsealed event into `auditInbox`: its cost does not grow with the
trail and stays a small multiple of a bare `insert_one` (the secret scrubbing and the insert; target 2x). Writers
share no document, so 8 concurrent writers are not slower in total than one (the stand-in serves one operation at a
time, so the target is "no collapse", not a speed-up). The sealer moves events into the hash chain in batches of
one transaction each (head update, `insert_many`, inbox delete, SHA-256 per event); measured against the same
inserts and deletes done bare (a collection with the events' indexes), without a transaction or hashing
(target 2x).

Not measured here: the audit page's keyset pages. They are `sequence < cursor` + sort by the unique `sequence`
index + limit, constant on mongod; the embedded stand-in does not sort by index (a sorted find scans the whole
collection), so a size ratio measured on it says nothing about the page.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

from pymongo import DeleteOne

from benchmarks.table import BenchRow

SMALL, LARGE = 1_000, 20_000
APPENDS = 60
WRITERS, PER_WRITER = 8, 40
SEAL_EVENTS = 3_000
ACTIONS = ("auth.login", "case.update", "run.record", "report.download", "import.csv")


def _fill(collection, start: int, stop: int) -> None:
    """Events written directly (fast); their hashes are not a valid chain, which sealing does not check."""
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


def _append_and_bare_medians(raw) -> tuple[float, float]:
    """Median of `audit_record` and of a bare `insert_one` of a similar document, measured alternately so that load
    from other processes on the machine weighs on both alike."""
    from audit.services import audit_record

    appends, bare = [], []
    for index in range(APPENDS):
        started = time.perf_counter()
        audit_record(action="bench.append", resource=f"case:{index}", metadata={"n": index})
        appends.append(time.perf_counter() - started)
        started = time.perf_counter()
        raw.insert_one({"action": "bench", "resource": f"case:{index}", "metadata": {"n": index}})
        bare.append(time.perf_counter() - started)
    return statistics.median(appends), statistics.median(bare)


def _appends_per_second(writers: int) -> float:
    """Events recorded per second by `writers` threads together, each recording PER_WRITER events."""
    from django.db import connections

    from audit.services import audit_record

    barrier = threading.Barrier(writers + 1)

    def write(index: int) -> None:
        try:
            barrier.wait()
            for n in range(PER_WRITER):
                audit_record(action="bench.concurrent", resource=f"case:{index}-{n}", metadata={"n": n})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return writers * PER_WRITER / (time.perf_counter() - started)


def run() -> list[BenchRow]:
    from django.db import connection

    from audit.sealing import audit_seal_pending
    from audit.services import CHAIN_HEAD_COLLECTION, INBOX_COLLECTION, audit_record

    events = connection.database["auditEvents"]
    heads = connection.database[CHAIN_HEAD_COLLECTION]
    inbox = connection.database[INBOX_COLLECTION]
    raw = connection.database["benchAuditRaw"]

    def clean() -> None:
        for collection in (events, heads, inbox):
            collection.delete_many({})

    clean()
    try:
        _fill(events, 1, SMALL + 1)
        small, _ = _append_and_bare_medians(raw)
        _fill(events, SMALL + APPENDS + 1, LARGE + 1)
        large, bare = _append_and_bare_medians(raw)
        audit_seal_pending()  # the appends above, on top of the filled trail (rebuilds the head once)

        # Best of three alternating runs each: the machine is shared, a slow run says little about contention.
        one = many = 0.0
        for _ in range(3):
            one = max(one, _appends_per_second(1))
            many = max(many, _appends_per_second(WRITERS))
        audit_seal_pending()

        for index in range(SEAL_EVENTS):
            audit_record(action="bench.seal", resource=f"case:{index}", metadata={"n": index})
        documents = list(inbox.find())
        started = time.perf_counter()
        sealed = audit_seal_pending()
        sealing = time.perf_counter() - started
        # The same MongoDB work done bare (no transaction, no hashing): insert the batches into a collection with
        # the events' indexes, delete them by `_id`.
        raw.drop()
        for index in events.list_indexes():
            if index["name"] != "_id_":
                options = {key: index[key] for key in ("unique", "partialFilterExpression") if key in index}
                raw.create_index(list(index["key"].items()), name=index["name"], **options)
        started = time.perf_counter()
        for offset in range(0, len(documents), 500):
            batch = documents[offset : offset + 500]
            raw.insert_many(batch)
            raw.bulk_write([DeleteOne({"_id": document["_id"]}) for document in batch], ordered=False)
        bare_many = time.perf_counter() - started
        assert sealed == SEAL_EVENTS, sealed
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
                "append (inbox insert) / bare insert_one",
                large / bare,
                "<= 2.0",
                large / bare <= 2.0,
                f"{bare * 1000:.2f} ms -> {large * 1000:.2f} ms",
            ),
            BenchRow(
                "audit",
                f"appends/s, {WRITERS} writers / 1 writer",
                many / one,
                ">= 0.8",
                many / one >= 0.8,
                f"{one:.0f}/s -> {many:.0f}/s (no shared document; the stand-in serves one operation at a time)",
            ),
            BenchRow(
                "audit",
                "sealing / the same inserts and deletes bare",
                sealing / bare_many,
                "<= 2.0",
                sealing / bare_many <= 2.0,
                f"{SEAL_EVENTS / sealing:.0f} events/s sealed vs {SEAL_EVENTS / bare_many:.0f}/s bare",
            ),
        ]
    finally:
        raw.drop()
        clean()
