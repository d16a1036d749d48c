"""Writes of the releases app. Each service checks the actor's role, validates, writes and records exactly one
audit event, in the same transaction as the write where the write is transactional.

Runs and case visibility go through `releases.store` (one transaction per action, a summary delta in the outbox;
see its docstring for the write path). Summary documents (`QualitySummary`, collection `qualitySummaries`) hold,
per RC and suite, the counts of the latest run statuses in total ("all") and per owner / category; they are kept by
the store's applier, and `summaries_rebuild` recomputes them from the raw runs.
"""

from __future__ import annotations

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
from releases.models import ReleaseCandidate, RunStatus, TestCase, TestRun, TestSuite
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


def _stored_values(instance, names: list[str]) -> dict[str, Any] | None:
    """The instance's values as saved (None for a new one), to tell changed fields from unchanged ones."""
    if instance._state.adding or instance.pk is None:
        return None
    return type(instance).objects.filter(pk=instance.pk).values(*names).first()


def _validate(instance, *, exclude: Iterable[str] = ()) -> None:
    """The rule table (releases/rules.py: lengths, key and RC name patterns, priority, tags) and then model
    validation (required values, choices, foreign keys, unique constraints), each as one coded error.

    A field that still holds its stored value is not judged by the rule table again: data an older rule let in
    (a key `LOGIN 001` from an earlier import) stays editable; a new or changed value must follow the rules."""
    text = _RULES_BY_MODEL.get(type(instance))
    if text is not None:
        names = [*text, *(("priority", "tags") if isinstance(instance, TestCase) else ())]
        rules.check_values(
            {name: getattr(instance, name) for name in names}, text=text, stored=_stored_values(instance, names)
        )
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
) -> ReleaseCandidate:
    """Rename an RC or change its state (planned / testing / released / rejected)."""
    _require(actor, "reviewer", action="rc.update", resource=f"rc:{release_candidate.pk}", request=request)
    candidate = ReleaseCandidate.objects.get(pk=release_candidate.pk)
    before = {"name": candidate.name, "state": candidate.state}
    if name is not None:
        candidate.name = name.strip()
    if state is not None:
        candidate.state = state
    _validate(candidate)
    candidate.save()
    audit_record(
        action="rc.update",
        actor=actor,
        resource=f"rc:{candidate.pk}",
        request=request,
        metadata={"before": before, "after": {"name": candidate.name, "state": candidate.state}},
    )
    return candidate


def release_candidate_move(
    *, release_candidate: ReleaseCandidate, direction: str, actor, request: HttpRequest | None = None
) -> ReleaseCandidate:
    """Swap an RC's position with its neighbour (`direction` "up" = earlier, "down" = later). Moving the first RC
    up or the last one down changes nothing and raises `Conflict` (code "cannot_move")."""
    _require(actor, "reviewer", action="rc.move", resource=f"rc:{release_candidate.pk}", request=request)
    if direction not in ("up", "down"):
        raise ValidationFailed(code="invalid_direction", fields={"direction": ["Use 'up' or 'down'."]})
    current = ReleaseCandidate.objects.get(pk=release_candidate.pk)
    if direction == "up":
        neighbour = ReleaseCandidate.objects.filter(sequence__lt=current.sequence).order_by("-sequence").first()
    else:
        neighbour = ReleaseCandidate.objects.filter(sequence__gt=current.sequence).order_by("sequence").first()
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
    Runs already recorded keep the owner/category/suite copied at record time; new runs use the new values."""
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
    for name, value in changes.items():
        if name == "tags":
            value = _clean_tags(value)
        elif name == "key":
            value = (value or "").strip()
            _check_key(value)
        elif isinstance(value, str):
            value = value.strip()
        setattr(candidate, name, value)
    _validate(candidate, exclude=["created_by"])
    changed = [
        name for name, value in before.items() if getattr(candidate, name if name != "suite" else "suite_id") != value
    ]

    def work(session) -> None:
        # Only the changed fields: a concurrent delete, restore or run of this case is never overwritten.
        saved = TestCase.objects.filter(pk=candidate.pk, is_deleted=False).update(
            updated_at=timezone.now(), **{name: getattr(candidate, name) for name in changed}
        )
        if saved != 1:
            raise Conflict("Deleted cases cannot be edited; restore it first.", code="case_deleted")
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
    return TestCase.objects.get(pk=candidate.pk)


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
    "invalid_executed_at") and `Conflict` ("case_deleted") without writing anything.
    """
    _require(actor, "reviewer", action="run.record", resource=f"case:{case.pk}", request=request)
    mantis, notes, executed_at = _validate_run_input(
        status=status, mantis_ids=mantis_ids, notes=notes, executed_at=executed_at
    )
    if case.is_deleted:
        raise Conflict("Runs cannot be recorded for a deleted case.", code="case_deleted")
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
