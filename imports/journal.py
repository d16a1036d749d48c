"""The undo journal of an import job: written before every bulk write, replayed backwards to roll back.

Each entry is one document in `importJournal`: {job_id, seq, collection, op: "insert" | "update", ids, documents}.
`seq` grows with the attempt and within it, so the newest change is undone first even when an attempt resumed
after a crashed one. An update entry keeps the documents as they were; an insert entry the ids about to be
inserted (deleting an id that never got written is harmless). MongoDB transactions are not used for the whole
file: a 20 MiB import would exceed the 60 s / 16 MB transaction limits of a real server.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from django.db import connection

from releases import bulk

COLLECTION = "importJournal"
_ATTEMPT_SPAN = 10_000_000


class UndoJournal:
    """`releases.bulk.Journal` implementation for one attempt of one job."""

    def __init__(self, *, job_id: ObjectId, attempt: int) -> None:
        self.job_id = ObjectId(str(job_id))
        self.seq = attempt * _ATTEMPT_SPAN

    def _append(self, entry: dict[str, Any]) -> None:
        self.seq += 1
        connection.database[COLLECTION].insert_one({"job_id": self.job_id, "seq": self.seq, **entry})

    def before_insert(self, collection: str, ids: list[ObjectId]) -> None:
        self._append({"collection": collection, "op": "insert", "ids": ids, "documents": []})

    def before_update(self, collection: str, documents: list[dict[str, Any]]) -> None:
        self._append({"collection": collection, "op": "update", "ids": [], "documents": documents})


def journal_release_candidate_ids(job_id) -> set[ObjectId]:
    """Ids of the RCs whose runs the job touched or that it created (call before `journal_undo`), so their
    summaries can be rebuilt after the undo."""
    found: set[ObjectId] = set()
    database = connection.database
    for entry in database[COLLECTION].find({"job_id": ObjectId(str(job_id))}):
        if entry["collection"] == bulk.RELEASE_CANDIDATES:
            found.update(entry["ids"])
        elif entry["collection"] == bulk.RUNS and entry["op"] == "update":
            found.update(document["release_candidate_id"] for document in entry["documents"])
        elif entry["collection"] == bulk.RUNS:
            found.update(database[bulk.RUNS].distinct("release_candidate_id", {"_id": {"$in": entry["ids"]}}))
    return found


def journal_undo(job_id) -> int:
    """Restore every document the job changed, newest change first; then drop the journal. Returns entries undone."""
    entries = connection.database[COLLECTION]
    job = ObjectId(str(job_id))
    undone = 0
    for entry in entries.find({"job_id": job}).sort("seq", -1):
        if entry["op"] == "insert":
            bulk.documents_restore(entry["collection"], inserted_ids=entry["ids"])
        else:
            bulk.documents_restore(entry["collection"], documents=entry["documents"])
        undone += 1
    journal_discard(job)
    return undone


def journal_discard(job_id) -> None:
    """Forget the journal once the job's changes are final."""
    connection.database[COLLECTION].delete_many({"job_id": ObjectId(str(job_id))})
