"""The releases store: the one module that writes runs and keeps the quality summaries.

It owns the collection names, the shape of a run document, the latest-run rule and summary maintenance. Services
(page, grid, API), the importer's bulk writes, `seed_demo` and the test builders all write runs through it.

The write path (MongoDB aborts the second of two open transactions that write the same document, so a transaction
only touches documents that belong to what is being written):

- Recording runs is ONE transaction per call (`runs_append`): for each case it bumps the case's `write_version`
  (so two writers of the same case, or a run and a concurrent delete, are serialised by the server), turns off the
  `is_latest` flag of the pair's previous latest run when the new run is newer, inserts the run, inserts ONE
  summary-delta row (the outbox) and, through the caller's callback, the audit event. Runs of different cases
  share no document, so they never abort each other; two runs of the same (case, RC) at the same moment are both
  stored (the loser of the conflict runs again and sees the winner), and the latest is the newest by
  (`executed_at`, `_id`).
- The summary documents (`qualitySummaries`) are never written by a user's transaction. One applier at a time
  (`summary_deltas_apply`, under a Redis lock; correctness does not depend on the lock) takes pending delta rows in
  batches and, in one transaction per batch, `$inc`s the summary documents and deletes exactly those rows: a
  batch is applied once or not at all, also when two appliers race or one is killed.
- Readers of the figures call `summaries_settle()` first (the selectors do), so a page shows every run recorded
  before it was asked for. A thread in each writing process (`SUMMARY_APPLY_SECONDS`) and a beat task apply what
  is left by processes that died.
- `summaries_rebuild` recomputes the documents from the raw runs per RC in a snapshot transaction that also drops
  the delta rows visible to it, so a rebuild during a storm of writes neither loses nor doubles a run.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone
from pymongo.errors import DuplicateKeyError, PyMongoError

logger = logging.getLogger(__name__)

SUITES = "testSuites"
RELEASE_CANDIDATES = "releaseCandidates"
CASES = "testCases"
RUNS = "testRuns"
SUMMARIES = "qualitySummaries"
SUMMARY_DELTAS = "summaryDeltas"
CASE_COUNTS = "caseScopeCounts"
# The status of a delta entry that moves a live case into (+1) or out of (-1) the case counts (`caseScopeCounts`):
# such entries ride in outbox rows without an RC and are applied by the same applier.
CASE_ENTRY = "case"
STATUSES = ("pass", "fail", "pending")
_COUNT_FIELDS = {"pass": "pass_count", "fail": "fail_count", "pending": "pending_count"}
APPLY_BATCH = 500
IDS_PER_QUERY = 50  # ids per `$in` query (id_slices)
_APPLY_LOCK = "releases:summary-applier"
_APPLY_LOCK_SECONDS = 30
# A transaction that lost a write conflict runs again; conflicts only arise between writers of the same case, so
# this deadline is never reached in practice. Past it the caller gets a coded 503, never a 500.
_CONFLICT_DEADLINE_SECONDS = 30.0


def id_slices(ids: list[Any]) -> Iterator[list[Any]]:
    """`ids` in slices of `IDS_PER_QUERY`, one `$in` query each: the stand-in's cost of an `$in` grows with the
    square of its list (1,000 ids: 1.3 s for the cases, 20 s for their runs at 20k cases; 50: a few ms), while a
    real server answers each slice from the index in one round trip."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


PAIR_LOOKUPS_MAX = 16  # up to this many (case, RC) pairs: one equality query per pair (latest_runs_of_pairs)


