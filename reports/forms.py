"""Page forms of the reports app: they parse input; the services validate again and do the work."""

from __future__ import annotations

from django import forms

from releases.models import ReleaseCandidate, TestSuite
from reports.models import ReportStatus


def _rc_choices(blank: str) -> list[tuple[str, str]]:
    return [("", blank)] + [(str(rc.pk), rc.name) for rc in ReleaseCandidate.objects.order_by("-sequence")]


def _suite_choices(first: tuple[str, str]) -> list[tuple[str, str]]:
    return [first] + [(str(suite.pk), str(suite)) for suite in TestSuite.objects.order_by("product", "name")]


class ReportForm(forms.Form):
    release_candidate = forms.ChoiceField(label="Release candidate")
    suite = forms.ChoiceField(label="Suite", required=False)
    baseline = forms.ChoiceField(label="Compare with", required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["release_candidate"].choices = _rc_choices("Choose a release candidate")
        self.fields["suite"].choices = _suite_choices(("all", "All suites"))
        self.fields["baseline"].choices = _rc_choices("The previous release candidate")


class ReportFilterForm(forms.Form):
    release_candidate = forms.ChoiceField(label="Release candidate", required=False)
    suite = forms.ChoiceField(label="Suite", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *ReportStatus.choices])
    mine = forms.BooleanField(label="Only mine", required=False)
    before = forms.CharField(required=False, widget=forms.HiddenInput, max_length=24)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["release_candidate"].choices = _rc_choices("Any release candidate")
        self.fields["suite"].choices = [("", "Any scope"), *_suite_choices(("all", "All suites"))]
