"""Bulk upserts of suites, release candidates, cases and runs by natural key (used by the CSV importer).

Natural keys: a suite is (product, name); a release candidate is its name (a missing one is created with the next
sequence number, in order of first appearance); a case is (suite, key); a run is (case, RC, executed_at, to the
millisecond). Documents that exist and already hold the same values are left untouched, so writing the same
batch twice has one effect.

Writes go straight to the collections with pymongo, one round trip per collection and batch. Before any document
is inserted or changed, the caller's `journal` is told (the ids about to be inserted, or the documents as they
were): that write-ahead record is what lets the importer restore the database exactly if the file fails later.

`is_latest` stays correct per (case, RC): among the runs of a pair in the database plus the batch, the newest by
(executed_at, id) is the latest one; flags that change are journaled like any other update. Summary documents are
not touched here: call `releases.services.summaries_rebuild` for the RCs in `BulkState.release_candidate_ids`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bson import ObjectId
from django.db import connection
from django.utils import timezone
from pymongo import ReplaceOne, UpdateOne
from pymongo.errors import DuplicateKeyError

SUITES = "testSuites"
RELEASE_CANDIDATES = "releaseCandidates"
CASES = "testCases"
RUNS = "testRuns"
_CASE_FIELDS = ("title", "category", "task", "owner", "priority", "tags")


class Journal(Protocol):
    def before_insert(self, collection: str, ids: list[ObjectId]) -> None: ...

    def before_update(self, collection: str, documents: list[dict[str, Any]]) -> None: ...


class BulkRow(Protocol):
    """What a row must offer (imports.csvformat.Record does)."""

    product: str
    suite: str
    key: str
    title: str
    category: str
    task: str
    owner: str
    priority: int
    tags: list[str]
    rc: str
    status: str
    mantis_ids: list[int]
    notes: str
    executed_at: datetime | None
    executed_by: str


@dataclass
class BulkState:
    """Carried across the batches of one file: resolved ids and the counts so far."""

    actor_id: ObjectId | None = None
    user_ids: dict[str, ObjectId] = field(default_factory=dict)  # lower-case email -> user id
    suite_ids: dict[tuple[str, str], ObjectId] = field(default_factory=dict)
    release_candidate_ids: dict[str, ObjectId] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "suites_created": 0,
            "release_candidates_created": 0,
            "cases_created": 0,
            "cases_updated": 0,
            "cases_unchanged": 0,
            "runs_created": 0,
            "runs_updated": 0,
            "runs_unchanged": 0,
        }
    )


def _naive_utc(value: datetime) -> datetime:
    """pymongo returns naive UTC datetimes (or aware ones, depending on the client): compare them as naive UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _now() -> datetime:
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _suites_resolve(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> None:
    collection = connection.database[SUITES]
    wanted = {(row.product, row.suite) for row in rows} - state.suite_ids.keys()
    if not wanted:
        return
    products = sorted({product for product, _ in wanted})
    names = sorted({name for _, name in wanted})
    for document in collection.find({"product": {"$in": products}, "name": {"$in": names}}, {"product": 1, "name": 1}):
        state.suite_ids[(document["product"], document["name"])] = document["_id"]
    for product, name in sorted(wanted - state.suite_ids.keys()):
        suite_id = ObjectId()
        journal.before_insert(SUITES, [suite_id])
        now = _now()
        try:
            collection.insert_one(
                {
                    "_id": suite_id,
                    "name": name,
                    "product": product,
                    "description": "",
                    "created_by_id": state.actor_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            state.counts["suites_created"] += 1
        except DuplicateKeyError:  # created concurrently by someone else: use theirs
            suite_id = collection.find_one({"product": product, "name": name}, {"_id": 1})["_id"]
        state.suite_ids[(product, name)] = suite_id


def _release_candidates_resolve(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> None:
    collection = connection.database[RELEASE_CANDIDATES]
    wanted: dict[str, None] = {}
    for row in rows:
        if row.rc and row.rc not in state.release_candidate_ids:
            wanted.setdefault(row.rc, None)
    if not wanted:
        return
    for document in collection.find({"name": {"$in": list(wanted)}}, {"name": 1}):
        state.release_candidate_ids[document["name"]] = document["_id"]
    for name in wanted:
        if name in state.release_candidate_ids:
            continue
        for _attempt in range(5):
            last = collection.find_one({}, {"sequence": 1}, sort=[("sequence", -1)])
            rc_id = ObjectId()
            journal.before_insert(RELEASE_CANDIDATES, [rc_id])
            try:
                collection.insert_one(
                    {
                        "_id": rc_id,
                        "name": name,
                        "sequence": (last["sequence"] + 1) if last else 1,
                        "state": "testing",
                        "created_at": _now(),
                    }
                )
                state.counts["release_candidates_created"] += 1
                break
            except DuplicateKeyError:  # the same name was created concurrently
                existing = collection.find_one({"name": name}, {"_id": 1})
                if existing is not None:
                    rc_id = existing["_id"]
                    break
        state.release_candidate_ids[name] = rc_id


def _cases_write(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> dict[tuple, dict[str, Any]]:
    """Insert or update the batch's cases; returns {(suite_id, key): case document as now stored}."""
    collection = connection.database[CASES]
    wanted: dict[tuple[ObjectId, str], BulkRow] = {}
    for row in rows:
        wanted.setdefault((state.suite_ids[(row.product, row.suite)], row.key), row)
    suite_ids = list({suite_id for suite_id, _ in wanted})
    keys = list({key for _, key in wanted})
    existing: dict[tuple, dict[str, Any]] = {}
    for document in collection.find({"suite_id": {"$in": suite_ids}, "key": {"$in": keys}}):
        natural = (document["suite_id"], document["key"])
        if natural in wanted:
            existing[natural] = document
    inserts: list[dict[str, Any]] = []
    changed: list[tuple[dict[str, Any], dict[str, Any]]] = []
    now = _now()
    for natural, row in wanted.items():
        values = {
            "title": row.title,
            "category": row.category,
            "task": row.task,
            "owner": row.owner,
            "priority": row.priority,
            "tags": list(row.tags),
        }
        document = existing.get(natural)
        if document is None:
            document = {
                "_id": ObjectId(),
                "suite_id": natural[0],
                "key": natural[1],
                **values,
                "is_deleted": False,
                "deleted_at": None,
                "created_by_id": state.actor_id,
                "created_at": now,
                "updated_at": now,
            }
            inserts.append(document)
            existing[natural] = document
        elif any(document.get(name) != values[name] for name in _CASE_FIELDS):
            changed.append((document, {**values, "updated_at": now}))
        else:
            state.counts["cases_unchanged"] += 1
    if inserts:
        journal.before_insert(CASES, [document["_id"] for document in inserts])
        collection.insert_many(inserts, ordered=False)
        state.counts["cases_created"] += len(inserts)
    if changed:
        journal.before_update(CASES, [dict(document) for document, _ in changed])
        collection.bulk_write([UpdateOne({"_id": doc["_id"]}, {"$set": new}) for doc, new in changed], ordered=False)
        for document, new in changed:
            document.update(new)
        state.counts["cases_updated"] += len(changed)
    return existing


def _runs_write(
    rows: Sequence[BulkRow], cases: dict[tuple, dict[str, Any]], *, state: BulkState, journal: Journal
) -> None:
    collection = connection.database[RUNS]
    batch: dict[tuple, tuple[BulkRow, dict[str, Any]]] = {}
    for row in rows:
        if not row.rc or row.executed_at is None:
            continue
        case = cases[(state.suite_ids[(row.product, row.suite)], row.key)]
        natural = (case["_id"], state.release_candidate_ids[row.rc], _naive_utc(row.executed_at))
        batch[natural] = (row, case)
    if not batch:
        return
    case_ids = list({natural[0] for natural in batch})
    rc_ids = list({natural[1] for natural in batch})
    pairs = {(natural[0], natural[1]) for natural in batch}
    by_pair: dict[tuple, list[dict[str, Any]]] = {}
    existing: dict[tuple, dict[str, Any]] = {}
    for document in collection.find({"case_id": {"$in": case_ids}, "release_candidate_id": {"$in": rc_ids}}):
        pair = (document["case_id"], document["release_candidate_id"])
        if pair not in pairs:
            continue
        by_pair.setdefault(pair, []).append(document)
        existing[(*pair, _naive_utc(document["executed_at"]))] = document
    now = _now()
    inserts: list[dict[str, Any]] = []
    updates: dict[ObjectId, tuple[dict[str, Any], dict[str, Any]]] = {}
    for natural, (row, case) in batch.items():
        values = {
            "status": row.status,
            "mantis_ids": list(row.mantis_ids),
            "notes": row.notes,
            "executed_by_id": state.user_ids.get(row.executed_by) if row.executed_by else None,
            "suite_id": case["suite_id"],
            "owner": case["owner"],
            "category": case["category"],
        }
        document = existing.get(natural)
        if document is None:
            document = {
                "_id": ObjectId(),
                "case_id": natural[0],
                "release_candidate_id": natural[1],
                **values,
                "executed_at": natural[2],
                "is_latest": False,
                "created_at": now,
            }
            inserts.append(document)
            by_pair.setdefault(natural[:2], []).append(document)
        elif any(document.get(name) != value for name, value in values.items()):
            updates[document["_id"]] = (document, values)
        else:
            state.counts["runs_unchanged"] += 1
    state.counts["runs_updated"] += len(updates)
    inserted = {document["_id"] for document in inserts}
    for runs in by_pair.values():
        newest = max(runs, key=lambda run: (_naive_utc(run["executed_at"]), run["_id"]))
        for run in runs:
            flag = run is newest
            if run.get("is_latest") == flag:
                continue
            if run["_id"] in inserted:
                run["is_latest"] = flag
            else:
                updates.setdefault(run["_id"], (run, {}))[1]["is_latest"] = flag
    if inserts:
        journal.before_insert(RUNS, [document["_id"] for document in inserts])
        collection.insert_many(inserts, ordered=False)
        state.counts["runs_created"] += len(inserts)
    if updates:
        journal.before_update(RUNS, [dict(document) for document, _ in updates.values()])
        collection.bulk_write(
            [UpdateOne({"_id": run_id}, {"$set": new}) for run_id, (_, new) in updates.items()], ordered=False
        )


def rows_write(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> None:
    """Upsert one batch of rows (cases, and the runs of rows that name an RC) by natural key."""
    _suites_resolve(rows, state=state, journal=journal)
    _release_candidates_resolve(rows, state=state, journal=journal)
    cases = _cases_write(rows, state=state, journal=journal)
    _runs_write(rows, cases, state=state, journal=journal)


def documents_restore(
    collection: str, *, inserted_ids: Iterable[ObjectId] = (), documents: Iterable[dict] = ()
) -> None:
    """Undo: delete documents that were inserted, put back documents as they were before an update."""
    target = connection.database[collection]
    ids = list(inserted_ids)
    if ids:
        target.delete_many({"_id": {"$in": ids}})
    replacements = [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in documents]
    if replacements:
        target.bulk_write(replacements, ordered=False)
