"""Writes of the releases app. Each service checks the actor's role, validates, writes and records exactly one
audit event, in the same transaction as the write where the write is transactional.

Runs and case visibility go through `releases.store` (one transaction per action, a summary delta in the outbox;
see its docstring for the write path). Summary documents (`QualitySummary`, collection `qualitySummaries`) hold,
per RC and suite, the counts of the latest run statuses in total ("all") and per owner / category; they are kept by
the store's applier, and `summaries_rebuild` recomputes them from the raw runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import HttpRequest
from django.utils import timezone

from accounts.permissions import require_role
from audit.models import AuditEvent
from audit.services import audit_record
from releases import rules, store
from releases.models import KnownIssue, ReleaseCandidate, RunStatus, TestCase, TestRun, TestSuite
from report_platform.errors import Conflict, Forbidden, NotAuthenticated, ServiceUnavailable, ValidationFailed

# Field limits come from the one rule table (releases/rules.py); the names stay for existing callers.
MANTIS_ID_MAX = rules.MANTIS_ID_MAX
MANTIS_IDS_PER_RUN_MAX = rules.MANTIS_IDS_PER_RUN_MAX
NOTES_MAX_LENGTH = rules.NOTES_MAX_LENGTH
TAGS_MAX = rules.TAGS_MAX
BULK_RECORD_MAX = 1000
_KEY_PATTERN = rules.KEY_PATTERN
CASE_EDITABLE_FIELDS = ("suite", "key", "title", "category", "task", "owner", "priority", "tags")


# --- helpers -----------------------------------------------------------------------------------------------------


def _require(actor, role: str, *, action: str, resource: str, request: HttpRequest | None) -> None:
    """Role check that leaves a `denied` audit event behind when a signed-in user lacks the role."""
    try:
        require_role(actor, role)
    except Forbidden:
        audit_record(action=action, actor=actor, resource=resource, outcome=AuditEvent.Outcome.DENIED, request=request)
        raise
    except NotAuthenticated:
        raise


def _fields_from(error: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return {
            field: [str(message) for e in errors for message in e.messages]
            for field, errors in error.error_dict.items()
        }
    return {"__all__": [str(message) for message in error.messages]}


_RULES_BY_MODEL = {
    TestCase: rules.CASE_TEXT,
    TestSuite: rules.SUITE_TEXT,
    ReleaseCandidate: rules.RELEASE_CANDIDATE_TEXT,
}


def _rule_fields(instance, text) -> list[str]:
    return [*text, *(("priority", "tags") if isinstance(instance, TestCase) else ())]


def _stored_values(instance, names: list[str]) -> dict[str, Any] | None:
    """The instance's values as saved (None for a new one), to tell changed fields from unchanged ones."""
    if instance._state.adding or instance.pk is None:
        return None
    return type(instance).objects.filter(pk=instance.pk).values(*names).first()


_READ_STORED = object()


def _validate(instance, *, exclude: Iterable[str] = (), stored: dict[str, Any] | object | None = _READ_STORED) -> None:
    """The rule table (releases/rules.py: lengths, key and RC name patterns, priority, tags) and then model
    validation (required values, choices, foreign keys, unique constraints), each as one coded error.

    A field that still holds its stored value is not judged by the rule table again: data an older rule let in
    (a key `LOGIN 001` from an earlier import) stays editable; a new or changed value must follow the rules. A
    caller that has just read the stored values passes them as `stored`, saving the read."""
    text = _RULES_BY_MODEL.get(type(instance))
    if text is not None:
        names = _rule_fields(instance, text)
        if stored is _READ_STORED:
            stored = _stored_values(instance, names)
        rules.check_values({name: getattr(instance, name) for name in names}, text=text, stored=stored)
    try:
        instance.full_clean(exclude=list(exclude))
    except DjangoValidationError as error:
        fields = _fields_from(error)
        if any("already exists" in message for messages in fields.values() for message in messages):
            raise Conflict("An object with these identifying fields already exists.", code="duplicate", fields=fields)
        raise ValidationFailed(fields=fields)


