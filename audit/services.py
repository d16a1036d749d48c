"""Writing audit events. Services of every app call `audit_record` explicitly for the action they perform."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from report_platform.client_ip import client_ip

GENESIS_HASH = "0" * 64
REDACTED = "[redacted]"
_APPEND_ATTEMPTS = 200
# Metadata keys whose values never reach the trail, by the words of the key (`refresh_token`, `apiKey`, ...):
_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens", "otp", "totp", "authorization",
     "cookie", "cookies", "credential", "credentials", "apikey", "signature", "session", "sessionid", "csrf"}
)  # fmt: skip
# ...plus `<anything>_key` (api_key, reset_key, signing_key; a bare `key` is a case key and stays) and `code` or
# `<anything>_code` (TOTP, recovery, verification codes) except these descriptive codes:
_PUBLIC_CODES = frozenset({"error", "status", "reason", "failure", "http", "country", "currency", "language"})
# Values that look like credentials whatever their key: JWTs, provider API keys, bearer headers.
_SECRET_VALUE = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|\bsk-[A-Za-z0-9_-]{16,}"
    r"|\bBearer\s+[A-Za-z0-9._~+/=-]{16,}",
)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _scrub(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def _is_secret_key(key: str) -> bool:
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", key)]
    if not words:
        return False
    if _SECRET_WORDS.intersection(words) or "".join(words) in _SECRET_WORDS:
        return True
    if words[-1] == "key" and len(words) > 1:
        return True
    return words[-1] == "code" and (len(words) == 1 or words[-2] not in _PUBLIC_CODES)


def _scrub(metadata: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        key = str(key)
        clean[key] = REDACTED if _is_secret_key(key) else _scrub_value(value)
    return clean


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the event's content and the previous event's hash."""
    payload = {
        "sequence": event.sequence,
        "actor_id": event.actor_id,
        "actor_email": event.actor_email,
        "action": event.action,
        "resource": event.resource,
        "outcome": event.outcome,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "metadata": event.metadata,
        "created_at": event.created_at.isoformat(timespec="milliseconds"),
        "previous_hash": event.previous_hash,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


# The newest event's sequence and hash, kept in one document so that appending never has to find the newest event
# (a sorted query; O(n) on servers that do not sort by index, such as the embedded stand-in). The events stay the
# source of truth: the head is rebuilt from them when it is missing, and repaired when an append finds it behind.
CHAIN_HEAD_COLLECTION = "auditChainHead"
_HEAD_ID = "head"


def _head_collection():
    from django.db import connection

    return connection.database[CHAIN_HEAD_COLLECTION]


def _newest_event() -> dict[str, Any]:
    last = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
    return {"sequence": last.sequence, "hash": last.hash} if last else {"sequence": 0, "hash": GENESIS_HASH}


def _chain_head(*, repair: bool = False) -> dict[str, Any]:
    """The chain head; with `repair` (after losing an append race, or when a writer died between its insert and
    its head update) moved forward to the newest stored event first."""
    collection = _head_collection()
    head = None if repair else collection.find_one({"_id": _HEAD_ID})
    if head is None:
        newest = _newest_event()
        collection.update_one({"_id": _HEAD_ID}, {"$setOnInsert": newest}, upsert=True)
        _chain_head_advance(sequence=newest["sequence"], hash_=newest["hash"])
        head = collection.find_one({"_id": _HEAD_ID})
    return {"sequence": head["sequence"], "hash": head["hash"]}


def _chain_head_advance(*, sequence: int, hash_: str) -> None:
    """Move the head forward only (a slower writer never moves it back)."""
    _head_collection().update_one(
        {"_id": _HEAD_ID, "sequence": {"$lt": sequence}}, {"$set": {"sequence": sequence, "hash": hash_}}
    )


def audit_record(
    *,
    action: str,
    actor=None,
    resource: str = "",
    outcome: str = AuditEvent.Outcome.SUCCESS,
    request: HttpRequest | None = None,
    metadata: dict[str, Any] | None = None,
    actor_email: str = "",
) -> AuditEvent:
    """Append one event to the chain. `actor` is a user (or None for anonymous/system); `request` supplies the IP
    (trusted-proxy aware), user agent and request id. Secrets in `metadata` are replaced by "[redacted]"."""
    now = timezone.now()
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    fields = {
        "actor_id": str(actor.pk) if is_user else "",
        "actor_email": (actor.email if is_user else actor_email)[:254],
        "action": action,
        "resource": resource[:200],
        "outcome": outcome,
        "ip": client_ip(request) if request is not None else "",
        "user_agent": (request.headers.get("User-Agent", "") if request is not None else "")[:300],
        "request_id": getattr(request, "request_id", "") if request is not None else "",
        "metadata": _scrub(metadata or {}),
        # Millisecond precision: what MongoDB stores, so the hash recomputes identically after a round trip.
        "created_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
    }
    # The unique sequence makes concurrent writers retry instead of forking the chain; a short random back-off
    # spreads the retries of many writers that lost the same race.
    head = _chain_head()
    for attempt in range(_APPEND_ATTEMPTS):
        event = AuditEvent(sequence=head["sequence"] + 1, previous_hash=head["hash"], **fields)
        event.hash = event_hash(event)
        try:
            event.save(force_insert=True)
        except IntegrityError:
            time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
            head = _chain_head(repair=True)
            continue
        _chain_head_advance(sequence=event.sequence, hash_=event.hash)
        return event
    raise RuntimeError(f"Could not append to the audit chain after {_APPEND_ATTEMPTS} attempts")


# OWASP CSV injection: a spreadsheet treats a cell starting with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = (
    "sequence",
    "created_at",
    "actor_id",
    "actor_email",
    "action",
    "resource",
    "outcome",
    "ip",
    "user_agent",
    "request_id",
    "metadata",
    "hash",
)


def csv_safe_cell(value: Any) -> str:
    """Text of one CSV cell that a spreadsheet shows as text, never evaluates (prefixes formulas with `'`)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def _export_row(event: AuditEvent) -> list[str]:
    values = {
        "sequence": event.sequence,
        "created_at": event.created_at.isoformat(timespec="milliseconds"),
        "metadata": json.dumps(event.metadata, sort_keys=True, default=str),
    }
    return [csv_safe_cell(values.get(column, getattr(event, column))) for column in EXPORT_COLUMNS]


def audit_events_export_csv(
    *, events: Iterable[AuditEvent], actor, request: HttpRequest | None, filters: dict[str, Any], count: int
) -> Iterator[str]:
    """Record the export (one event, before any row leaves), then yield the CSV text of `events` in chunks."""
    audit_record(
        action="audit.export",
        actor=actor,
        resource="auditEvents",
        request=request,
        metadata={"filters": filters, "rows": count},
    )
    return _csv_chunks(events)


def _csv_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for index, event in enumerate(events, start=1):
        writer.writerow(_export_row(event))
        if index % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