def latest_runs_of_pairs(
    database, pairs: list[tuple[ObjectId, ObjectId]], projection: dict[str, int], *, session=None
) -> Iterator[dict[str, Any]]:
    """The latest run(s) of each (case, RC) pair. A few pairs (a click, a small API call) get one equality query
    each: `{case_id, release_candidate_id, is_latest}` all equal is answered from the (case, RC, is_latest) index on
    a real server and on the stand-in alike, while the stand-in bounds an `$in` on the first key only, so it would
    read every run of those cases in every RC (a case's whole history: 100 ms at 2,000 runs of one case, against
    1.4 ms). Many pairs (imports, bulk calls) use `$in` slices of the cases and RCs: one round trip per 50 cases."""
    if len(pairs) <= PAIR_LOOKUPS_MAX:
        for case_id, rc_id in pairs:
            query = {"case_id": case_id, "release_candidate_id": rc_id, "is_latest": True}
            yield from database[RUNS].find(query, projection, session=session)
        return
    rc_ids = list({rc_id for _case_id, rc_id in pairs})
    wanted = set(pairs)
    for ids in id_slices(list(dict.fromkeys(case_id for case_id, _rc_id in pairs))):
        query = {"case_id": {"$in": ids}, "release_candidate_id": {"$in": rc_ids}, "is_latest": True}
        for document in database[RUNS].find(query, projection, session=session):
            if (document["case_id"], document["release_candidate_id"]) in wanted:
                yield document


class StoreBusy(Exception):
    """The same case was written continuously for longer than the conflict deadline."""


# --- the latest-run rule -----------------------------------------------------------------------------------------


def latest_order(executed_at: datetime, run_id: ObjectId) -> tuple[datetime, ObjectId]:
    """The latest run of a (case, RC) pair is the one with the greatest (executed_at, _id)."""
    return (naive_utc(executed_at), run_id)


def naive_utc(value: datetime) -> datetime:
    """Datetimes as stored (naive UTC, millisecond precision), so values from any client compare equal."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def to_millis(moment: datetime) -> datetime:
    """Aware datetime truncated to what MongoDB stores."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# --- transactions ------------------------------------------------------------------------------------------------


def _is_transient(error: BaseException) -> bool:
    cause = error if isinstance(error, PyMongoError) else error.__cause__
    return isinstance(cause, PyMongoError) and (
        cause.has_error_label("TransientTransactionError") or cause.has_error_label("UnknownTransactionCommitResult")
    )


def in_transaction(work: Callable[[Any], Any], *, deadline_seconds: float = _CONFLICT_DEADLINE_SECONDS) -> Any:
    """Run `work(session)` in one MongoDB transaction; run it again when the server aborted it for a write conflict
    (the standard retry of a TransientTransactionError). `work` must be safe to run again from the start. ORM calls
    inside `work` use the transaction too (the backend reads `connection.session`), and so does `audit_record`.
    Inside an open transaction, `work` simply joins it.

    The session is managed here rather than by `django_mongodb_backend.transaction.atomic`, whose commit refuses
    to run inside Django's own `atomic` block (the admin wraps every save in one)."""
    if connection.session is not None:
        return work(connection.session)
    connection.ensure_connection()
    give_up = time.monotonic() + deadline_seconds
    attempt = 0
    while True:
        session = connection.connection.start_session()
        connection.session = session
        connection.in_atomic_block_mongo = True
        try:
            session.start_transaction()
            result = work(session)
            _commit(session)
        except (PyMongoError, DatabaseError) as error:
            _abort_quietly(session)
            if not _is_transient(error):
                raise
            attempt += 1
            if time.monotonic() > give_up:
                raise StoreBusy() from error
            time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
            continue
        except BaseException:
            _abort_quietly(session)
            raise
        finally:
            connection.session = None
            connection.in_atomic_block_mongo = False
            connection.run_on_commit, hooks = [], connection.run_on_commit
            session.end_session()
        for _savepoints, hook, _robust in hooks:
            hook()
        return result


def _commit(session) -> None:
    for _attempt in range(5):
        try:
            session.commit_transaction()
            return
        except PyMongoError as error:
            if not error.has_error_label("UnknownTransactionCommitResult"):
                raise
    session.commit_transaction()


def _abort_quietly(session) -> None:
    if session.in_transaction:
        try:
            session.abort_transaction()
        except PyMongoError:
            logger.warning("aborting a transaction failed; the server ends it on its own")


# --- runs ----------------------------------------------------------------------------------------------------


@dataclass
class NewRun:
    """A run to record: the case document's fields it copies are taken inside the transaction."""

    case_id: ObjectId
    release_candidate_id: ObjectId
    status: str
    mantis_ids: list[int]
    notes: str
    executed_at: datetime  # aware, millisecond precision
    executed_by_id: ObjectId | None
    run_id: ObjectId | None = None
    is_latest: bool = False  # set by runs_append
    # Automated results (bulk runs API, JUnit import): see releases/signatures.py.
    failure_signature: str = ""
    failure_message: str = ""
    duration_ms: int | None = None
    flaky: bool = False