def _to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _clean_mantis_ids(mantis_ids: Iterable[Any]) -> list[int]:
    """Distinct Mantis ids as ints (rule table: code "invalid_mantis_id")."""
    return rules.clean_mantis_ids(mantis_ids)


def _clean_tags(tags: Iterable[Any]) -> list[str]:
    """Trimmed, distinct tags, each within the rule table's length (code "invalid_tag"). The number of tags is
    checked by `_validate`, which knows the stored tags (an unchanged list an older rule let in passes)."""
    return rules.clean_tags(tags, check_count=False)


def _check_key(key: str) -> None:
    """A case key's length (code "too_long"). Its pattern (code "invalid_key") is checked by `_validate`, which
    knows the stored key: an unchanged key an older rule let in passes, a new or changed one must match."""
    if len(key or "") > rules.KEY_MAX_LENGTH:
        rules.KEY.check(key, field="key")


# --- suites ------------------------------------------------------------------------------------------------------


def suite_create(
    *, name: str, product: str, description: str = "", actor, request: HttpRequest | None = None
) -> TestSuite:
    """Create a test suite. Raises `ValidationFailed` for bad fields, `Conflict` (code "duplicate") when the product
    already has a suite of that name."""
    _require(actor, "reviewer", action="suite.create", resource="suite:new", request=request)
    suite = TestSuite(
        name=(name or "").strip(), product=(product or "").strip(), description=description or "", created_by=actor
    )
    _validate(suite, exclude=["created_by"])
    suite.save()
    audit_record(
        action="suite.create",
        actor=actor,
        resource=f"suite:{suite.pk}",
        request=request,
        metadata={"name": suite.name, "product": suite.product},
    )
    return suite


def suite_update(
    *,
    suite: TestSuite,
    actor,
    request: HttpRequest | None = None,
    name: str | None = None,
    product: str | None = None,
    description: str | None = None,
) -> TestSuite:
    """Change a suite's name, product or description (only the arguments given)."""
    _require(actor, "reviewer", action="suite.update", resource=f"suite:{suite.pk}", request=request)
    before = {"name": suite.name, "product": suite.product, "description": suite.description}
    candidate = TestSuite.objects.get(pk=suite.pk)
    if name is not None:
        candidate.name = name.strip()
    if product is not None:
        candidate.product = product.strip()
    if description is not None:
        candidate.description = description
    _validate(candidate, exclude=["created_by"])
    candidate.save()
    changed = [field for field, value in before.items() if getattr(candidate, field) != value]
    audit_record(
        action="suite.update",
        actor=actor,
        resource=f"suite:{suite.pk}",
        request=request,
        metadata={"changed": changed},
    )
    return candidate


# --- release candidates ------------------------------------------------------------------------------------------


def release_candidate_create(
    *,
    name: str,
    product: str = "",
    sequence: int | None = None,
    state: str = ReleaseCandidate.State.TESTING,
    actor,
    request: HttpRequest | None = None,
) -> ReleaseCandidate:
    """Create an RC of `product`. Without `sequence` it goes after the newest RC (sequence + 10), so "previous RC"
    is defined."""
    _require(actor, "reviewer", action="rc.create", resource="rc:new", request=request)
    if sequence is None:
        last = ReleaseCandidate.objects.order_by("-sequence").first()
        sequence = rules.next_rc_sequence(last.sequence if last else None)
    if ReleaseCandidate.objects.filter(sequence=sequence).exists():
        raise Conflict(
            "Another RC already has this position.",
            code="duplicate_sequence",
            fields={"sequence": ["Another RC already has this position."]},
        )
    release_candidate = ReleaseCandidate(
        name=(name or "").strip(), product=(product or "").strip(), sequence=sequence, state=state
    )
    rules.PRODUCT.check(release_candidate.product, field="product")
    _validate(release_candidate)
    release_candidate.save()
    audit_record(
        action="rc.create",
        actor=actor,
        resource=f"rc:{release_candidate.pk}",
        request=request,
        metadata={
            "name": release_candidate.name,
            "product": release_candidate.product,
            "sequence": sequence,
            "state": state,
        },
    )
    return release_candidate


