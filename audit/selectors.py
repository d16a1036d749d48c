"""Reading the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from django.db.models import QuerySet

from audit.models import AuditEvent
from audit.services import GENESIS_HASH, event_hash


@dataclass
class ChainReport:
    checked: int
    first_broken_sequence: int | None
    reason: str = ""
    unsealed: int = 0  # events recorded but not sealed yet (not part of the chain that was checked)

    @property
    def ok(self) -> bool:
        return self.first_broken_sequence is None


def audit_chain_verify(*, seal: bool = True) -> ChainReport:
    """Walk the chain from the first event; report the first event whose hash, link or sequence is wrong, and how
    many recorded events are not sealed yet. With `seal` (the default) pending events are sealed first, like any
    reader; `seal=False` checks the trail as it is, without writing.

    The chain's end is checked against the chain head (written only together with the events it points to): a
    deleted newest event, or one added after it, is found too."""
    from audit.sealing import audit_seal_pending, pending_count
    from audit.services import CHAIN_HEAD_COLLECTION, audit_connection

    connection = audit_connection()
    if seal:
        audit_seal_pending()
    heads = connection.database[CHAIN_HEAD_COLLECTION]
    head = heads.find_one({"_id": "head"})
    events = AuditEvent._base_manager.order_by("sequence")
    if head is not None:
        events = events.filter(sequence__lte=head["sequence"])  # events sealed while walking are not in this check
    previous_hash = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for event in events.iterator(chunk_size=2000):
        if event.sequence != expected_sequence:
            return ChainReport(checked, expected_sequence, "an event is missing", pending_count())
        if event.previous_hash != previous_hash:
            return ChainReport(checked, event.sequence, "the link to the previous event is broken", pending_count())
        if event_hash(event) != event.hash:
            return ChainReport(checked, event.sequence, "the event's content was modified", pending_count())
        previous_hash = event.hash
        expected_sequence += 1
        checked += 1
    if head is not None:
        if head["sequence"] >= expected_sequence:
            return ChainReport(checked, expected_sequence, "an event is missing", pending_count())
        if head["hash"] != previous_hash:
            return ChainReport(
                checked, head["sequence"], "the chain head does not match the newest event", pending_count()
            )
        # Only the sealer writes events, and only together with the head: one beyond the head now is forged.
        beyond = list(AuditEvent._base_manager.filter(sequence__gt=head["sequence"]).values_list("sequence", flat=True))
        if beyond:
            now = heads.find_one({"_id": "head"}) or head
            added = sorted(sequence for sequence in beyond if sequence > now["sequence"])
            if added:
                return ChainReport(checked, added[0], "an event was added after the chain head", pending_count())
    return ChainReport(checked, None, unsealed=pending_count())


PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


@dataclass
class AuditEventPage:
    events: list[AuditEvent]
    next_before: int | None


def audit_event_filter(
    *,
    actor: str = "",
    action: str = "",
    resource: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    up_to_sequence: int | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching the filters, newest first. `actor` matches a user id exactly or part of an email (any
    case); `action` and `resource` match a prefix (`login` finds `login.success` and `login.failure`); `since`
    is inclusive, `until` exclusive."""
    events = AuditEvent.objects.order_by("-sequence")
    if actor:
        events = (
            events.filter(actor_id=actor) if ObjectId.is_valid(actor) else events.filter(actor_email__icontains=actor)
        )
    if action:
        events = events.filter(action__startswith=action)
    if resource:
        events = events.filter(resource__startswith=resource)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    if up_to_sequence is not None:
        events = events.filter(sequence__lte=up_to_sequence)
    return events


def audit_event_page(
    *, events: QuerySet[AuditEvent], before: int | None = None, limit: int = PAGE_SIZE_DEFAULT
) -> AuditEventPage:
    """One keyset page of `events` (newest first): the events with a sequence below `before`. The cost of a page
    does not grow with how deep it is."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    if before is not None:
        events = events.filter(sequence__lt=before)
    rows = list(events[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return AuditEventPage(events=rows, next_before=rows[-1].sequence if has_more else None)


def audit_last_sequence() -> int:
    """The sequence of the newest event (0 for an empty trail), once pending events are sealed; from the chain head
    document (one read, whatever the trail's size), or from the events themselves when there is no head yet."""
    from audit.sealing import audit_seal_pending_quietly
    from audit.services import CHAIN_HEAD_COLLECTION, audit_connection

    connection = audit_connection()
    if not connection.in_atomic_block_mongo:
        audit_seal_pending_quietly()
    head = connection.database[CHAIN_HEAD_COLLECTION].find_one({"_id": "head"}, {"sequence": 1})
    if head is not None:
        return head["sequence"]
    last = AuditEvent._base_manager.order_by("-sequence").only("sequence").first()
    return last.sequence if last else 0
