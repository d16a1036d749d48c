"""The undo journal of an import job: one entry per bulk write, replayed backwards to roll back.

Each entry is one document in `importJournal`: {job_id, seq, collection, op: "insert" | "update", ids, documents,
release_candidate_ids}. It is written in the same MongoDB transaction as the writes it describes (the worker's
fenced batch, imports/leases.py), so a kill mid-batch leaves both or neither. `seq` grows with the attempt and
within it, so the newest change is undone first even when an attempt resumed after a crashed one. An update entry
keeps the documents as they were; an insert entry the ids inserted. The whole file is not one transaction: a
20 MiB import would exceed the 60 s / 16 MB transaction limits of a real server.

Rollback (`journal_undo`) is idempotent and resumable: each entry is undone and deleted in one transaction fenced
by the rollback's token, so a rollback killed half-way goes on where it stopped (the sweep finishes it) and a
superseded one stops.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from django.db import connection

from imports import leases
from releases import bulk

COLLECTION = "importJournal"
_ATTEMPT_SPAN = 10_000_000
# An RC or suite the job created may since carry another job's runs or cases (two CI jobs uploading into the same
# new RC): undo keeps such a document. The job's own references are undone before (newest first), so in a
# database nobody else wrote to the restore is still exact.
_REFERENCED_BY = {bulk.RELEASE_CANDIDATES: (bulk.RUNS, "release_candidate_id"), bulk.SUITES: (bulk.CASES, "suite_id")}


class UndoJournal:
    """`releases.bulk.Journal` implementation for one attempt of one job. Pass the batch transaction's `session`
    (or set `.session` per batch) so entries commit with the writes."""

    def __init__(self, *, job_id: ObjectId, attempt: int, session=None) -> None:
        self.job_id = ObjectId(str(job_id))
        self.seq = attempt * _ATTEMPT_SPAN
        self.session = session

    def _append(self, entry: dict[str, Any]) -> None:
        self.seq += 1
        connection.database[COLLECTION].insert_one(
            {"job_id": self.job_id, "seq": self.seq, **entry}, session=self.session
        )

    def before_insert(self, collection: str, ids: list[ObjectId], *, release_candidate_ids=()) -> None:
        self._append(
            {
                "collection": collection,
                "op": "insert",
                "ids": ids,
                "documents": [],
                "release_candidate_ids": sorted(set(release_candidate_ids)),
            }
        )

    def before_update(self, collection: str, documents: list[dict[str, Any]]) -> None:
        rc_ids = sorted({document["release_candidate_id"] for document in documents}) if collection == bulk.RUNS else []
        self._append(
            {
                "collection": collection,
                "op": "update",
                "ids": [],
                "documents": documents,
                "release_candidate_ids": rc_ids,
            }
        )


def _entry_release_candidate_ids(entry: dict[str, Any]) -> set[ObjectId]:
    found = set(entry.get("release_candidate_ids") or ())
    if entry["collection"] == bulk.RELEASE_CANDIDATES:
        found.update(entry["ids"])
    elif entry["collection"] == bulk.RUNS and entry["op"] == "update":
        found.update(document["release_candidate_id"] for document in entry["documents"])
    return found


def journal_release_candidate_ids(job_id) -> set[ObjectId]:
    """Ids of the RCs whose runs the job touched or that it created, from its journal (no scan of the runs)."""
    found: set[ObjectId] = set()
    projection = {"collection": 1, "op": 1, "ids": 1, "release_candidate_ids": 1, "documents.release_candidate_id": 1}
    for entry in connection.database[COLLECTION].find({"job_id": ObjectId(str(job_id))}, projection):
        found |= _entry_release_candidate_ids(entry)
    return found


def _unreferenced(collection: str, ids: list[ObjectId], *, session) -> list[ObjectId]:
    """The inserted ids that no document of another job refers to now (all of them outside RCs and suites)."""
    if collection not in _REFERENCED_BY:
        return ids
    target, field = _REFERENCED_BY[collection]
    documents = connection.database[target]
    return [found for found in ids if documents.find_one({field: found}, {"_id": 1}, session=session) is None]


def journal_undo(job_id, *, token: int | None = None) -> set[ObjectId]:
    """Restore every document the job changed, newest change first, each entry undone and deleted in one
    transaction; with `token`, fenced by it (LeaseLost when superseded). Returns the ids of the RCs touched,
    including those undone by an earlier, interrupted rollback (kept on the fence)."""
    entries = connection.database[COLLECTION]
    fences = connection.database[leases.FENCES]
    job = ObjectId(str(job_id))
    # Sorted here, not by the server: the stand-in does not use the index for a sorted query.
    order = sorted(entries.find({"job_id": job}, {"seq": 1}), key=lambda entry: entry["seq"], reverse=True)
    touched: set[ObjectId] = set()
    for item in order:

        def undo_one(entry_id=item["_id"]) -> None:
            with connection.connection.start_session() as session, session.start_transaction():
                entry = entries.find_one({"_id": entry_id}, session=session)
                if entry is None:
                    return
                rc_ids = _entry_release_candidate_ids(entry)
                if entry["op"] == "insert":
                    inserted = _unreferenced(entry["collection"], entry["ids"], session=session)
                    bulk.documents_restore(entry["collection"], inserted_ids=inserted, session=session)
                else:
                    bulk.documents_restore(entry["collection"], documents=entry["documents"], session=session)
                entries.delete_one({"_id": entry_id}, session=session)
                if token is not None:
                    update = {"$inc": {"undone": 1}}
                    if rc_ids:
                        update["$addToSet"] = {"release_candidate_ids": {"$each": sorted(rc_ids)}}
                    if not fences.update_one({"_id": job, "token": token}, update, session=session).matched_count:
                        raise leases.LeaseLost()
                touched.update(rc_ids)

        leases.transient_retry(undo_one)
    fence = fences.find_one({"_id": job}, {"release_candidate_ids": 1}) or {}
    touched.update(fence.get("release_candidate_ids") or ())
    return touched


def journal_count(job_id) -> int:
    return connection.database[COLLECTION].count_documents({"job_id": ObjectId(str(job_id))})


def journal_discard(job_id) -> None:
    """Forget the journal once the job's changes are final."""
    connection.database[COLLECTION].delete_many({"job_id": ObjectId(str(job_id))})