def release_candidate_update(
    *,
    release_candidate: ReleaseCandidate,
    actor,
    request: HttpRequest | None = None,
    name: str | None = None,
    state: str | None = None,
    product: str | None = None,
) -> ReleaseCandidate:
    """Rename an RC, change its state (planned / testing / released / rejected) or set its product (the admin
    assigns one to an RC that migration 0006 left without)."""
    _require(actor, "reviewer", action="rc.update", resource=f"rc:{release_candidate.pk}", request=request)
    candidate = ReleaseCandidate.objects.get(pk=release_candidate.pk)
    before = {"name": candidate.name, "state": candidate.state, "product": candidate.product}
    if name is not None:
        candidate.name = name.strip()
    if state is not None:
        candidate.state = state
    if product is not None:
        candidate.product = product.strip()
        rules.PRODUCT.check(candidate.product, field="product")
    _validate(candidate)
    candidate.save()
    audit_record(
        action="rc.update",
        actor=actor,
        resource=f"rc:{candidate.pk}",
        request=request,
        metadata={
            "before": before,
            "after": {"name": candidate.name, "state": candidate.state, "product": candidate.product},
        },
    )
    return candidate


def release_candidate_move(
    *, release_candidate: ReleaseCandidate, direction: str, actor, request: HttpRequest | None = None
) -> ReleaseCandidate:
    """Swap an RC's position with its neighbour among the RCs of its product (`direction` "up" = earlier, "down" =
    later). Moving the first RC up or the last one down changes nothing and raises `Conflict` (code
    "cannot_move")."""
    _require(actor, "reviewer", action="rc.move", resource=f"rc:{release_candidate.pk}", request=request)
    if direction not in ("up", "down"):
        raise ValidationFailed(code="invalid_direction", fields={"direction": ["Use 'up' or 'down'."]})
    current = ReleaseCandidate.objects.get(pk=release_candidate.pk)
    siblings = ReleaseCandidate.objects.filter(product=current.product)  # the order that matters is the product's
    if direction == "up":
        neighbour = siblings.filter(sequence__lt=current.sequence).order_by("-sequence").first()
    else:
        neighbour = siblings.filter(sequence__gt=current.sequence).order_by("sequence").first()
    if neighbour is None:
        raise Conflict("This RC is already at that end of the order.", code="cannot_move")

    def work(session) -> None:
        ReleaseCandidate.objects.filter(pk=current.pk).update(sequence=neighbour.sequence)
        ReleaseCandidate.objects.filter(pk=neighbour.pk).update(sequence=current.sequence)
        audit_record(
            action="rc.move",
            actor=actor,
            resource=f"rc:{current.pk}",
            request=request,
            metadata={"direction": direction, "swapped_with": str(neighbour.pk)},
        )

    store.in_transaction(work)
    current.sequence = neighbour.sequence
    return current


# --- cases -------------------------------------------------------------------------------------------------------


def case_create(
    *,
    suite: TestSuite,
    key: str,
    title: str,
    category: str,
    owner: str,
    task: str = "",
    priority: int = 3,
    tags: Iterable[str] = (),
    actor,
    request: HttpRequest | None = None,
) -> TestCase:
    """Create a test case in `suite`. `key` is unique within the suite (`Conflict` code "duplicate" otherwise)."""
    _require(actor, "reviewer", action="case.create", resource="case:new", request=request)
    key = (key or "").strip()
    _check_key(key)
    case = TestCase(
        suite=suite,
        key=key,
        title=(title or "").strip(),
        category=(category or "").strip(),
        owner=(owner or "").strip(),
        task=(task or "").strip(),
        priority=priority,
        tags=_clean_tags(tags),
        created_by=actor,
    )
    _validate(case, exclude=["created_by"])

    def work(session) -> None:
        case.pk = None
        case.save(force_insert=True)
        store.case_counts_record([(_count_fields(case), 1)])
        audit_record(
            action="case.create",
            actor=actor,
            resource=f"case:{case.pk}",
            request=request,
            metadata={"suite": str(suite.pk), "key": case.key},
        )

    try:
        store.in_transaction(work)
    except IntegrityError:
        raise Conflict("A case with this key already exists in the suite.", code="duplicate")
    return case


