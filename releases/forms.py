"""Page forms of the releases app. They parse input; the services check every value against the rule table
(releases/rules.py) and do the writing, so a page refuses a value with the same code as the API and the importer.

Text fields carry the rule table's limits as the browser's `maxlength` only: the server-side check is the service's
(which also lets a value an older rule let in, saved unchanged, pass). No HTML `pattern` on the key, for that
reason."""

from __future__ import annotations

from django import forms

from releases import rules
from releases.models import Priority, ReleaseCandidate, RunStatus, TestSuite
from releases.selectors import CASE_SORTS, STATUS_FILTERS


def _text(limit: int, **options) -> forms.CharField:
    """A text field whose limit (from the rule table) the browser enforces and the service checks."""
    return forms.CharField(widget=forms.TextInput(attrs={"maxlength": limit}), **options)


class SuiteForm(forms.Form):
    name = _text(rules.SUITE_NAME_MAX_LENGTH)
    product = _text(rules.PRODUCT_MAX_LENGTH)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class CaseForm(forms.Form):
    suite = forms.ModelChoiceField(queryset=TestSuite.objects.all(), to_field_name="pk")
    key = _text(rules.KEY_MAX_LENGTH, help_text=f"Unique within the suite, e.g. LOGIN-001. {rules.KEY_PATTERN_MESSAGE}")
    title = _text(rules.TITLE_MAX_LENGTH)
    category = _text(rules.CATEGORY_MAX_LENGTH)
    owner = _text(rules.OWNER_MAX_LENGTH)
    task = _text(rules.TASK_MAX_LENGTH, required=False)
    # An integer, not a choice: the range is the rule table's (code "invalid_priority", checked by the service).
    priority = forms.IntegerField(widget=forms.Select(choices=Priority.choices), initial=Priority.P3)
    tags = forms.CharField(
        required=False,
        help_text=f"Comma separated; at most {rules.TAGS_MAX} tags of {rules.TAG_MAX_LENGTH} characters.",
    )

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]


class RunForm(forms.Form):
    release_candidate = forms.ModelChoiceField(
        queryset=ReleaseCandidate.objects.order_by("-sequence"), to_field_name="pk", label="RC"
    )
    status = forms.ChoiceField(choices=RunStatus.choices)
    mantis_ids = forms.CharField(
        required=False,
        label="Mantis ids",
        help_text=f"Comma separated issue numbers (at most {rules.MANTIS_IDS_PER_RUN_MAX}).",
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": rules.NOTES_MAX_LENGTH}), required=False
    )

    def __init__(self, *args, product: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if product is not None:
            # The choices shown: the product's RCs (and any RC still without a product). A posted RC of another
            # product is refused by the service with its code ("rc_product_mismatch"), not as an unknown choice.
            field = self.fields["release_candidate"]
            field.queryset = field.queryset.filter(product__in=[product, ""])

    def clean_mantis_ids(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["mantis_ids"].replace(";", ",").split(",") if part.strip()]


class ReleaseCandidateForm(forms.Form):
    name = _text(rules.RC_NAME_MAX_LENGTH)
    state = forms.ChoiceField(choices=ReleaseCandidate.State.choices, initial=ReleaseCandidate.State.TESTING)


class ReleaseCandidateCreateForm(ReleaseCandidateForm):
    """A new RC: its name, state and product (one of the products that have suites)."""

    product = forms.ChoiceField(choices=())

    def __init__(self, *args, **kwargs) -> None:
        from releases.selectors import products_list

        super().__init__(*args, **kwargs)
        self.fields["product"].choices = [(product, product) for product in products_list()]


class GridStatusForm(forms.Form):
    """One click in the run grid: a case, an RC and a status."""

    case = forms.CharField(max_length=24)
    release_candidate = forms.ModelChoiceField(queryset=ReleaseCandidate.objects.all(), to_field_name="pk")
    status = forms.ChoiceField(choices=RunStatus.choices)
    # The fail form of a row also sends the Mantis ids and a note (checked by the service, like the case page's).
    mantis_ids = forms.CharField(required=False, max_length=400)
    notes = forms.CharField(required=False, max_length=rules.NOTES_MAX_LENGTH)

    def clean_mantis_ids(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["mantis_ids"].replace(";", ",").split(",") if part.strip()]


class CaseFilterForm(forms.Form):
    """The case list / run grid filters, all in the URL so a view can be shared."""

    product = forms.CharField(required=False, max_length=rules.PRODUCT_MAX_LENGTH)
    suite = forms.CharField(required=False, max_length=24)
    category = forms.CharField(required=False, max_length=rules.CATEGORY_MAX_LENGTH)
    owner = forms.CharField(required=False, max_length=rules.OWNER_MAX_LENGTH)
    rc = forms.CharField(required=False, max_length=rules.RC_NAME_MAX_LENGTH, label="RC")
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