def run_document(run: NewRun, *, case: dict[str, Any], created_at: datetime) -> dict[str, Any]:
    """The stored shape of a run (`testRuns`): owner, category and suite are copied from the case as they are when
    the run is recorded; the key is kept equal to the case's (`runs_case_key_set`)."""
    return {
        "_id": run.run_id,
        "case_id": run.case_id,
        "release_candidate_id": run.release_candidate_id,
        "status": run.status,
        "mantis_ids": list(run.mantis_ids),
        "notes": run.notes,
        "executed_at": run.executed_at,
        "executed_by_id": run.executed_by_id,
        "suite_id": case["suite_id"],
        "owner": case.get("owner", ""),
        "category": case.get("category", ""),
        "case_key": case.get("key", ""),
        "is_latest": run.is_latest,
        "failure_signature": run.failure_signature,
        "failure_message": run.failure_message,
        "duration_ms": run.duration_ms,
        "flaky": run.flaky,
        "created_at": created_at,
    }


def _entry(run: dict[str, Any], sign: int) -> dict[str, Any]:
    return {
        "suite_id": run["suite_id"],
        "owner": run.get("owner", ""),
        "category": run.get("category", ""),
        "status": run["status"],
        "sign": sign,
    }


def _case_entry(case: dict[str, Any], sign: int) -> dict[str, Any]:
    return {
        "suite_id": case["suite_id"],
        "owner": case.get("owner", ""),
        "category": case.get("category", ""),
        "status": CASE_ENTRY,
        "sign": sign,
    }


def _delta_insert(database, entries_by_rc: dict[ObjectId | None, list[dict[str, Any]]], *, session) -> None:
    """Outbox rows, one per RC: [{suite_id, owner, category, status, sign}], applied later by the applier. Case
    count entries (status CASE_ENTRY) go under the RC id None."""
    rows = [
        {"_id": ObjectId(), "release_candidate_id": rc_id, "entries": entries, "created_at": to_millis(timezone.now())}
        for rc_id, entries in entries_by_rc.items()
        if entries
    ]
    if rows:
        database[SUMMARY_DELTAS].insert_many(rows, session=session)


