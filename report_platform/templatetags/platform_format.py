"""Template filters shared by every app's pages."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def iso_datetime(value: object) -> datetime | object:
    """An ISO 8601 string (as selectors hand to JSON) as an aware datetime, so `date` / `timeuntil` can format it
    for people; anything else is returned unchanged."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return value
    parsed = parse_datetime(value)
    if parsed is None:
        return value
    return timezone.make_aware(parsed, UTC) if timezone.is_naive(parsed) else parsed
