"""Page forms of the reports app: they parse input; the services validate again and do the work."""

from __future__ import annotations

from django import forms

from releases.models import ReleaseCandidate, TestSuite
from reports.models import ReportEdition, ReportStatus


def _rc_choices(blank: str, product: str | None = None) -> list[tuple[str, str]]:
    rcs = ReleaseCandidate.objects.order_by("-sequence")
    if product is not None:
        rcs = rcs.filter(product=product)
    return [("", blank)] + [(str(rc.pk), rc.name) for rc in rcs]


def _suite_choices(first: tuple[str, str], product: str | None = None) -> list[tuple[str, str]]:
    suites = TestSuite.objects.order_by("product", "name")
    if product is not None:
        suites = suites.filter(product=product)
    return [first] + [(str(suite.pk), str(suite)) for suite in suites]


class ReportForm(forms.Form):
    """A report of one product: its RCs, its suites, a baseline among its RCs (`product` None: every product's,
    the service refuses a mixed choice)."""

    release_candidate = forms.ChoiceField(label="Release candidate")
    suite = forms.ChoiceField(label="Suite", required=False)
    baseline = forms.ChoiceField(label="Compare with", required=False)
    edition = forms.ChoiceField(
        label="Edition", choices=ReportEdition.choices, initial=ReportEdition.SHORT, required=False
    )

    def __init__(self, *args, product: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A form posted from another product's page still validates: the service checks the combination.
        shown = product if not self.is_bound else None
        self.fields["release_candidate"].choices = _rc_choices("Choose a release candidate", shown)
        self.fields["suite"].choices = _suite_choices(("all", "All suites of the product"), shown)
        self.fields["baseline"].choices = _rc_choices("The previous release candidate", shown)


class ReportFilterForm(forms.Form):
    """Filters of the reports list; its choices are the RCs and suites of the page's product."""

    release_candidate = forms.ChoiceField(label="Release candidate", required=False)
    suite = forms.ChoiceField(label="Suite", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *ReportStatus.choices])
    mine = forms.BooleanField(label="Only mine", required=False)
    before = forms.CharField(required=False, widget=forms.HiddenInput, max_length=24)

    def __init__(self, *args, product: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["release_candidate"].choices = _rc_choices("Any release candidate", product)
        self.fields["suite"].choices = [("", "Any scope"), *_suite_choices(("all", "All suites"), product)]
