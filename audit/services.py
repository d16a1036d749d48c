"""Writing audit events. Services of every app call `audit_record` explicitly for the action they perform."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from bson import ObjectId
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from report_platform.client_ip import client_ip

GENESIS_HASH = "0" * 64
REDACTED = "[redacted]"
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


# The newest sealed event's sequence and hash, kept in one document so that sealing never has to find the newest
# event (a sorted query; O(n) on servers that do not sort by index, such as the embedded stand-in). Only the sealer
# writes it, in the same transaction as the events it seals (audit/sealing.py). The events stay the source of truth:
# the head is rebuilt from them when it is missing, and repaired when a seal finds it behind.
CHAIN_HEAD_COLLECTION = "auditChainHead"
# Recorded, not yet sealed events: no sequence or hash yet. Appending is one insert here, so writers never share a
# document; the sealer moves them to `auditEvents` in order.
INBOX_COLLECTION = "auditInbox"


def audit_connection():
    """The database connection of the audit models. The collections the app reads and writes directly (inbox, chain
    head, lease) go through the same connection, so they always agree with `AuditEvent` queries."""
    from django.db import connections, router

    return connections[router.db_for_write(AuditEvent)]


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
    """Record one event. `actor` is a user (or None for anonymous/system); `request` supplies the IP (trusted-proxy
    aware), user agent and request id. Secrets in `metadata` are replaced by "[redacted]".

    The event is one insert into the inbox: inside an open `django_mongodb_backend.transaction.atomic()` block it
    is part of that transaction (stored together with the action, or not at all); outside, a single-document
    insert. The sealer gives it its sequence and hash within seconds; readers of `AuditEvent.objects` seal first.
    Returns the event as recorded: its `pk` is the sealed event's, `sequence` and `hash` are not assigned yet."""
    connection = audit_connection()
    now = timezone.now()
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    fields = {
        "actor_id": str(actor.pk) if is_user else "",
        "actor_email": (actor.email if is_user else actor_email)[:254],
        "action": action,
        "resource": resource[:200],
        "outcome": str(outcome),
        "ip": client_ip(request) if request is not None else "",
        "user_agent": (request.headers.get("User-Agent", "") if request is not None else "")[:300],
        "request_id": getattr(request, "request_id", "") if request is not None else "",
        "metadata": _scrub(metadata or {}),
        # Millisecond precision: what MongoDB stores, so the hash recomputes identically after a round trip.
        "created_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
    }
    document = {"_id": ObjectId(), **fields}
    # The open transaction's session, if any: the event commits or rolls back with the action.
    session = connection.session if connection.in_atomic_block_mongo else None
    connection.database[INBOX_COLLECTION].insert_one(document, session=session)
    event = AuditEvent(id=document["_id"], sequence=None, previous_hash="", hash="", **fields)
    event._state.adding = False  # stored: `save()` refuses it like any other event
    event._state.db = connection.alias
    return event


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
