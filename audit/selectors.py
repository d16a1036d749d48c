"""Reading the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from audit.models import AuditEvent
from audit.services import GENESIS_HASH, event_hash


@dataclass
class ChainReport:
    checked: int
    first_broken_sequence: int | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_sequence is None


def audit_chain_verify() -> ChainReport:
    """Walk the chain from the first event; report the first event whose hash, link or sequence is wrong."""
    previous_hash = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000):
        if event.sequence != expected_sequence:
            return ChainReport(checked, expected_sequence, "an event is missing")
        if event.previous_hash != previous_hash:
            return ChainReport(checked, event.sequence, "the link to the previous event is broken")
        if event_hash(event) != event.hash:
            return ChainReport(checked, event.sequence, "the event's content was modified")
        previous_hash = event.hash
        expected_sequence += 1
        checked += 1
    return ChainReport(checked, None)