def runs_append(
    runs: Sequence[NewRun],
    *,
    on_commit_audit: Callable[[list[NewRun]], None] | None = None,
    skip_deleted: bool = False,
) -> list[NewRun]:
    """Record `runs` (of one or many cases and RCs) in one transaction and return those stored, with `run_id` and
    `is_latest` set. The summary deltas and, through `on_commit_audit` (called inside the transaction with the
    stored runs), the audit event are part of the same transaction: all are stored or none.

    A run for a soft-deleted (or missing) case raises `CaseGone` with its case id, unless `skip_deleted`, when
    such runs are left out."""
    for run in runs:
        if run.run_id is None:
            run.run_id = ObjectId()  # fixed across attempts: a retried commit that already happened is detected

    def work(session) -> list[NewRun]:
        database = connection.database
        case_ids = list(dict.fromkeys(run.case_id for run in runs))
        # The bump serialises writers of one case, a run against a delete, and a run against a key edit (so the
        # key copied onto the run is the case's committed key).
        bump = {"$inc": {"write_version": 1}}
        projection = {"suite_id": 1, "owner": 1, "category": 1, "key": 1}
        # Two point lookups by `_id` rather than one `find_one_and_update`: the stand-in scans the collection for
        # every findAndModify (report_platform/standin_compat.py, workaround 4). The bump is a write, so a delete
        # committed after this transaction's snapshot makes it conflict and run again.
        cases: dict[ObjectId, dict[str, Any]] = {}
        for ids in id_slices(case_ids):
            live = {"_id": {"$in": ids}, "is_deleted": False}
            for document in database[CASES].find(live, projection, session=session):
                cases[document["_id"]] = document
        for ids in id_slices(list(cases)):
            database[CASES].update_many({"_id": {"$in": ids}}, bump, session=session)
        gone = [case_id for case_id in case_ids if case_id not in cases]
        if gone and not skip_deleted:
            raise CaseGone(gone[0])
        stored = [run for run in runs if run.case_id in cases]
        if not stored:
            return []
        current: dict[tuple, dict[str, Any]] = {}
        pairs = list(dict.fromkeys((run.case_id, run.release_candidate_id) for run in stored))
        projection = {name: 1 for name in ("case_id", "release_candidate_id", "executed_at", "status", "suite_id")}
        latest_runs = latest_runs_of_pairs(database, pairs, {**projection, "owner": 1, "category": 1}, session=session)
        for document in latest_runs:
            pair = (document["case_id"], document["release_candidate_id"])
            known = current.get(pair)
            if known is None or latest_order(document["executed_at"], document["_id"]) > latest_order(
                known["executed_at"], known["_id"]
            ):
                current[pair] = document
        now = to_millis(timezone.now())
        documents: dict[ObjectId, dict[str, Any]] = {}
        entries: dict[ObjectId, list[dict[str, Any]]] = defaultdict(list)
        unflag: list[ObjectId] = []
        for run in stored:
            pair = (run.case_id, run.release_candidate_id)
            previous = current.get(pair)
            run.is_latest = previous is None or latest_order(run.executed_at, run.run_id) > latest_order(
                previous["executed_at"], previous["_id"]
            )
            document = run_document(run, case=cases[run.case_id], created_at=now)
            documents[document["_id"]] = document
            if run.is_latest:
                if previous is not None:
                    if previous["_id"] in documents:  # an earlier run of this same call
                        documents[previous["_id"]]["is_latest"] = False
                    else:
                        unflag.append(previous["_id"])
                    entries[run.release_candidate_id].append(_entry(previous, -1))
                entries[run.release_candidate_id].append(_entry(document, 1))
                current[pair] = document
        for run in stored:
            run.is_latest = documents[run.run_id]["is_latest"]
        for ids in id_slices(unflag):
            database[RUNS].update_many({"_id": {"$in": ids}}, {"$set": {"is_latest": False}}, session=session)
        try:
            database[RUNS].insert_many(list(documents.values()), session=session)
        except DuplicateKeyError:
            raise _AlreadyStored()
        _delta_insert(database, entries, session=session)
        if on_commit_audit is not None:
            on_commit_audit(stored)
        return stored

    try:
        stored = in_transaction(work)
    except _AlreadyStored:
        # An earlier attempt's commit reached the server although its reply was lost: the runs are there.
        stored = _runs_as_stored(runs)
    applier_ensure()
    return stored


class CaseGone(Exception):
    """The case is soft-deleted or does not exist."""

    def __init__(self, case_id: ObjectId) -> None:
        super().__init__(str(case_id))
        self.case_id = case_id


class _AlreadyStored(Exception):
    pass


def _runs_as_stored(runs: Sequence[NewRun]) -> list[NewRun]:
    found = {
        document["_id"]: document
        for document in connection.database[RUNS].find({"_id": {"$in": [run.run_id for run in runs]}}, {"is_latest": 1})
    }
    stored = [run for run in runs if run.run_id in found]
    for run in stored:
        run.is_latest = bool(found[run.run_id].get("is_latest"))
    return stored


def case_counts_record(changes: Iterable[tuple[dict[str, Any], int]]) -> None:
    """Inside the transaction that creates a case or changes its suite, owner or category: one outbox row that
    moves the case counts (`caseScopeCounts`) by each (case fields {suite_id, owner, category}, +1 / -1). The
    applier applies it with the summary deltas, so the coverage figures never need a scan of the cases."""
    entries = [_case_entry(case, sign) for case, sign in changes]
    if entries:
        _delta_insert(connection.database, {None: entries}, session=connection.session)


def runs_case_key_set(*, case_id: ObjectId, key: str) -> None:
    """Inside the transaction that changes a case's key: the same key on all its runs. A run recorded concurrently
    bumps the case, so one of the two transactions conflicts and runs again after the other committed."""
    connection.database[RUNS].update_many({"case_id": case_id}, {"$set": {"case_key": key}}, session=connection.session)


