"""Sealing the audit trail: recorded events (`auditInbox`, no sequence yet) become hash-chained `auditEvents`.

Why: appending to one global chain made every writer read and race for the same chain head; 8 concurrent writers
spent most of their time retrying. Now `audit_record` is one insert of an unsealed event (inside the action's own
transaction when there is one) and one sealer gives events their sequence and hash, in order, in batches.

Guarantees:
- Exactly once, in order: a batch is ONE MongoDB transaction that reads the chain head and the oldest unsealed
  events (by `created_at`, then `_id`), moves the head forward (conditional on it being where it was read), inserts
  the sealed events under the unsealed events' own `_id`, and deletes them from the inbox. Two sealers that race
  write the same head document, so MongoDB aborts one (WriteConflict, TransientTransactionError); it re-reads and
  seals what is left. A sealer killed mid-batch leaves nothing: its transaction never commits.
- The lease (`auditSealerLease`, one document with an owner and an expiry, renewed after every batch) only keeps
  sealers from wasting work on each other's conflicts; correctness never depends on it.
- Read-your-writes: `AuditEvent.objects` seals what is pending before building a queryset (models.AuditEventManager),
  never from inside an open transaction; when nothing is pending that is one small query on the inbox.
Who seals: a Celery beat task every ~2 s (`audit.seal`), and every reader of `AuditEvent.objects`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.int64 import Int64
from django.utils import timezone
from pymongo import ASCENDING, DESCENDING, DeleteOne, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from audit import metrics
from audit.models import AuditEvent
from audit.services import CHAIN_HEAD_COLLECTION, GENESIS_HASH, INBOX_COLLECTION, audit_connection, event_hash

logger = logging.getLogger(__name__)

EVENTS_COLLECTION = AuditEvent._meta.db_table
LEASE_COLLECTION = "auditSealerLease"
HEAD_ID = "head"
LEASE_ID = "sealer"
BATCH = 500
LEASE_SECONDS = 15
SEAL_BUDGET_SECONDS = 30.0
SEAL_ATTEMPTS = 50  # per batch; each lost race means another sealer sealed something, so this bounds wasted work
INBOX_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]
DUPLICATE_KEY = 11000
_EVENT_FIELDS = (
    "actor_id",
    "actor_email",
    "action",
    "resource",
    "outcome",
    "ip",
    "user_agent",
    "request_id",
    "metadata",
    "created_at",
)


class SealConflict(Exception):
    """The chain head or the inbox changed under this batch (another sealer won); the batch is retried."""


class LeaseLost(Exception):
    """This sealer's lease expired and another sealer took it: the new holder seals the rest."""


@dataclass
class _Head:
    sequence: int
    hash: str
    # Where the head document is now: None when there is none yet (this batch creates it). Differs from
    # (sequence, hash) only when a repair moves it to the newest event.
    stored_at: tuple[int, str] | None


def _database():
    return audit_connection().database


def _newest_event(session=None) -> _Head:
    """The head rebuilt from the events themselves (a sorted query, once, when the head is missing or behind)."""
    last = _database()[EVENTS_COLLECTION].find_one(
        {}, {"sequence": 1, "hash": 1}, sort=[("sequence", DESCENDING)], session=session
    )
    return _Head(last["sequence"], last["hash"], None) if last else _Head(0, GENESIS_HASH, None)


def _read_head(session, *, repair: bool) -> _Head:
    stored = _database()[CHAIN_HEAD_COLLECTION].find_one({"_id": HEAD_ID}, session=session)
    stored_at = (stored["sequence"], stored["hash"]) if stored is not None else None
    if stored_at is not None and not repair:
        return _Head(*stored_at, stored_at)
    newest = _newest_event(session)
    newest.stored_at = stored_at
    return newest


def _sealed(document: dict[str, Any], *, sequence: int, previous_hash: str) -> dict[str, Any]:
    """The stored event for an inbox document: its content as read back from MongoDB (so the hash recomputes
    identically when `audit_verify` loads it), its place in the chain and its hash."""
    fields = {name: document.get(name, "" if name != "metadata" else {}) for name in _EVENT_FIELDS}
    created_at = fields["created_at"]
    aware = created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at
    event = AuditEvent(sequence=sequence, previous_hash=previous_hash, **{**fields, "created_at": aware})
    return {
        "_id": document["_id"],
        # A 64-bit integer, as the ORM stores the field: the unique index on `sequence` is partial on that type.
        "sequence": Int64(sequence),
        **fields,
        "previous_hash": previous_hash,
        "hash": event_hash(event),
    }