def case_update(*, case: TestCase, actor, request: HttpRequest | None = None, **changes: Any) -> TestCase:
    """Change some of a case's fields (`suite`, `key`, `title`, `category`, `task`, `owner`, `priority`, `tags`).
    Any other name (e.g. `is_deleted`, `created_by`) is rejected with `ValidationFailed` (code "unknown_field").
    Runs already recorded keep the owner/category/suite copied at record time (new runs use the new values); a new
    key is written onto all the case's runs in the same transaction."""
    _require(actor, "reviewer", action="case.update", resource=f"case:{case.pk}", request=request)
    unknown = sorted(set(changes) - set(CASE_EDITABLE_FIELDS))
    if unknown:
        raise ValidationFailed(
            "These fields cannot be changed here.",
            code="unknown_field",
            fields={name: ["This field cannot be changed."] for name in unknown},
        )
    candidate = TestCase.objects.get(pk=case.pk)
    if candidate.is_deleted:
        raise Conflict("Deleted cases cannot be edited; restore it first.", code="case_deleted")
    before = {name: getattr(candidate, name if name != "suite" else "suite_id") for name in changes}
    stored = {name: copy.copy(getattr(candidate, name)) for name in _rule_fields(candidate, rules.CASE_TEXT)}
    for name, value in changes.items():
        if name == "tags":
            value = _clean_tags(value)
        elif name == "key":
            value = (value or "").strip()
            _check_key(value)
        elif isinstance(value, str):
            value = value.strip()
        setattr(candidate, name, value)
    changed = [
        name for name, value in before.items() if getattr(candidate, name if name != "suite" else "suite_id") != value
    ]
    # The suite's existence and the (suite, key) uniqueness are asked of the database only when one of them changes.
    unchanged_identity = [name for name in ("suite", "key") if name not in changed]
    _validate(candidate, exclude=["created_by", *unchanged_identity], stored=stored)
    updated_at = _to_millis(timezone.now())

    moves_counts = bool({"suite", "owner", "category"} & set(changed))

    def work(session) -> None:
        if moves_counts:  # read inside the transaction: a concurrent edit of the case makes this one run again
            store.case_counts_move(case_id=candidate.pk, to=_count_fields(candidate))
        # Only the changed fields: a concurrent delete, restore or run of this case is never overwritten.
        saved = TestCase.objects.filter(pk=candidate.pk, is_deleted=False).update(
            updated_at=updated_at, **{name: getattr(candidate, name) for name in changed}
        )
        if saved != 1:
            raise Conflict("Deleted cases cannot be edited; restore it first.", code="case_deleted")
        if "key" in changed:
            store.runs_case_key_set(case_id=candidate.pk, key=candidate.key)
        audit_record(
            action="case.update",
            actor=actor,
            resource=f"case:{case.pk}",
            request=request,
            metadata={"changed": changed},
        )

    try:
        store.in_transaction(work)
    except IntegrityError:
        raise Conflict("A case with this key already exists in the suite.", code="duplicate")
    candidate.updated_at = updated_at
    if "suite" not in changed and TestCase.suite.is_cached(case):
        candidate.suite = case.suite
    return candidate


def _count_fields(case: TestCase) -> dict[str, Any]:
    """The fields of a case the case counts (coverage's "in scope") are kept by."""
    return {"suite_id": case.suite_id, "owner": case.owner, "category": case.category}


def _case_visibility(*, case: TestCase, deleted: bool, actor, request: HttpRequest | None) -> TestCase:
    action = "case.delete" if deleted else "case.restore"
    _require(actor, "admin", action=action, resource=f"case:{case.pk}", request=request)
    changed = store.case_visibility_set(
        case_id=case.pk,
        deleted=deleted,
        on_commit_audit=lambda: audit_record(action=action, actor=actor, resource=f"case:{case.pk}", request=request),
    )
    if not changed:
        if deleted:
            raise Conflict("The case is already deleted.", code="already_deleted")
        raise Conflict("The case is not deleted.", code="not_deleted")
    return TestCase.objects.get(pk=case.pk)


