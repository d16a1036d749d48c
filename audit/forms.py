"""The audit page's filter form (GET parameters)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=254, label="Actor (email or user id)")
    action = forms.CharField(required=False, max_length=64, label="Action")
    resource = forms.CharField(required=False, max_length=200, label="Resource")
    date_from = forms.DateField(required=False, label="From (UTC)", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(
        required=False, label="To (UTC, inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `audit_event_filter` (call after `is_valid()`)."""
        data = self.cleaned_data
        date_from, date_to = data.get("date_from"), data.get("date_to")
        return {
            "actor": data.get("actor", "").strip(),
            "action": data.get("action", "").strip(),
            "resource": data.get("resource", "").strip(),
            "since": datetime.combine(date_from, time.min, tzinfo=UTC) if date_from else None,
            "until": datetime.combine(date_to, time.min, tzinfo=UTC) + timedelta(days=1) if date_to else None,
        }

    def filter_params(self) -> dict[str, str]:
        """The filters as query-string values (without the page cursor), for links and the export."""
        data = self.cleaned_data
        params = {name: str(data.get(name) or "").strip() for name in ("actor", "action", "resource")}
        params["date_from"] = data["date_from"].isoformat() if data.get("date_from") else ""
        params["date_to"] = data["date_to"].isoformat() if data.get("date_to") else ""
        return {name: value for name, value in params.items() if value}