def _move_head(session, head: _Head, *, sequence: int, hash_: str) -> None:
    heads = _database()[CHAIN_HEAD_COLLECTION]
    update = {"$set": {"sequence": Int64(sequence), "hash": hash_, "sealed_at": timezone.now()}}
    if head.stored_at is None:
        heads.insert_one({"_id": HEAD_ID, **update["$set"]}, session=session)  # a racing creator: duplicate key
        return
    condition = {"_id": HEAD_ID, "sequence": head.stored_at[0], "hash": head.stored_at[1]}
    if heads.update_one(condition, update, session=session).matched_count != 1:
        raise SealConflict("the chain head moved")


def _remove_from_inbox(session, ids: list) -> None:
    # One delete per `_id` in one command: index lookups (a `$in` over the batch is far slower on the stand-in).
    deletes = [DeleteOne({"_id": event_id}) for event_id in ids]
    deleted = _database()[INBOX_COLLECTION].bulk_write(deletes, ordered=False, session=session).deleted_count
    if deleted != len(ids):
        raise SealConflict("some events were sealed by another sealer")


def _commit(session) -> None:
    for attempt in range(10):
        try:
            session.commit_transaction()
            return
        except PyMongoError as error:
            # The commit may have happened (a network blip on the reply): committing again is safe and says so.
            if not error.has_error_label("UnknownTransactionCommitResult") or attempt == 9:
                raise


