"""Page forms of the releases app. They parse input; the services validate again and do the writing."""

from __future__ import annotations

from django import forms

from releases.models import Priority, ReleaseCandidate, RunStatus, TestSuite
from releases.selectors import CASE_SORTS, STATUS_FILTERS


class SuiteForm(forms.Form):
    name = forms.CharField(max_length=200)
    product = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class CaseForm(forms.Form):
    suite = forms.ModelChoiceField(queryset=TestSuite.objects.all(), to_field_name="pk")
    key = forms.CharField(max_length=64, help_text="Unique within the suite, e.g. LOGIN-001.")
    title = forms.CharField(max_length=300)
    category = forms.CharField(max_length=100)
    owner = forms.CharField(max_length=150)
    task = forms.CharField(max_length=200, required=False)
    priority = forms.TypedChoiceField(choices=Priority.choices, coerce=int, initial=Priority.P3)
    tags = forms.CharField(required=False, help_text="Comma separated.", max_length=1100)

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]


class RunForm(forms.Form):
    release_candidate = forms.ModelChoiceField(
        queryset=ReleaseCandidate.objects.order_by("-sequence"), to_field_name="pk", label="RC"
    )
    status = forms.ChoiceField(choices=RunStatus.choices)
    mantis_ids = forms.CharField(required=False, label="Mantis ids", help_text="Comma separated issue numbers.")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=5000)

    def clean_mantis_ids(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["mantis_ids"].replace(";", ",").split(",") if part.strip()]


class ReleaseCandidateForm(forms.Form):
    name = forms.CharField(max_length=64)
    state = forms.ChoiceField(choices=ReleaseCandidate.State.choices, initial=ReleaseCandidate.State.TESTING)


class GridStatusForm(forms.Form):
    """One click in the run grid: a case, an RC and a status."""

    case = forms.CharField(max_length=24)
    release_candidate = forms.ModelChoiceField(queryset=ReleaseCandidate.objects.all(), to_field_name="pk")
    status = forms.ChoiceField(choices=RunStatus.choices)


class CaseFilterForm(forms.Form):
    """The case list / run grid filters, all in the URL so a view can be shared."""

    suite = forms.CharField(required=False, max_length=24)
    category = forms.CharField(required=False, max_length=100)
    owner = forms.CharField(required=False, max_length=150)
    rc = forms.CharField(required=False, max_length=64, label="RC")
    status = forms.ChoiceField(
        required=False, choices=[("", "any")] + [(s, s.replace("_", " ")) for s in STATUS_FILTERS]
    )
    q = forms.CharField(required=False, max_length=100, label="Search")
    sort = forms.ChoiceField(required=False, choices=[(name, name) for name in CASE_SORTS])
    cursor = forms.CharField(required=False, max_length=400)
    limit = forms.IntegerField(required=False, min_value=1, max_value=200)
    deleted = forms.BooleanField(required=False, label="Include deleted")


class BulkStatusForm(forms.Form):
    release_candidate = forms.ModelChoiceField(queryset=ReleaseCandidate.objects.all(), to_field_name="pk")
    status = forms.ChoiceField(choices=RunStatus.choices)