def case_delete(*, case: TestCase, actor, request: HttpRequest | None = None) -> TestCase:
    """Soft-delete a case (admin only): hidden from lists and removed from the metrics; its runs are kept. The
    flag, the summary deltas and the audit event are one transaction."""
    return _case_visibility(case=case, deleted=True, actor=actor, request=request)


def case_restore(*, case: TestCase, actor, request: HttpRequest | None = None) -> TestCase:
    """Restore a soft-deleted case (admin only): it reappears in lists and its latest runs count again."""
    return _case_visibility(case=case, deleted=False, actor=actor, request=request)


# --- runs --------------------------------------------------------------------------------------------------------


def _validate_run_input(*, status: str, mantis_ids: Iterable[Any], notes: str, executed_at: datetime | None):
    if status not in RunStatus.values:
        raise ValidationFailed(
            code="invalid_status", fields={"status": [f"Use one of: {', '.join(RunStatus.values)}."]}
        )
    cleaned_ids = _clean_mantis_ids(mantis_ids)
    notes = notes or ""
    if len(notes) > NOTES_MAX_LENGTH:
        raise ValidationFailed(code="notes_too_long", fields={"notes": [f"At most {NOTES_MAX_LENGTH} characters."]})
    now = timezone.now()
    if executed_at is None:
        executed_at = now
    if timezone.is_naive(executed_at):
        raise ValidationFailed(code="invalid_executed_at", fields={"executed_at": ["Give a time zone."]})
    if executed_at > now + timedelta(minutes=5):
        raise ValidationFailed(code="invalid_executed_at", fields={"executed_at": ["This time is in the future."]})
    return cleaned_ids, notes, _to_millis(executed_at)


def _check_product(*, products: Iterable[str], release_candidate: ReleaseCandidate) -> None:
    """A run's RC must be of its case's product (code "rc_product_mismatch"). `products` are the products of the
    cases' suites. An RC without a product (one migration 0006 could not assign) is not judged until the admin
    assigns it."""
    others = sorted({product for product in products if product != release_candidate.product})
    if release_candidate.product and others:
        raise ValidationFailed(
            f"{release_candidate.name} is an RC of {release_candidate.product}; this case belongs to "
            f"{', '.join(others)}. Choose an RC of the case's product.",
            code="rc_product_mismatch",
            fields={"release_candidate": [f"Choose an RC of {', '.join(others)}."]},
        )


def _append(runs: list[store.NewRun], *, audit, skip_deleted: bool = False) -> list[store.NewRun]:
    """`store.runs_append` with its exceptions as coded domain errors."""
    try:
        return store.runs_append(runs, on_commit_audit=audit, skip_deleted=skip_deleted)
    except store.CaseGone:
        raise Conflict("Runs cannot be recorded for a deleted case.", code="case_deleted")
    except store.StoreBusy:
        raise ServiceUnavailable(
            "This case is being written continuously by others; nothing was recorded. Try again.", code="busy"
        )


def _as_run(new: store.NewRun, *, case: TestCase, release_candidate: ReleaseCandidate, actor) -> TestRun:
    """The stored run as a model instance, without reading it back."""
    run = TestRun(
        id=new.run_id,
        case=case,
        release_candidate=release_candidate,
        status=new.status,
        mantis_ids=list(new.mantis_ids),
        notes=new.notes,
        executed_at=new.executed_at,
        executed_by=actor if new.executed_by_id is not None else None,
        suite_id=case.suite_id,
        owner=case.owner,
        category=case.category,
        case_key=case.key,
        is_latest=new.is_latest,
    )
    run._state.adding = False
    return run