def case_counts_move(*, case_id: ObjectId, to: dict[str, Any]) -> None:
    """Inside the transaction that edits a live case's suite, owner or category: move it in the case counts from
    its stored values (read here, in the transaction) to `to`. Nothing when the case is deleted or gone."""
    before = connection.database[CASES].find_one(
        {"_id": case_id, "is_deleted": False}, {"suite_id": 1, "owner": 1, "category": 1}, session=connection.session
    )
    if before is not None:
        case_counts_record([(before, -1), (to, 1)])


def case_visibility_set(*, case_id: ObjectId, deleted: bool, on_commit_audit: Callable[[], None]) -> bool:
    """Soft-delete (`deleted=True`) or restore a case and move its latest runs out of (or back into) the
    summaries, with the audit event, in one transaction. Returns False when the case was already in that state."""

    def work(session) -> bool:
        database = connection.database
        changes: dict[str, Any] = {"is_deleted": deleted, "deleted_at": to_millis(timezone.now()) if deleted else None}
        claimed = database[CASES].update_one(
            {"_id": case_id, "is_deleted": not deleted}, {"$set": changes, "$inc": {"write_version": 1}},
            session=session,
        )  # fmt: skip
        if claimed.modified_count != 1:
            return False
        # Read after the write (not findAndModify, a scan on the stand-in: see runs_append).
        projection = {"suite_id": 1, "owner": 1, "category": 1}
        claimed = database[CASES].find_one({"_id": case_id}, projection, session=session)
        entries: dict[ObjectId | None, list[dict[str, Any]]] = defaultdict(list)
        entries[None].append(_case_entry(claimed, -1 if deleted else 1))
        for run in database[RUNS].find({"case_id": case_id, "is_latest": True}, session=session):
            entries[run["release_candidate_id"]].append(_entry(run, -1 if deleted else 1))
        _delta_insert(database, entries, session=session)
        on_commit_audit()
        return True

    changed = in_transaction(work)
    applier_ensure()
    return changed


# --- the summary applier -------------------------------------------------------------------------------------


def _case_increments(deltas: Iterable[dict[str, Any]]) -> dict[tuple, int]:
    increments: dict[tuple, int] = defaultdict(int)
    for delta in deltas:
        for entry in delta["entries"]:
            if entry["status"] == CASE_ENTRY:
                for dimension, key in (("all", ""), ("owner", entry["owner"]), ("category", entry["category"])):
                    increments[(entry["suite_id"], dimension, key)] += entry["sign"]
    return increments


def _increments(deltas: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, int]]:
    increments: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNT_FIELDS.values(), 0))
    for delta in deltas:
        rc_id = delta["release_candidate_id"]
        if rc_id is None:
            continue
        for entry in delta["entries"]:
            field = _COUNT_FIELDS.get(entry["status"])
            if field is None:
                continue
            for dimension, key in (("all", ""), ("owner", entry["owner"]), ("category", entry["category"])):
                increments[(rc_id, entry["suite_id"], dimension, key)][field] += entry["sign"]
    return increments


def _apply_batch(limit: int) -> int:
    """Apply up to `limit` pending delta rows in one transaction; returns how many were applied (0: none pending
    or another applier took them first)."""
    database = connection.database
    batch = list(database[SUMMARY_DELTAS].find({}, limit=limit))
    if not batch:
        return 0
    ids = [delta["_id"] for delta in batch]
    increments = _increments(batch)
    case_increments = _case_increments(batch)

    class _Taken(Exception):
        pass

    def work(session) -> int:
        removed = database[SUMMARY_DELTAS].delete_many({"_id": {"$in": ids}}, session=session)
        if removed.deleted_count != len(ids):
            raise _Taken()  # another applier applied some of them: undo this attempt and read again
        now = to_millis(timezone.now())
        for (rc_id, suite_id, dimension, key), counts in increments.items():
            database[SUMMARIES].update_one(
                {"release_candidate_id": rc_id, "suite_id": suite_id, "dimension": dimension, "key": key},
                {"$inc": counts, "$set": {"updated_at": now}},
                upsert=True,
                session=session,
            )
        for (suite_id, dimension, key), count in case_increments.items():
            if count:
                database[CASE_COUNTS].update_one(
                    {"suite_id": suite_id, "dimension": dimension, "key": key},
                    {"$inc": {"case_count": count}, "$set": {"updated_at": now}},
                    upsert=True,
                    session=session,
                )
        return len(ids)

    try:
        return in_transaction(work)
    except _Taken:
        return 0


