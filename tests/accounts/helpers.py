"""Shared helpers of the accounts tests."""

from __future__ import annotations

import re
import time

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail

from audit.models import AuditEvent


def totp_now(secret: str) -> str:
    """The current TOTP code, computed with allauth's own functions."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))


def last_link(pattern: str) -> str:
    """The path of the last link in the outbox matching `pattern` (e.g. "/accounts/confirm-email/")."""
    for message in reversed(mail.outbox):
        found = re.search(r"https?://[^/\s]+(" + re.escape(pattern) + r"[^\s]*)", message.body)
        if found:
            return found.group(1)
    raise AssertionError(f"no mail with a link to {pattern}")


def events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("sequence"))