def test_run_record(
    *,
    case: TestCase,
    release_candidate: ReleaseCandidate,
    status: str,
    mantis_ids: Iterable[Any] = (),
    notes: str = "",
    executed_at: datetime | None = None,
    actor,
    request: HttpRequest | None = None,
) -> TestRun:
    """Append a run of `case` for `release_candidate` and return it.

    The newest run (by `executed_at`, then id) of a (case, RC) pair is the latest (`is_latest=True`); a run
    back-dated before the current latest is stored as history only. The run, its case's latest flag, the summary
    delta and the audit event are written in one transaction (`releases.store.runs_append`); runs of other cases
    never conflict with it, and a concurrent run of the same pair is simply stored too. `executed_by` is the actor.
    Raises `ValidationFailed` (codes "invalid_status", "invalid_mantis_id", "notes_too_long",
    "invalid_executed_at", "rc_product_mismatch": the RC is of another product than the case) and `Conflict`
    ("case_deleted") without writing anything.
    """
    _require(actor, "reviewer", action="run.record", resource=f"case:{case.pk}", request=request)
    mantis, notes, executed_at = _validate_run_input(
        status=status, mantis_ids=mantis_ids, notes=notes, executed_at=executed_at
    )
    if case.is_deleted:
        raise Conflict("Runs cannot be recorded for a deleted case.", code="case_deleted")
    _check_product(products=[case.suite.product], release_candidate=release_candidate)
    new = store.NewRun(
        case_id=case.pk,
        release_candidate_id=release_candidate.pk,
        status=status,
        mantis_ids=mantis,
        notes=notes,
        executed_at=executed_at,
        executed_by_id=actor.pk if getattr(actor, "is_authenticated", False) else None,
    )

    def audit(stored: list[store.NewRun]) -> None:
        audit_record(
            action="run.record",
            actor=actor,
            resource=f"run:{new.run_id}",
            request=request,
            metadata={
                "case": str(case.pk),
                "rc": release_candidate.name,
                "status": status,
                "latest": stored[0].is_latest,
            },
        )

    _append([new], audit=audit)
    return _as_run(new, case=case, release_candidate=release_candidate, actor=actor)


def test_run_bulk_record(
    *,
    cases: Iterable[TestCase],
    release_candidate: ReleaseCandidate,
    status: str,
    notes: str = "",
    actor,
    request: HttpRequest | None = None,
) -> int:
    """Record the same status for many cases of an RC (the run grid's bulk action); returns how many runs were
    written. At most `BULK_RECORD_MAX` cases (`ValidationFailed` code "bulk_too_large" otherwise, nothing written).
    All runs, their deltas and the one audit event for the whole action are one transaction; cases deleted
    meanwhile are left out."""
    _require(actor, "reviewer", action="run.bulk_record", resource=f"rc:{release_candidate.pk}", request=request)
    mantis, notes, executed_at = _validate_run_input(status=status, mantis_ids=(), notes=notes, executed_at=None)
    cases = list({case.pk: case for case in cases if not case.is_deleted}.values())
    if len(cases) > BULK_RECORD_MAX:
        raise ValidationFailed(
            f"At most {BULK_RECORD_MAX} cases at once; narrow the filter.",
            code="bulk_too_large",
            fields={"__all__": [f"{len(cases)} cases match; the limit is {BULK_RECORD_MAX}."]},
        )
    if not cases:
        return 0
    suite_products = dict(
        TestSuite.objects.filter(pk__in={case.suite_id for case in cases}).values_list("pk", "product")
    )
    _check_product(products=suite_products.values(), release_candidate=release_candidate)
    executed_by_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    runs = [
        store.NewRun(
            case_id=case.pk,
            release_candidate_id=release_candidate.pk,
            status=status,
            mantis_ids=mantis,
            notes=notes,
            executed_at=executed_at,
            executed_by_id=executed_by_id,
        )
        for case in cases
    ]

    def audit(stored: list[store.NewRun]) -> None:
        audit_record(
            action="run.bulk_record",
            actor=actor,
            resource=f"rc:{release_candidate.pk}",
            request=request,
            metadata={"status": status, "count": len(stored)},
        )

    return len(_append(runs, audit=audit, skip_deleted=True))


# --- summaries ---------------------------------------------------------------------------------------------------


def summaries_rebuild(*, release_candidate_ids: list | None = None) -> None:
    """Recompute the metric summary documents from the raw runs, for the given RC ids (ObjectIds, 24-hex strings
    or RCs) or for every RC when None (`releases.store.summaries_rebuild`). Idempotent; safe at any time, also
    while runs are being recorded."""
    ids = None
    if release_candidate_ids is not None:
        ids = []
        for value in release_candidate_ids:
            if isinstance(value, ReleaseCandidate):
                ids.append(value.pk)
            elif isinstance(value, ObjectId):
                ids.append(value)
            elif ObjectId.is_valid(str(value)):
                ids.append(ObjectId(str(value)))
            else:
                raise ValidationFailed(code="invalid_release_candidate", fields={"release_candidate_ids": [str(value)]})
    store.summaries_rebuild(release_candidate_ids=ids)