def summary_deltas_pending() -> int:
    """How many delta rows wait for the applier."""
    return connection.database[SUMMARY_DELTAS].estimated_document_count()


def summary_deltas_apply(*, max_batches: int | None = None, wait_seconds: float = 0.0) -> int:
    """Apply pending summary deltas (one applier at a time; returns rows applied). With `wait_seconds`, wait that
    long for another applier to finish instead of returning at once."""
    token = uuid.uuid4().hex
    give_up = time.monotonic() + wait_seconds
    while not cache.add(_APPLY_LOCK, token, _APPLY_LOCK_SECONDS):
        if time.monotonic() >= give_up:
            return 0
        time.sleep(0.01)
    applied = 0
    try:
        batches = 0
        while max_batches is None or batches < max_batches:
            done = _apply_batch(APPLY_BATCH)
            if not done:
                break
            applied += done
            batches += 1
    finally:
        if cache.get(_APPLY_LOCK) == token:
            cache.delete(_APPLY_LOCK)
    return applied


def summaries_settle() -> None:
    """Before reading figures: apply what is pending (cheap when nothing is), waiting briefly for another applier,
    so a reader sees every run recorded before it asked. Never inside an open transaction."""
    if getattr(connection, "in_atomic_block_mongo", False):
        return
    if connection.database[SUMMARY_DELTAS].find_one({}, {"_id": 1}) is None:
        return
    summary_deltas_apply(max_batches=200, wait_seconds=5.0)


_applier_thread: threading.Thread | None = None
_applier_lock = threading.Lock()


def applier_ensure() -> None:
    """Start this process's applier thread (every SUMMARY_APPLY_SECONDS; 0 turns it off, as in tests)."""
    global _applier_thread
    interval = float(getattr(settings, "SUMMARY_APPLY_SECONDS", 0) or 0)
    if interval <= 0 or (_applier_thread is not None and _applier_thread.is_alive()):
        return
    with _applier_lock:
        if _applier_thread is not None and _applier_thread.is_alive():
            return
        _applier_thread = threading.Thread(target=_applier_loop, args=(interval,), name="summary-applier", daemon=True)
        _applier_thread.start()


def _applier_loop(interval: float) -> None:
    from django.db import connections

    while float(getattr(settings, "SUMMARY_APPLY_SECONDS", 0) or 0) > 0:
        time.sleep(interval)
        try:
            if connection.database[SUMMARY_DELTAS].find_one({}, {"_id": 1}) is not None:
                summary_deltas_apply()
        except Exception:  # keep the thread alive; the beat task and readers apply as well
            logger.exception("summary applier failed; it will try again")
        finally:
            connections.close_all()


# --- rebuild -------------------------------------------------------------------------------------------------


