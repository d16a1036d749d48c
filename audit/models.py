"""The immutable audit trail (`auditEvents`). Each event carries the hash of the previous one (a hash chain), so a
modified or deleted event is detected by `manage.py audit_verify`.

Events are recorded unsealed (`auditInbox`, audit/services.py) and sealed into this chain by one sealer
(audit/sealing.py); `AuditEvent.objects` seals what is pending first, so readers see every recorded event."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ImmutableEventError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableEventError("Audit events cannot be changed.")

    def delete(self):
        raise ImmutableEventError("Audit events cannot be deleted.")


class AuditEventManager(models.Manager.from_queryset(AuditEventQuerySet)):
    """Read-your-writes: events still in the inbox are sealed before any queryset is built, so the audit page, the
    export, the admin, `audit_verify` and tests see every event recorded so far. Never inside an open transaction
    (the chain head is not written in a user's transaction); then the sealed trail is what is read."""

    def get_queryset(self):
        from audit.services import audit_connection

        if not audit_connection().in_atomic_block_mongo:
            from audit.sealing import audit_seal_pending_quietly

            audit_seal_pending_quietly()
        return super().get_queryset()


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    sequence = models.PositiveBigIntegerField(unique=True)
    actor_id = models.CharField(max_length=24, blank=True, db_index=True)
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    resource = models.CharField(max_length=200, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventManager()

    class Meta:
        db_table = "auditEvents"
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.resource} ({self.outcome})"

    def save(self, *args, **kwargs):
        # Append-only: a stored event is never saved again.
        if not self._state.adding:
            raise ImmutableEventError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableEventError("Audit events cannot be deleted.")