# --- bulk runs of scripts (POST /api/v1/runs/bulk) ---------------------------------------------------------------


def _bulk_cases(items: list[dict[str, Any]]) -> tuple[dict[int, TestCase], dict[str, list[str]]]:
    """The case of each item (by id, or by product + suite + key), and the problems by item index."""
    problems: dict[str, list[str]] = {}
    by_id = {str(item["case"]) for item in items if item.get("case")}
    cases = {
        str(case.pk): case
        for case in TestCase.objects.filter(pk__in=[ObjectId(v) for v in by_id if ObjectId.is_valid(v)])
    }
    natural = {(item.get("product"), item.get("suite")) for item in items if not item.get("case")}
    suites = {}
    for product, name in natural:
        suite = TestSuite.objects.filter(product=product or "", name=name or "").first()
        if suite is not None:
            suites[(product, name)] = suite
    keyed: dict[tuple, TestCase] = {}
    for suite in suites.values():
        keys = [
            item.get("key") for item in items if (item.get("product"), item.get("suite")) == (suite.product, suite.name)
        ]
        for case in TestCase.objects.filter(suite=suite, key__in=[key for key in keys if key]):
            keyed[(suite.product, suite.name, case.key)] = case
    found: dict[int, TestCase] = {}
    for index, item in enumerate(items):
        if item.get("case"):
            case = cases.get(str(item["case"]))
        elif item.get("product") and item.get("suite") and item.get("key"):
            case = keyed.get((item["product"], item["suite"], item["key"]))
        else:
            problems[f"runs.{index}.case"] = ["Give the case id, or product, suite and key."]
            continue
        if case is None:
            problems[f"runs.{index}.case"] = ["No such case."]
        elif case.is_deleted:
            problems[f"runs.{index}.case"] = ["This case is deleted."]
        else:
            found[index] = case
    return found, problems


def test_run_batch_record(
    *, release_candidate: ReleaseCandidate, runs: list[dict[str, Any]], actor, request: HttpRequest | None = None
) -> list[store.NewRun]:
    """Record up to BULK_RUNS_MAX runs of an RC, each with its own case (by id or natural key), status, Mantis ids,
    notes, time and failure details, all or nothing: every run is validated like a single run first (the problems
    of all items are reported together, by index, nothing written); then all runs, their summary deltas and ONE
    audit event ("run.bulk_record") are one transaction (`releases.store.runs_append`). A failure's signature is
    computed here (releases/signatures.py). Each case must be of the RC's product (`rc_product_mismatch`)."""
    from django.conf import settings

    from releases import signatures

    _require(actor, "reviewer", action="run.bulk_record", resource=f"rc:{release_candidate.pk}", request=request)
    limit = int(settings.BULK_RUNS_MAX)
    if not runs or len(runs) > limit:
        raise ValidationFailed(
            f"Send 1 to {limit} runs at once.",
            code="bulk_too_large" if runs else "field_required",
            fields={"runs": [f"{len(runs)} runs sent; the limit is {limit}."]},
        )
    cases, problems = _bulk_cases(runs)
    code = "case_not_found" if problems else ""
    executed_by_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    new_runs: list[store.NewRun] = []
    for index, item in enumerate(runs):
        try:
            mantis, notes, executed_at = _validate_run_input(
                status=item.get("status", ""),
                mantis_ids=item.get("mantis_ids") or (),
                notes=item.get("notes") or "",
                executed_at=item.get("executed_at"),
            )
        except ValidationFailed as error:
            code = code or error.code
            for name, messages in (error.fields or {"__all__": [error.message]}).items():
                problems[f"runs.{index}.{name}"] = messages
            continue
        case = cases.get(index)
        if case is None:
            continue
        if release_candidate.product and case.suite.product != release_candidate.product:
            code = code or "rc_product_mismatch"
            problems[f"runs.{index}.case"] = [f"This case is of product {case.suite.product}, the RC of another."]
            continue
        failure_message = (item.get("failure_message") or "")[:NOTES_MAX_LENGTH]
        failed = item["status"] == RunStatus.FAIL
        new_runs.append(
            store.NewRun(
                case_id=case.pk,
                release_candidate_id=release_candidate.pk,
                status=item["status"],
                mantis_ids=mantis,
                notes=notes,
                executed_at=executed_at,
                executed_by_id=executed_by_id,
                failure_signature=signatures.failure_signature(
                    failure_type=item.get("failure_type") or "", message=failure_message
                )
                if failed
                else "",
                failure_message=failure_message,
                duration_ms=item.get("duration_ms"),
                flaky=bool(item.get("flaky")) and item["status"] == RunStatus.PASS,
            )
        )
    if problems:
        raise ValidationFailed(
            f"{len(problems)} problem(s) in the runs; nothing was recorded.", code=code or "invalid", fields=problems
        )

    def audit(stored: list[store.NewRun]) -> None:
        audit_record(
            action="run.bulk_record",
            actor=actor,
            resource=f"rc:{release_candidate.pk}",
            request=request,
            metadata={
                "count": len(stored),
                "statuses": {status: sum(1 for run in stored if run.status == status) for status in RunStatus.values},
                "ci_prefix": getattr(getattr(request, "api_token", None), "prefix", ""),
            },
        )

    return _append(new_runs, audit=audit)