def repair_latest_flags(match: dict[str, Any]) -> int:
    """Where a bulk writer left several runs of one (case, RC) marked latest, keep only the newest one marked.
    Returns how many runs were unmarked."""
    runs = connection.database[RUNS]
    duplicates = runs.aggregate(
        [
            {"$match": {**match, "is_latest": True}},
            {"$group": {"_id": {"c": "$case_id", "r": "$release_candidate_id"}, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ],
        allowDiskUse=True,
    )
    unmarked = 0
    for group in duplicates:
        marked = list(
            runs.find(
                {"case_id": group["_id"]["c"], "release_candidate_id": group["_id"]["r"], "is_latest": True},
                {"_id": 1, "executed_at": 1},
            )
        )
        marked.sort(key=lambda doc: latest_order(doc["executed_at"], doc["_id"]), reverse=True)
        stale = [doc["_id"] for doc in marked[1:]]
        unmarked += runs.update_many({"_id": {"$in": stale}}, {"$set": {"is_latest": False}}).modified_count
    return unmarked


def _summary_documents(grouped: Iterable[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    documents: dict[tuple, dict[str, Any]] = {}
    for row in grouped:
        key = row["_id"]
        field = _COUNT_FIELDS.get(key["t"])
        if field is None:
            continue
        for dimension, value in (("all", ""), ("owner", key.get("o", "")), ("category", key.get("c", ""))):
            identity = (key["r"], key["s"], dimension, value)
            document = documents.setdefault(
                identity,
                {
                    "release_candidate_id": key["r"],
                    "suite_id": key["s"],
                    "dimension": dimension,
                    "key": value,
                    "pass_count": 0,
                    "fail_count": 0,
                    "pending_count": 0,
                    "updated_at": now,
                },
            )
            document[field] += row["n"]
    return list(documents.values())


def _rebuild_one(rc_id: ObjectId) -> None:
    def work(session) -> None:
        database = connection.database
        deleted = [
            document["_id"] for document in database[CASES].find({"is_deleted": True}, {"_id": 1}, session=session)
        ]
        match: dict[str, Any] = {"release_candidate_id": rc_id, "is_latest": True}
        if deleted:
            match["case_id"] = {"$nin": deleted}
        grouped = database[RUNS].aggregate(
            [
                {"$match": match},
                {"$group": {"_id": {"r": "$release_candidate_id", "s": "$suite_id", "o": "$owner",
                                    "c": "$category", "t": "$status"}, "n": {"$sum": 1}}},
            ],
            session=session,
        )  # fmt: skip
        documents = _summary_documents(grouped, now=to_millis(timezone.now()))
        # The delta rows this snapshot sees describe runs the $group above already counted.
        database[SUMMARY_DELTAS].delete_many({"release_candidate_id": rc_id}, session=session)
        database[SUMMARIES].delete_many({"release_candidate_id": rc_id}, session=session)
        if documents:
            database[SUMMARIES].insert_many(documents, session=session)

    in_transaction(work, deadline_seconds=120.0)


def case_counts_rebuild() -> None:
    """Recompute the case counts (`caseScopeCounts`: live cases per suite, in total and per owner and category)
    from the cases, in one snapshot transaction that also drops the case-count delta rows visible to it (the same
    rule as `_rebuild_one`), so a rebuild while cases are created neither loses nor doubles one."""

    def work(session) -> None:
        database = connection.database
        grouped = database[CASES].aggregate(
            [
                {"$match": {"is_deleted": False}},
                {"$group": {"_id": {"s": "$suite_id", "o": "$owner", "c": "$category"}, "n": {"$sum": 1}}},
            ],
            session=session,
        )
        now = to_millis(timezone.now())
        counts: dict[tuple, int] = defaultdict(int)
        for row in grouped:
            key = row["_id"]
            for dimension, value in (("all", ""), ("owner", key.get("o", "")), ("category", key.get("c", ""))):
                counts[(key["s"], dimension, value)] += row["n"]
        database[SUMMARY_DELTAS].delete_many({"release_candidate_id": None}, session=session)
        database[CASE_COUNTS].delete_many({}, session=session)
        if counts:
            database[CASE_COUNTS].insert_many(
                [
                    {"suite_id": suite_id, "dimension": dimension, "key": key, "case_count": count, "updated_at": now}
                    for (suite_id, dimension, key), count in counts.items()
                ],
                session=session,
            )

    in_transaction(work, deadline_seconds=120.0)


def summaries_rebuild(*, release_candidate_ids: Iterable[ObjectId] | None = None) -> None:
    """Recompute the summary documents of these RCs (every RC when None) from the raw runs: the latest run of each
    (case, RC) whose case is not soft-deleted, per RC and suite, in total ("all") and per owner and category.
    Repairs duplicate latest flags first. Idempotent, and safe while runs are being recorded. The case counts
    (coverage) are rebuilt too: the writers that call this (imports, repairs) may have added or changed cases."""
    if release_candidate_ids is None:
        ids = list(connection.database[RELEASE_CANDIDATES].distinct("_id"))
        repair_latest_flags({})
    else:
        ids = list(dict.fromkeys(release_candidate_ids))
        if ids:
            repair_latest_flags({"release_candidate_id": {"$in": ids}})
    for rc_id in ids:
        _rebuild_one(rc_id)
    case_counts_rebuild()
