"""Bulk upserts of suites, release candidates, cases and runs by natural key (used by the CSV importer).

Natural keys: a suite is (product, name); a release candidate is its name (a missing one is created in the product
of its rows, with the next sequence number, in order of first appearance); a case is (suite, key); a run is (case,
RC, executed_at, to the millisecond). Documents that exist and already hold the same values are left untouched, so
writing the same batch twice has one effect.

Writes go straight to the collections with pymongo, one round trip per collection and batch, in the caller's
transaction when `BulkState.session` is set (the importer's fenced batch). Before any document is inserted or
changed, the caller's `journal` is told (the ids about to be inserted, or the documents as they were): that record,
committed with the writes, is what lets the importer restore the database exactly if the file fails later.
Lookups by many ids go in slices of `_IDS_PER_QUERY`: a long `$in` list costs the stand-in time quadratic in its
length.

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

from releases import rules

SUITES = "testSuites"
RELEASE_CANDIDATES = "releaseCandidates"
CASES = "testCases"
RUNS = "testRuns"
_CASE_FIELDS = ("title", "category", "task", "owner", "priority", "tags")
_RUN_FIELDS = ("status", "mantis_ids", "notes", "executed_by_id", "suite_id", "owner", "category")
# Fields of automated runs (JUnit import); rows without them (CSV) write the defaults, as `store.NewRun` does.
_AUTOMATED_RUN_FIELDS = {"failure_signature": "", "failure_message": "", "duration_ms": None, "flaky": False}
_IDS_PER_QUERY = 100


class Journal(Protocol):
    def before_insert(self, collection: str, ids: list[ObjectId], *, release_candidate_ids=()) -> None: ...

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
    # False (JUnit import): a case that exists is used as it is, never updated from the row.
    update_existing_cases: bool = True
    session: Any = None  # pymongo ClientSession of the current batch's transaction (None: no transaction)
    user_ids: dict[str, ObjectId] = field(default_factory=dict)  # lower-case email -> user id
    suite_ids: dict[tuple[str, str], ObjectId] = field(default_factory=dict)
    release_candidate_ids: dict[str, ObjectId] = field(default_factory=dict)
    # Existing documents, loaded once per suite / RC: natural key -> (id, compared values).
    loaded_suites: set[ObjectId] = field(default_factory=set)
    loaded_release_candidates: set[ObjectId] = field(default_factory=set)
    cases: dict[tuple, tuple] = field(default_factory=dict)
    runs: dict[tuple, tuple] = field(default_factory=dict)
    newest: dict[tuple, tuple] = field(default_factory=dict)  # (case, RC) -> (executed_at, run id) of the newest run
    flagged: dict[tuple, set] = field(default_factory=dict)  # (case, RC) -> ids of runs stored with is_latest
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


def _in_transaction(state: BulkState) -> bool:
    return state.session is not None and state.session.in_transaction


def _find_by_ids(collection, ids: list[ObjectId], *, session=None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), _IDS_PER_QUERY):
        found.extend(collection.find({"_id": {"$in": ids[start : start + _IDS_PER_QUERY]}}, session=session))
    return found


def _suites_resolve(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> None:
    collection = connection.database[SUITES]
    wanted = {(row.product, row.suite) for row in rows} - state.suite_ids.keys()
    if not wanted:
        return
    products = sorted({product for product, _ in wanted})
    names = sorted({name for _, name in wanted})
    query = {"product": {"$in": products}, "name": {"$in": names}}
    for document in collection.find(query, {"product": 1, "name": 1}, session=state.session):
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
                },
                session=state.session,
            )
            state.counts["suites_created"] += 1
        except DuplicateKeyError:  # created concurrently by someone else: use theirs
            if _in_transaction(state):
                raise  # the transaction is aborted: the caller retries the batch, which then finds it
            suite_id = collection.find_one({"product": product, "name": name}, {"_id": 1})["_id"]
        state.suite_ids[(product, name)] = suite_id


def _release_candidates_resolve(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> None:
    collection = connection.database[RELEASE_CANDIDATES]
    wanted: dict[str, str] = {}  # RC name -> the product of its first row (the importer checked they agree)
    for row in rows:
        if row.rc and row.rc not in state.release_candidate_ids:
            wanted.setdefault(row.rc, row.product)
    if not wanted:
        return
    for document in collection.find({"name": {"$in": list(wanted)}}, {"name": 1}, session=state.session):
        state.release_candidate_ids[document["name"]] = document["_id"]
    for name in wanted:
        if name in state.release_candidate_ids:
            continue
        for _attempt in range(5):
            last = collection.find_one({}, {"sequence": 1}, sort=[("sequence", -1)], session=state.session)
            rc_id = ObjectId()
            journal.before_insert(RELEASE_CANDIDATES, [rc_id])
            try:
                collection.insert_one(
                    {
                        "_id": rc_id,
                        "name": name,
                        "product": wanted[name],
                        "sequence": rules.next_rc_sequence(last["sequence"] if last else None),
                        "state": "testing",
                        "created_at": _now(),
                    },
                    session=state.session,
                )
                state.counts["release_candidates_created"] += 1
                break
            except DuplicateKeyError:  # the same name was created concurrently
                if _in_transaction(state):
                    raise
                existing = collection.find_one({"name": name}, {"_id": 1})
                if existing is not None:
                    rc_id = existing["_id"]
                    break
        state.release_candidate_ids[name] = rc_id


def _case_values(document: dict[str, Any]) -> tuple:
    return tuple(tuple(document.get(name) or ()) if name == "tags" else document.get(name, "") for name in _CASE_FIELDS)


def _suite_cases_load(suite_id: ObjectId, *, state: BulkState) -> None:
    """Index the suite's existing cases once per file (one scan on the suite index; per-key `$in` lookups are
    far slower on some servers)."""
    state.loaded_suites.add(suite_id)
    projection = {name: 1 for name in ("key", *_CASE_FIELDS)}
    cursor = connection.database[CASES].find({"suite_id": suite_id}, projection, session=state.session)
    for document in cursor.batch_size(5000):
        state.cases[(suite_id, document["key"])] = (document["_id"], _case_values(document))


def _cases_write(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> dict[tuple, tuple]:
    """Insert or update the batch's cases; returns {(suite_id, key): (case id, values)} as now stored."""
    collection = connection.database[CASES]
    wanted: dict[tuple[ObjectId, str], BulkRow] = {}
    for row in rows:
        suite_id = state.suite_ids[(row.product, row.suite)]
        if suite_id not in state.loaded_suites:
            _suite_cases_load(suite_id, state=state)
        wanted.setdefault((suite_id, row.key), row)
    inserts: list[dict[str, Any]] = []
    changed: dict[ObjectId, dict[str, Any]] = {}
    now = _now()
    for natural, row in wanted.items():
        values = (row.title, row.category, row.task, row.owner, row.priority, tuple(row.tags))
        known = state.cases.get(natural)
        if known is None:
            case_id = ObjectId()
            inserts.append(
                {
                    "_id": case_id,
                    "suite_id": natural[0],
                    "key": natural[1],
                    **dict(zip(_CASE_FIELDS, values, strict=True)),
                    "tags": list(row.tags),
                    "is_deleted": False,
                    "deleted_at": None,
                    "created_by_id": state.actor_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            state.cases[natural] = (case_id, values)
        elif known[1] != values and state.update_existing_cases:
            changed[known[0]] = {
                **dict(zip(_CASE_FIELDS, values, strict=True)),
                "tags": list(row.tags),
                "updated_at": now,
            }
            state.cases[natural] = (known[0], values)
        else:
            state.counts["cases_unchanged"] += 1
    if inserts:
        journal.before_insert(CASES, [document["_id"] for document in inserts])
        collection.insert_many(inserts, ordered=False, session=state.session)
        state.counts["cases_created"] += len(inserts)
    if changed:
        journal.before_update(CASES, _find_by_ids(collection, list(changed), session=state.session))
        collection.bulk_write(
            [UpdateOne({"_id": case_id}, {"$set": new}) for case_id, new in changed.items()],
            ordered=False,
            session=state.session,
        )
        state.counts["cases_updated"] += len(changed)
    return {natural: state.cases[natural] for natural in wanted}


def _rc_runs_load(rc_id: ObjectId, *, state: BulkState) -> None:
    """Index the RC's existing runs once per file: natural key -> (id, compared values, is_latest)."""
    state.loaded_release_candidates.add(rc_id)
    projection = {name: 1 for name in ("case_id", "executed_at", "is_latest", *_RUN_FIELDS)}
    cursor = connection.database[RUNS].find({"release_candidate_id": rc_id}, projection, session=state.session)
    for document in cursor.batch_size(5000):
        executed_at = _naive_utc(document["executed_at"])
        pair = (document["case_id"], rc_id)
        values = tuple(
            tuple(document.get(name) or ()) if name == "mantis_ids" else document.get(name) for name in _RUN_FIELDS
        ) + tuple(document.get(name, default) for name, default in _AUTOMATED_RUN_FIELDS.items())
        state.runs[(*pair, executed_at)] = (document["_id"], values)
        newest = state.newest.get(pair)
        if newest is None or (executed_at, document["_id"]) > newest:
            state.newest[pair] = (executed_at, document["_id"])
        if document.get("is_latest"):
            state.flagged.setdefault(pair, set()).add(document["_id"])


def _runs_write(rows: Sequence[BulkRow], cases: dict[tuple, tuple], *, state: BulkState, journal: Journal) -> None:
    collection = connection.database[RUNS]
    batch: dict[tuple, tuple] = {}
    keys: dict[tuple, str] = {}
    for row in rows:
        if not row.rc or row.executed_at is None:
            continue
        suite_id = state.suite_ids[(row.product, row.suite)]
        rc_id = state.release_candidate_ids[row.rc]
        if rc_id not in state.loaded_release_candidates:
            _rc_runs_load(rc_id, state=state)
        case_id = cases[(suite_id, row.key)][0]
        values = (
            row.status,
            tuple(row.mantis_ids),
            row.notes,
            state.user_ids.get(row.executed_by) if row.executed_by else None,
            suite_id,
            row.owner,
            row.category,
            *(getattr(row, name, default) for name, default in _AUTOMATED_RUN_FIELDS.items()),
        )
        natural = (case_id, rc_id, _naive_utc(row.executed_at))
        batch[natural] = values
        keys[natural] = row.key
    if not batch:
        return
    now = _now()
    inserts: list[dict[str, Any]] = []
    updates: dict[ObjectId, dict[str, Any]] = {}
    touched: set[tuple] = set()
    for natural, values in batch.items():
        pair = natural[:2]
        touched.add(pair)
        known = state.runs.get(natural)
        fields = dict(zip((*_RUN_FIELDS, *_AUTOMATED_RUN_FIELDS), values, strict=True))
        fields["mantis_ids"] = list(values[1])
        if known is None:
            run_id = ObjectId()
            inserts.append(
                {
                    "_id": run_id,
                    "case_id": natural[0],
                    "release_candidate_id": natural[1],
                    **fields,
                    "case_key": keys[natural],
                    "executed_at": natural[2],
                    "is_latest": False,
                    "created_at": now,
                }
            )
            state.runs[natural] = (run_id, values)
            newest = state.newest.get(pair)
            if newest is None or (natural[2], run_id) > newest:
                state.newest[pair] = (natural[2], run_id)
        elif known[1] != values:
            updates[known[0]] = fields
            state.runs[natural] = (known[0], values)
        else:
            state.counts["runs_unchanged"] += 1
    state.counts["runs_updated"] += len(updates)
    inserted = {document["_id"]: document for document in inserts}
    for pair in touched:
        newest_id = state.newest[pair][1]
        flagged = state.flagged.setdefault(pair, set())
        for run_id in flagged - {newest_id}:
            updates.setdefault(run_id, {})["is_latest"] = False
        if newest_id in inserted:
            inserted[newest_id]["is_latest"] = True
        elif newest_id not in flagged:
            updates.setdefault(newest_id, {})["is_latest"] = True
        flagged.clear()
        flagged.add(newest_id)
    if inserts:
        journal.before_insert(RUNS, list(inserted), release_candidate_ids={pair[1] for pair in touched})
        collection.insert_many(inserts, ordered=False, session=state.session)
        state.counts["runs_created"] += len(inserts)
    if updates:
        journal.before_update(RUNS, _find_by_ids(collection, list(updates), session=state.session))
        collection.bulk_write(
            [UpdateOne({"_id": run_id}, {"$set": new}) for run_id, new in updates.items()],
            ordered=False,
            session=state.session,
        )


def rows_write(rows: Sequence[BulkRow], *, state: BulkState, journal: Journal) -> None:
    """Upsert one batch of rows (cases, and the runs of rows that name an RC) by natural key."""
    _suites_resolve(rows, state=state, journal=journal)
    _release_candidates_resolve(rows, state=state, journal=journal)
    cases = _cases_write(rows, state=state, journal=journal)
    _runs_write(rows, cases, state=state, journal=journal)


def documents_restore(
    collection: str, *, inserted_ids: Iterable[ObjectId] = (), documents: Iterable[dict] = (), session=None
) -> None:
    """Undo: delete documents that were inserted, put back documents as they were before an update. Idempotent."""
    target = connection.database[collection]
    ids = list(inserted_ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        target.delete_many({"_id": {"$in": ids[start : start + _IDS_PER_QUERY]}}, session=session)
    replacements = [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in documents]
    if replacements:
        target.bulk_write(replacements, ordered=False, session=session)
