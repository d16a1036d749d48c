"""Leases, heartbeats and fencing of import jobs.

- The lease lives on the job document (`lease_owner`, `lease_token`, `lease_expires_at`). A worker renews it from a
  heartbeat thread every third of the lease, however long a batch takes; the sweep re-queues a job only when the
  lease expired, that is when the heartbeat stopped.
- `lease_token` grows on every claim (a worker's, a rollback's, a cancel's). The fence is a separate document per
  job in `importFences` ({_id: job id, token, rows_done, counts}): the claimer moves it to its token
  (`fence_take`) before it reads or writes anything, and every write batch runs in one MongoDB transaction that
  ends by updating the fence under the batch's token (`fenced_batch`). A worker whose token was superseded cannot
  commit: its fence update no longer matches, or conflicts with the newer take (first committer wins), and the
  whole batch (journal entry and writes) aborts.
- The heartbeat writes only the job document and the batch transaction never does, so the two never WriteConflict.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from bson import ObjectId
from django.db import connection
from django.utils import timezone
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

logger = logging.getLogger(__name__)

FENCES = "importFences"
JOBS = "importJobs"
_WRITE_CONFLICT = 112


class LeaseLost(Exception):
    """A newer claim (another worker, a rollback, a cancel) holds the job: stop without writing or undoing."""


def is_transient(error: PyMongoError) -> bool:
    """A conflict that a retry of the whole transaction (or single write) resolves."""
    if isinstance(error, OperationFailure) and error.code == _WRITE_CONFLICT:
        return True
    return error.has_error_label("TransientTransactionError") or error.has_error_label("UnknownTransactionCommitResult")


def fence_take(job_id, token: int) -> dict[str, Any] | None:
    """Move the job's fence to `token` (unless a newer token already holds it) and return the fence document, or
    None when a newer token holds it. From here on, batches fenced by older tokens cannot commit."""
    fences = connection.database[FENCES]
    job = ObjectId(str(job_id))
    _previous_batch_abort(fences.find_one({"_id": job}, {"session": 1}))
    for attempt in range(200):
        try:
            return fences.find_one_and_update(
                {"_id": job, "token": {"$lte": token}},
                {"$set": {"token": token}, "$setOnInsert": {"rows_done": 0, "counts": {}}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the fence exists with a newer token
            return None
        except OperationFailure as error:
            # A batch transaction of the previous holder is committing its fence update: it ends within seconds.
            if not is_transient(error):
                raise
            time.sleep(min(0.02 * (attempt + 1), 0.5))
    raise LeaseLost(f"could not take the fence of import {job}")


def _previous_batch_abort(fence: dict[str, Any] | None) -> None:
    """Abort the previous holder's open batch transaction, if any (its session id is kept on the fence). A killed
    worker's transaction would otherwise hold its uncommitted rows, and block ours, until the server reaps it
    (60 s: MongoDB keeps a transaction past its client's disconnect)."""
    if fence and fence.get("session"):
        try:
            connection.connection.admin.command({"killSessions": [fence["session"]]})
        except PyMongoError as error:
            logger.warning("could not end an import's previous batch session: %s", error)


def fence_get(job_id) -> dict[str, Any] | None:
    return connection.database[FENCES].find_one({"_id": ObjectId(str(job_id))})


def fence_drop(job_id) -> None:
    connection.database[FENCES].delete_one({"_id": ObjectId(str(job_id))})


@contextmanager
def fenced_batch(*, job_id, token: int) -> Iterator[tuple[Any, dict[str, Any]]]:
    """One write batch: a MongoDB transaction whose writes commit only if the fence still holds `token`.

    Yields (session, fence_update): pass `session` to every write; add to `fence_update` (a MongoDB update
    document) what the fence should record with the batch (rows done, counts). Raises LeaseLost when the token is
    superseded (before writing, if it already is), or the pymongo error (transient ones included) that aborted.
    """
    job = ObjectId(str(job_id))
    fences = connection.database[FENCES]
    current = fences.find_one({"_id": job}, {"token": 1})
    if current is None or current["token"] != token:
        raise LeaseLost()
    fence_update: dict[str, Any] = {"$inc": {"batches": 1}}
    with connection.connection.start_session() as session:
        # Outside the transaction (so no conflict with its own fence update): who to abort if this worker dies.
        fences.update_one({"_id": job, "token": token}, {"$set": {"session": session.session_id}})
        session.start_transaction()
        try:
            yield session, fence_update
            # Last, so a take that happened meanwhile makes this update conflict (or not match) and the batch abort.
            fence_update["$unset"] = {"session": ""}  # committed: nothing left to abort (the id goes back to a pool)
            if not fences.update_one({"_id": job, "token": token}, fence_update, session=session).matched_count:
                raise LeaseLost()
            session.commit_transaction()
        except BaseException:
            if session.in_transaction:
                try:
                    session.abort_transaction()
                except PyMongoError as error:  # the server already aborted it, or ends it on its own
                    logger.warning("aborting a fenced batch transaction failed: %s", error)
            raise


def transient_retry(function, *, attempts: int = 20):
    """Run `function()` again while it fails with a transient conflict (single writes outside a transaction)."""
    for attempt in range(attempts):
        try:
            return function()
        except PyMongoError as error:
            if not is_transient(error) or attempt == attempts - 1:
                raise
            time.sleep(min(0.02 * (attempt + 1), 0.5))
    return None


class Heartbeat:
    """Renews a job's lease every `lease_seconds / 3` on a daemon thread while the work runs, whatever its batch
    duration. `lost` is set when the renewal finds the lease taken (another claim, a cancel): the worker checks it
    before each batch; the fence guarantees safety in between."""

    def __init__(self, *, job_id, worker: str, token: int, lease_seconds: float) -> None:
        self.job_id = ObjectId(str(job_id))
        self.worker = worker
        self.token = token
        self.lease = timedelta(seconds=lease_seconds)
        self.interval = max(lease_seconds / 3, 0.05)
        self.lost = threading.Event()
        self._stop = threading.Event()
        # pymongo clients are thread-safe: the thread reuses this connection's client, not a new Django connection.
        self._jobs = connection.database[JOBS]
        self._thread = threading.Thread(target=self._run, name=f"import-heartbeat-{self.job_id}", daemon=True)

    def beat(self) -> bool:
        renewed = self._jobs.update_one(
            {"_id": self.job_id, "lease_owner": self.worker, "lease_token": self.token},
            {"$set": {"lease_expires_at": timezone.now() + self.lease}},
        )
        if not renewed.matched_count:
            self.lost.set()
        return bool(renewed.matched_count)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    return
            except PyMongoError as error:  # keep trying; if it never works the lease expires and the fence holds
                logger.warning("import job %s: heartbeat failed: %s", self.job_id, error)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
