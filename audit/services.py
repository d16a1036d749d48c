"""Writing audit events. Services of every app call `audit_record` explicitly for the action they perform."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from report_platform.client_ip import client_ip

GENESIS_HASH = "0" * 64
# Keys whose values never reach the trail, whatever a caller passes in metadata.
_SECRET_KEYS = ("password", "token", "secret", "key", "code", "otp", "authorization", "cookie")


def _scrub(metadata: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            clean[key] = "[redacted]"
        elif isinstance(value, dict):
            clean[key] = _scrub(value)
        else:
            clean[key] = value
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
    # The unique sequence makes concurrent writers retry instead of forking the chain.
    for _attempt in range(50):
        last = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
        event = AuditEvent(
            sequence=(last.sequence + 1) if last else 1,
            previous_hash=last.hash if last else GENESIS_HASH,
            **fields,
        )
        event.hash = event_hash(event)
        try:
            event.save(force_insert=True)
            return event
        except IntegrityError:
            continue
    raise RuntimeError("Could not append to the audit chain after 50 attempts")
