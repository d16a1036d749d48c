"""Application-level export and restore of the MongoDB database (`manage.py export_data` / `restore_data`).

The file is JSON Lines in MongoDB Extended JSON v2, canonical mode (`bson.json_util`), so every BSON type comes back
exactly: ObjectIds, datetimes (milliseconds), Int64 vs Int32, Decimal128, binary. Optionally gzip-compressed
(a name ending in `.gz`). Layout, one JSON object per line:

    {"type": "header", "format": "report-platform-export", "version": 1, "database": ..., "exported_at": ...}
    {"type": "collection", "name": "users", "options": {...}, "indexes": [...], "count": 12}
    {"type": "document", "c": "users", "d": {...}}            x count, right after their collection line
    ...
    {"type": "end", "collections": 17, "documents": 12345}

What is exported: every collection of the database except `system.*` and the sessions (`django_session`: live
login sessions are bearer secrets and worthless after a restore). Users are exported WITH their password hashes
(bcrypt) and MFA secrets (encrypted with MFA_ENCRYPTION_KEYS): a backup people cannot log in from is not a backup.
The file is therefore as sensitive as the database: it is written with mode 0600; keep it encrypted at rest.

Restore goes into an EMPTY database only (no document in any collection): it first reads the whole file and checks
it (header, counts, end marker), so a truncated or corrupt file writes nothing; then it creates each collection
with its options and indexes and inserts the documents in batches. The export is not a point-in-time snapshot
across collections on a busy server: for that, use `mongodump --oplog` (deploy/README.md, "Backups").
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from django.utils import timezone
from pymongo import IndexModel
from pymongo.database import Database

FORMAT = "report-platform-export"
VERSION = 1
EXCLUDED_COLLECTIONS = frozenset({"django_session"})
_BATCH = 1000
# Index fields that describe the index rather than configure it.
_INDEX_META = {"v", "key", "ns"}


class BackupError(Exception):
    """The file cannot be used, or the target database cannot receive it. Nothing was written."""


@dataclass
class ExportSummary:
    collections: int = 0
    documents: int = 0
    per_collection: dict[str, int] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    return json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS)


def _open_write(path: Path) -> IO[str]:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
    raw = os.fdopen(descriptor, "wb")
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb"), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


def _open_read(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8")


def exported_collection_names(database: Database) -> list[str]:
    return sorted(
        name
        for name in database.list_collection_names()
        if not name.startswith("system.") and name not in EXCLUDED_COLLECTIONS
    )


def export_database(database: Database, path: Path) -> ExportSummary:
    """Write every exported collection of `database` (options, indexes, documents in `_id` order) to `path`."""
    summary = ExportSummary()
    names = exported_collection_names(database)
    infos = {info["name"]: info for info in database.list_collections()}
    with _open_write(path) as out:
        header = {"type": "header", "format": FORMAT, "version": VERSION, "database": database.name}
        out.write(_dumps({**header, "exported_at": timezone.now()}) + "\n")
        for name in names:
            collection = database[name]
            count = collection.count_documents({})
            indexes = [dict(index) for index in collection.list_indexes() if index["name"] != "_id_"]
            options = dict(infos.get(name, {}).get("options", {}))
            out.write(
                _dumps({"type": "collection", "name": name, "options": options, "indexes": indexes, "count": count})
                + "\n"
            )
            written = 0
            for document in collection.find({}, sort=[("_id", 1)], batch_size=_BATCH):
                out.write(_dumps({"type": "document", "c": name, "d": document}) + "\n")
                written += 1
            if written != count:
                raise BackupError(
                    f"{name} changed during the export ({count} counted, {written} written): run it again"
                )
            summary.collections += 1
            summary.documents += written
            summary.per_collection[name] = written
        out.write(_dumps({"type": "end", "collections": summary.collections, "documents": summary.documents}) + "\n")
    return summary


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _open_read(path) as source:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    record = json_util.loads(line, json_options=CANONICAL_JSON_OPTIONS)
                except ValueError as exc:
                    raise BackupError(f"line {number}: not valid Extended JSON ({exc.__class__.__name__})") from None
                if not isinstance(record, dict) or "type" not in record:
                    raise BackupError(f"line {number}: not an export record")
                yield number, record
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None


def check_export_file(path: Path) -> ExportSummary:
    """Read the whole file and check its structure; raise `BackupError` naming the first problem."""
    summary = ExportSummary()
    expected = "header"
    current: str | None = None
    remaining = 0
    ended = False
    for number, record in _records(path):
        kind = record["type"]
        if ended:
            raise BackupError(f"line {number}: data after the end marker")
        if expected == "header":
            if kind != "header" or record.get("format") != FORMAT:
                raise BackupError("not a Report Platform export (the header line is missing)")
            if record.get("version") != VERSION:
                raise BackupError(f"unsupported export version {record.get('version')!r}")
            expected = "body"
            continue
        if kind == "document":
            if current is None or record.get("c") != current or remaining <= 0:
                raise BackupError(f"line {number}: a document outside its collection's block")
            if not isinstance(record.get("d"), dict):
                raise BackupError(f"line {number}: the document is not an object")
            remaining -= 1
            summary.documents += 1
            summary.per_collection[current] += 1
            continue
        if remaining:
            raise BackupError(f"collection {current}: {remaining} documents missing")
        if kind == "collection":
            current = record.get("name")
            if not isinstance(current, str) or not current or current in summary.per_collection:
                raise BackupError(f"line {number}: bad or repeated collection name")
            remaining = int(record.get("count", 0))
            summary.collections += 1
            summary.per_collection[current] = 0
        elif kind == "end":
            if (record.get("collections"), record.get("documents")) != (summary.collections, summary.documents):
                raise BackupError("the end marker's totals do not match the file")
            ended = True
        else:
            raise BackupError(f"line {number}: unknown record type {kind!r}")
    if expected == "header":
        raise BackupError("the file is empty")
    if not ended:
        raise BackupError("the file is truncated (no end marker)")
    return summary


def database_is_empty(database: Database) -> bool:
    return all(
        database[name].estimated_document_count() == 0 and database[name].find_one({}) is None
        for name in database.list_collection_names()
        if not name.startswith("system.")
    )


def restore_database(database: Database, path: Path) -> ExportSummary:
    """Restore `path` into `database`, which must hold no document. The file is checked completely first."""
    summary = check_export_file(path)
    if not database_is_empty(database):
        raise BackupError(f"database {database.name!r} is not empty: restore only into an empty database")
    existing = set(database.list_collection_names())
    batch: list[dict] = []
    target = None
    for _number, record in _records(path):
        kind = record["type"]
        if kind == "collection":
            if batch:
                target.insert_many(batch, ordered=True)
                batch = []
            name = record["name"]
            if name not in existing:
                database.create_collection(name, **record.get("options", {}))
            target = database[name]
            indexes = [
                IndexModel(list(index["key"].items()), **{k: v for k, v in index.items() if k not in _INDEX_META})
                for index in record.get("indexes", [])
            ]
            if indexes:
                target.create_indexes(indexes)
        elif kind == "document":
            batch.append(record["d"])
            if len(batch) >= _BATCH:
                target.insert_many(batch, ordered=True)
                batch = []
    if batch:
        target.insert_many(batch, ordered=True)
    return summary