# --- known issues (a failure signature linked to a Mantis id) ----------------------------------------------------


def known_issue_link(
    *, product: str, signature: str, mantis_id: Any, actor, request: HttpRequest | None = None
) -> KnownIssue:
    """Link a product's failure signature to a Mantis issue, once: later failures with that signature show the
    link. A second link of the same signature is `Conflict` (code "already_linked"); a bad id "invalid_mantis_id"."""
    _require(actor, "reviewer", action="known_issue.link", resource=f"product:{product}", request=request)
    (mantis,) = _clean_mantis_ids([mantis_id]) or [None]
    if mantis is None:
        raise ValidationFailed(code="invalid_mantis_id", fields={"mantis_id": ["Give a Mantis issue id."]})
    signature = (signature or "").strip()
    if not signature or not (product or "").strip():
        raise ValidationFailed(code="field_required", fields={"signature": ["Choose a failure signature."]})
    rules.PRODUCT.check(product, field="product")
    if len(signature) > KnownIssue._meta.get_field("signature").max_length:
        raise ValidationFailed(code="too_long", fields={"signature": ["This signature is too long."]})
    issue = KnownIssue(product=product, signature=signature, mantis_id=mantis, created_by=actor)

    def work(session) -> None:
        issue.save(force_insert=True)
        audit_record(
            action="known_issue.link",
            actor=actor,
            resource=f"known_issue:{issue.pk}",
            request=request,
            # "pattern", not "signature": the audit trail redacts values of keys named like secrets.
            metadata={"product": product, "pattern": signature[:300], "mantis_id": mantis},
        )

    try:
        store.in_transaction(work)
    except IntegrityError:
        raise Conflict("This error is already linked to a Mantis issue.", code="already_linked")
    return issue


def known_issue_unlink(*, issue: KnownIssue, actor, request: HttpRequest | None = None) -> None:
    """Remove a known-issue link (admins: a signature linked to the wrong Mantis id); failures with that signature
    no longer show a link, and it can be linked again. One audit event "known_issue.unlink"."""
    _require(actor, "admin", action="known_issue.unlink", resource=f"known_issue:{issue.pk}", request=request)
    metadata = {"product": issue.product, "pattern": issue.signature[:300], "mantis_id": issue.mantis_id}
    resource = f"known_issue:{issue.pk}"

    def work(session) -> None:
        KnownIssue.objects.filter(pk=issue.pk).delete()
        audit_record(action="known_issue.unlink", actor=actor, resource=resource, request=request, metadata=metadata)

    store.in_transaction(work)