def _seal_batch_once(*, limit: int, repair: bool, lease_owner: str | None) -> int:
    client = _database().client
    with client.start_session() as session:
        # The lease names this batch's session, so a sealer that takes over an expired lease can end a dead
        # holder's open transaction at once (a server keeps it, and its writes, until its lifetime limit).
        if lease_owner is not None and not _lease_acquire(lease_owner, session_id=session.session_id):
            raise LeaseLost
        session.start_transaction(read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority"))
        try:
            pending = list(_database()[INBOX_COLLECTION].find({}, session=session).sort(INBOX_ORDER).limit(limit))
            if not pending:
                session.abort_transaction()
                return 0
            head = _read_head(session, repair=repair)
            documents = []
            sequence, previous_hash = head.sequence, head.hash
            for document in pending:
                sequence += 1
                sealed = _sealed(document, sequence=sequence, previous_hash=previous_hash)
                documents.append(sealed)
                previous_hash = sealed["hash"]
            # The head first: a sealer that lost the race fails here, before it inserted anything.
            _move_head(session, head, sequence=sequence, hash_=previous_hash)
            _database()[EVENTS_COLLECTION].insert_many(documents, ordered=True, session=session)
            _remove_from_inbox(session, [document["_id"] for document in pending])
            _commit(session)
        except BaseException:
            if session.in_transaction:
                with contextlib.suppress(PyMongoError):  # the server aborts it anyway when the session ends
                    session.abort_transaction()
            raise
    metrics.SEALED.inc(len(documents))
    return len(documents)


def _refuse_inside_a_transaction() -> None:
    # The chain head is never part of a user's transaction (every writer would conflict on it).
    if audit_connection().in_atomic_block_mongo:
        raise RuntimeError("audit events cannot be sealed inside an open transaction")


def _is_duplicate_key(error: PyMongoError) -> bool:
    if isinstance(error, DuplicateKeyError):
        return True
    if isinstance(error, BulkWriteError):
        return any(item.get("code") == DUPLICATE_KEY for item in error.details.get("writeErrors", []))
    return isinstance(error, OperationFailure) and error.code == DUPLICATE_KEY


def audit_seal_batch(*, limit: int = BATCH, lease_owner: str | None = None) -> int:
    """Seal the oldest `limit` unsealed events in one transaction; returns how many were sealed (0: none pending).

    Safe to call from any number of threads and processes at once (each event is sealed exactly once); a batch that
    lost a race to another sealer is retried on the new head. Refuses to run inside an open transaction."""
    _refuse_inside_a_transaction()
    repair = False
    for attempt in range(SEAL_ATTEMPTS):
        try:
            return _seal_batch_once(limit=limit, repair=repair, lease_owner=lease_owner)
        except SealConflict:
            pass
        except PyMongoError as error:
            if _is_duplicate_key(error):
                # A sequence is already taken: the head is behind the events (a partial restore, a hand edit).
                # Or another sealer created the missing head first. Either way: re-read it from the events.
                repair = True
            elif not error.has_error_label("TransientTransactionError"):
                raise
        # Another sealer won this round; a short random back-off keeps several losers from colliding again.
        time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
    raise SealConflict(f"Could not seal a batch after {SEAL_ATTEMPTS} attempts")


# --- the lease -------------------------------------------------------------------------------------------------


def _lease_owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _lease_acquire(owner: str, *, session_id: dict | None = None) -> bool:
    """Take the lease when it is free or expired (or renew it when `owner` holds it). Taking it over from a holder
    that stopped renewing ends that holder's session: a sealer killed inside its transaction leaves it open on the
    server (up to `transactionLifetimeLimitSeconds`, 60 s by default), and its writes would block every batch."""
    now = timezone.now()
    claim = {"owner": owner, "expires_at": now + timedelta(seconds=LEASE_SECONDS), "session": session_id}
    try:
        previous = _database()[LEASE_COLLECTION].find_one_and_update(
            {"_id": LEASE_ID, "$or": [{"owner": owner}, {"expires_at": {"$lt": now}}]},
            {"$set": claim},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
    except DuplicateKeyError:
        return False  # held by a live sealer: the upsert tried to create a second lease document
    if previous is not None and previous.get("owner") != owner and previous.get("session"):
        _end_session(previous["session"])
    return True


def _end_session(session_id: dict) -> None:
    try:
        _database().client.admin.command("killSessions", [session_id])
    except PyMongoError:
        # Not allowed, or already gone: the server still ends it at its lifetime limit; batches retry until then.
        logger.warning("could not end the previous audit sealer's session", exc_info=True)


def _lease_release(owner: str) -> None:
    _database()[LEASE_COLLECTION].delete_one({"_id": LEASE_ID, "owner": owner})


def pending_count() -> int:
    """How many events are recorded but not sealed yet."""
    return _database()[INBOX_COLLECTION].count_documents({})


def oldest_pending_at() -> datetime | None:
    """When the oldest unsealed event was recorded (None when nothing is pending)."""
    oldest = _database()[INBOX_COLLECTION].find_one({}, {"created_at": 1}, sort=INBOX_ORDER)
    if oldest is None:
        return None
    created_at = oldest["created_at"]
    return created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at


def _seal_all(owner: str, *, budget_seconds: float) -> int:
    sealed = 0
    stop_at = time.monotonic() + budget_seconds
    while time.monotonic() < stop_at:  # bounded: under a sustained flood, the next call goes on
        try:
            count = audit_seal_batch(lease_owner=owner)  # renews the lease before every batch
        except LeaseLost:
            logger.warning("audit sealer lost its lease; the new holder seals the rest")
            return sealed
        sealed += count
        if count < BATCH:
            return sealed
    return sealed


def audit_seal_pending(*, wait_seconds: float = 5.0, budget_seconds: float = SEAL_BUDGET_SECONDS) -> int:
    """Seal every pending event, under the sealer lease; returns how many this call sealed. Batches stop after
    `budget_seconds` (the rest is sealed by the next call).

    When another sealer holds the lease, wait (up to `wait_seconds`) until it has sealed the events that were
    pending when this call started, or has let the lease go (then seal here). Cheap when nothing is pending: one
    small query on the inbox. Refuses to run inside an open transaction (the head is never part of a user's one)."""
    _refuse_inside_a_transaction()
    inbox = _database()[INBOX_COLLECTION]
    if inbox.find_one({}, {"_id": 1}) is None:
        return 0
    owner = _lease_owner()
    deadline = time.monotonic() + wait_seconds
    newest = None
    while not _lease_acquire(owner):
        if newest is None:
            newest = inbox.find_one({}, {"_id": 1}, sort=[("created_at", DESCENDING), ("_id", DESCENDING)])
        # The holder seals in order: once the newest event pending at the start is gone, so is everything before.
        if newest is None or inbox.find_one({"_id": newest["_id"]}, {"_id": 1}) is None:
            return 0
        if time.monotonic() >= deadline:
            return 0  # the holder seals them; readers see them a moment later
        time.sleep(0.005)
    try:
        return _seal_all(owner, budget_seconds=budget_seconds)
    finally:
        _lease_release(owner)


def audit_seal_pending_quietly() -> int:
    """`audit_seal_pending` for readers: the page still renders what is sealed when sealing fails."""
    try:
        return audit_seal_pending()
    except (PyMongoError, SealConflict):
        logger.exception("audit events could not be sealed; readers see the sealed trail only")
        return 0
