"""The AI gateway: every AI call of the platform goes through here.

One path for all callers (assistant page, API, batches, the reports app):
  template + variables -> redaction
  -> the price valid now (ai_assist/pricing.py; a model without one is refused here) and the budgets that apply
  -> ONE Redis round trip: circuit breaker, burst limit, atomic reservation of the worst case on the user's quota
     and on every pooled budget (ai_assist/quotas.py, ai_assist/budgets.py)
  -> provider (bounded retries)
  -> ONE Redis round trip, sent off the caller's path after a success (ai_assist/post_call.py): settle the
     reservation with the real usage, record the breaker result, queue the `aiUsageLogs` row (moved to MongoDB in
     batches, ai_assist/usage_buffer.py); budget warnings (80 %, 100 %) are mailed from there
  -> metrics; audit events for quota refusals and breaker trips.
Cost is exact: integer nano-dollars from the token kinds (prompt, cached prompt, cache write, completion, reasoning)
at the rates of the price row, which the usage row keeps.
The call path never waits on MongoDB: that is what keeps the gateway's overhead under a millisecond.
Refusals and failures write their usage log row too, then raise a DomainError with a stable code.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from ai_assist import breaker, budgets, metrics, post_call, pricing, quotas, redis_store, usage_buffer
from ai_assist.models import AiBatchItem, AiBatchJob, BatchItemStatus, BatchStatus, Outcome
from ai_assist.pricing import NANO, Price, Usage
from ai_assist.prompts import PromptTemplate, template_get
from ai_assist.providers import ProviderCall, ProviderError, ProviderReply, provider_get, provider_model
from ai_assist.quotas import AiBudgetExceeded, AiQuotaExceeded
from ai_assist.redaction import redact, redact_fixed, redact_value
from audit.services import audit_record
from releases import selectors as release_selectors
from releases.models import ReleaseCandidate
from report_platform.errors import DomainError, NotFound, ServiceUnavailable, ValidationFailed

logger = logging.getLogger(__name__)

BATCH_TASKS = ("triage_failure", "draft_bug_report")

__all__ = [
    "AiBudgetExceeded",
    "AiModelUnpriced",
    "AiQuotaExceeded",
    "AiTextResult",
    "AiUnavailable",
    "ai_generate_text",
    "ai_stream_text",
]


class AiUnavailable(DomainError):
    code = "ai_unavailable"
    status = 503
    default_message = "The AI assistant is unavailable right now. Try again in a few minutes."


class AiModelUnpriced(AiUnavailable):
    """The model has no price valid now: it is never called (and never charged $0)."""

    code = "ai_model_unpriced"


@dataclass
class AiTextResult:
    text: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_ms: float
    outcome: str
    usage_log_id: str
    template_id: str = ""
    template_version: int = 0
    cost_nano: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class _Call:
    """Everything known about one call once it was admitted (or refused)."""

    user: Any
    role: str
    task_id: str
    template: PromptTemplate
    release_candidate: Any
    subject: str
    provider_name: str
    model: str
    messages: list[dict[str, str]]
    variables: dict[str, Any]
    redactions: Counter
    max_tokens: int
    price: Price | None
    batch_id: str = ""
    reserved_tokens: int = 0
    reserved_cost_nano: int = 0
    budgets: list[budgets.Budget] = field(default_factory=list)
    reservation: quotas.Reservation | None = None
    probe: bool = False
    log_id: ObjectId = field(default_factory=ObjectId)

    @property
    def rc_name(self) -> str:
        return self.release_candidate.name if self.release_candidate is not None else ""


def _cost(call: _Call, usage: Usage) -> int:
    """Nano-dollars; a call without a price is refused before anything is used, so it costs nothing."""
    return pricing.cost_nano(usage, call.price.rates) if call.price is not None else 0


def _prompt_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{message['role']}]\n{message['content']}" for message in messages)


def _truncate(text: str) -> str:
    limit = settings.AI_LOG_TEXT_LIMIT
    return text if len(text) <= limit else text[: limit - 15] + " [truncated]"


def _log_document(
    call: _Call,
    *,
    created_at: datetime,
    outcome: str,
    usage: Usage,
    cost_nano: int = 0,
    latency_ms: float = 0.0,
    error_code: str = "",
    error_message: str = "",
    attempts: int = 0,
    streamed: bool = False,
    response: str = "",
) -> dict:
    # A raw document with exactly the model's columns: the ORM's save path costs more CPU than the rest of the
    # gateway together, and this runs on every call.
    user = call.user
    price = call.price
    return {
        "_id": call.log_id,
        "user_id": user.pk,
        "user_email": user.email,
        "role": call.role,
        "task_id": call.task_id,
        "template_id": call.template.id,
        "template_version": call.template.version,
        "release_candidate_id": call.release_candidate.pk if call.release_candidate is not None else None,
        "release_candidate_name": call.rc_name,
        "subject": call.subject[:80],
        "provider": call.provider_name,
        "model": call.model,
        "prompt_tokens": usage.prompt,
        "cached_prompt_tokens": usage.cached_prompt,
        "cache_write_tokens": usage.cache_write,
        "completion_tokens": usage.completion,
        "reasoning_tokens": usage.reasoning,
        "total_tokens": usage.total,
        "cost_nano": cost_nano,
        "cost_usd": cost_nano / NANO,
        "price_id": price.id if price is not None else "",
        "price_valid_from": price.valid_from if price is not None else None,
        "price_rates": dict(price.rates) if price is not None else {},
        "price_prompt_per_1k": price.per_1k_usd("prompt") if price is not None else 0.0,
        "price_completion_per_1k": price.per_1k_usd("completion") if price is not None else 0.0,
        "reserved_tokens": call.reserved_tokens,
        "reserved_cost_nano": call.reserved_cost_nano,
        "reserved_cost_usd": call.reserved_cost_nano / NANO,
        "latency_ms": round(latency_ms, 3),
        "outcome": str(outcome),
        "error_code": error_code,
        "error_message": error_message[:500],
        "attempts": attempts,
        "streamed": streamed,
        "prompt_redacted": _truncate(_prompt_text(call.messages)),
        "response_redacted": _truncate(redact(response).text) if response else "",
        "redactions": dict(call.redactions),
        "batch_id": call.batch_id,
        "created_at": created_at.replace(microsecond=created_at.microsecond // 1000 * 1000),
    }


def _finish(
    call: _Call,
    *,
    outcome: str,
    usage: Usage | None = None,
    cost_nano: int = 0,
    latency_s: float | None = None,
    record: dict | None = None,
    **log_fields,
) -> None:
    """Everything after a call, done off the caller's path (ai_assist/post_call.py), in ONE Redis round trip:
    settle the reservation with the real usage, record the breaker result (`record`; without one a held half-open
    probe slot is freed) and queue the usage row; then the metrics. If Redis fails, the row goes to MongoDB directly.
    Only the clock and the breaker's thresholds are read on the caller's thread (tests move and change them; the row
    and the breaker keep the call's time).
    A successful call returns at once; refusals and failures wait for the bookkeeping: their latency does not
    matter, and a failure that opens the circuit has its audit event written before the caller hears of it."""
    created_at = timezone.now()
    usage = usage or Usage()
    thresholds = settings.AI_BREAKER

    def send() -> None:
        recorded = (
            breaker.record_command(
                provider=call.provider_name,
                model=call.model,
                probe=call.probe,
                at=created_at,
                config=thresholds,
                **record,
            )
            if record is not None
            else None
        )
        document = _log_document(
            call,
            created_at=created_at,
            outcome=outcome,
            usage=usage,
            cost_nano=cost_nano,
            latency_ms=(latency_s or 0.0) * 1000,
            **log_fields,
        )
        batch = redis_store.Batch()
        settled_at = None
        if call.reservation is not None:
            settled_at = quotas.settle_on(batch, reservation=call.reservation, tokens=usage.total, cost_nano=cost_nano)
        record_at = batch.script(*recorded) if recorded is not None else None
        if recorded is None and call.probe:
            breaker.release_probe_on(batch, provider=call.provider_name, model=call.model)
        usage_buffer.push(batch, document)
        metrics.record_call(
            model=call.model,
            task_id=call.task_id,
            rc=call.rc_name,
            outcome=outcome,
            usage=usage,
            cost_nano=cost_nano,
            latency_s=latency_s,
        )
        try:
            results = batch.execute()
        except RedisError:
            logger.warning("AI usage row written directly: Redis failed after the call", extra={"task": call.task_id})
            usage_buffer.insert_direct(document)
            return
        if record_at is not None:
            _after_record(call, results[record_at])
        if settled_at is not None and call.reservation.budgets:
            _warn_budgets(call, results[settled_at])

    post_call.submit(send)
    if outcome != Outcome.SUCCESS:
        post_call.wait()


def _warn_budgets(call: _Call, spent: list) -> None:
    """After a settlement: mail the admins about budgets this call took to 80 % or 100 % (once per period)."""
    at = call.reservation.at or timezone.now()
    for budget, used in zip(call.reservation.budgets, spent, strict=False):
        used = int(used)
        if used >= 0 and used * 100 >= budget.limit_nano * budgets.WARN_THRESHOLDS[0]:
            try:
                budgets.budget_warn(budget=budget, now=at, used_nano=used)
            except Exception:
                logger.exception("AI budget warning failed", extra={"budget": budget.name})


def _refuse(call: _Call, error: DomainError) -> DomainError:
    _finish(call, outcome=Outcome.REFUSED, error_code=error.code, error_message=error.message)
    return error


def _redact_prompt(call: _Call, provider_name: str, names: tuple[str, ...]) -> None:
    """What leaves the machine is the rendered prompt: it is redacted as a whole (template text and variables)."""
    for message in call.messages:
        fixed = message["role"] == "system" and message["content"] == call.template.system
        # A template's own system text holds no user data: its redaction is kept, not redone on every call.
        result = (redact_fixed if fixed else redact)(message["content"], names=names)
        message["content"] = result.text
        call.redactions.update(result.counts)
    # The offline provider answers from the variables themselves, so they are redacted too (its answer may be
    # shown, logged and exported like any other).
    if provider_name == "offline":
        call.variables = redact_value(call.variables, Counter(), names)


def _prepare(
    *, user, task_id: str, template_id: str, variables: dict, release_candidate, subject: str, batch_id: str
) -> _Call:
    if user is None or not getattr(user, "is_authenticated", False):
        raise ValidationFailed("AI calls are made on behalf of a signed-in user.", code="ai_user_required")
    if not task_id:
        raise ValidationFailed("A task id is required.", fields={"task_id": ["This field is required."]})
    template = template_get(template_id)
    names = tuple(settings.AI_REDACT_NAMES)
    provider = provider_get()
    variables = dict(variables or {})
    messages = template.render(variables)
    model = provider_model(provider.name)
    admitted_at = timezone.now()
    price = pricing.price_at(provider=provider.name, model=model, at=admitted_at)
    max_tokens = min(template.max_completion_tokens, settings.AI_MAX_COMPLETION_TOKENS)
    call = _Call(
        user=user,
        role=getattr(user, "role", "viewer") or "viewer",
        task_id=task_id[:100],
        template=template,
        release_candidate=release_candidate,
        subject=subject,
        provider_name=provider.name,
        model=model,
        messages=messages,
        variables=variables if provider.name == "offline" else {},
        redactions=Counter(),
        max_tokens=max_tokens,
        price=price,
        batch_id=batch_id,
    )
    if price is None:
        # Refused before the provider is called, and counted: a model without a price is never charged $0.
        _redact_prompt(call, provider.name, names)  # the refusal's usage row keeps the prompt, redacted
        metrics.UNPRICED_REFUSALS.labels(provider=provider.name, model=model).inc()
        logger.warning("AI call refused: no price for the model", extra={"provider": provider.name, "model": model})
        raise _refuse(
            call,
            AiModelUnpriced(
                f"No price is configured for the model {model!r} ({provider.name}), so it cannot be used. "
                "An admin can add one in the Django admin (AI assistance > AI model prices).",
                extra={"provider": provider.name, "model": model},
            ),
        )
    # Worst case: ~3 characters a token for the prompt (real tokenizers average ~4) plus the full completion, each
    # at the dearest rate its tokens could be reported as. It is taken from the prompt as rendered, before
    # redaction, so that the admission can be on its way while the prompt is redacted: a placeholder is a few
    # tokens, like the value it replaces, and settlement replaces the reservation with the real usage anyway.
    prompt_upper = sum(math.ceil(len(message["content"]) / 3) + 4 for message in messages)
    call.reserved_tokens = prompt_upper + max_tokens
    call.reserved_cost_nano = pricing.worst_case_cost_nano(
        prompt_tokens=prompt_upper, completion_tokens=max_tokens, rates=price.rates
    )
    call.budgets = budgets.budgets_for(
        role=call.role,
        release_candidate_id=str(release_candidate.pk) if release_candidate is not None else "",
        template_id=template.id,
    )

    # One Redis round trip: the circuit's verdict, the burst count and the worst case reserved on the user's
    # counters and every budget's, atomically. It is sent first and read after the redaction, which runs meanwhile.
    pending = quotas.admit_begin(
        user_id=str(user.pk),
        limits=quotas.limits_for(call.role),
        tokens=call.reserved_tokens,
        cost_nano=call.reserved_cost_nano,
        provider=provider.name,
        model=model,
        budgets=call.budgets,
        now=admitted_at,
    )
    try:
        _redact_prompt(call, provider.name, names)
    except BaseException:
        with contextlib.suppress(RedisError):
            pending.cancel(provider=provider.name, model=model)
        raise
    try:
        admission = pending.result()
    except AiBudgetExceeded as error:
        _budget_refused(call, error, at=admitted_at)
        raise _refuse(call, error) from None
    except AiQuotaExceeded as error:
        audit_record(
            action="ai.quota_refused",
            actor=user,
            resource=f"user:{user.pk}",
            outcome="denied",
            metadata={"task": call.task_id, **{k: v for k, v in error.extra.items() if k != "used"}},
        )
        raise _refuse(call, error) from None
    except RedisError:
        logger.warning("AI call refused: its limits cannot be checked (Redis is unreachable)")
        raise _refuse(
            call, AiUnavailable("The AI usage limits cannot be checked right now. Try again in a few minutes.")
        ) from None
    if admission.verdict == "open":
        state = breaker.breaker_state(provider=provider.name, model=model)
        retry_at = datetime.fromtimestamp(state.opened_at + settings.AI_BREAKER["cooldown_seconds"], tz=UTC)
        raise _refuse(
            call,
            AiUnavailable(
                f"The AI provider ({provider.name}/{model}) is paused after {state.reason or 'errors'}; "
                f"calls fail fast until {retry_at:%H:%M:%S} UTC.",
                extra={"breaker": "open", "reason": state.reason, "retry_at": retry_at.isoformat()},
            ),
        )
    call.probe = admission.verdict == "probe"
    call.reservation = admission.reservation
    return call


def _budget_refused(call: _Call, error: AiBudgetExceeded, *, at: datetime) -> None:
    """A budget refused the call: count it, audit it, and warn the admins (a refusal is 100 %)."""
    budget = next(b for b in call.budgets if b.name == error.extra["budget"])
    metrics.BUDGET_REFUSALS.labels(budget=budget.name, scope=budget.scope).inc()
    audit_record(
        action="ai.budget_refused",
        actor=call.user,
        resource=f"ai_budget:{budget.id}",
        outcome="denied",
        metadata={
            "task": call.task_id,
            "budget": budget.name,
            "scope": budget.scope,
            "left_usd": error.extra["left_usd"],
        },
    )
    try:
        spent = pricing.usd_to_nano(error.extra["used_usd"])
        budgets.budget_warn(budget=budget, now=at, used_nano=spent, refused=True)
    except Exception:
        logger.exception("AI budget warning failed", extra={"budget": budget.name})


def _after_record(call: _Call, transition: str) -> None:
    """The caller whose result opened the circuit writes the audit event (exactly one per trip)."""
    if transition.startswith("tripped:"):
        reason = transition.split(":", 1)[1]
        logger.warning("AI circuit opened", extra={"provider": call.provider_name, "model": call.model})
        audit_record(
            action="ai.breaker_opened",
            actor=None,
            actor_email="system",
            resource=f"ai_breaker:{call.provider_name}:{call.model}",
            outcome="failure",
            metadata={"provider": call.provider_name, "model": call.model, "reason": reason},
        )


def _succeed(call: _Call, reply: ProviderReply, *, latency_s: float, streamed: bool) -> AiTextResult:
    usage = reply.usage()
    cost_nano = _cost(call, usage)
    cost = cost_nano / NANO
    latency_ms = latency_s * 1000
    _finish(
        call,
        outcome=Outcome.SUCCESS,
        usage=usage,
        cost_nano=cost_nano,
        latency_s=latency_s,
        record={"ok": True, "latency_s": latency_s, "cost": cost},
        attempts=reply.attempts,
        streamed=streamed,
        response=reply.text,
    )
    return AiTextResult(
        text=reply.text,
        provider=call.provider_name,
        model=call.model,
        prompt_tokens=usage.prompt,
        completion_tokens=usage.completion,
        cost=cost,
        latency_ms=round(latency_ms, 3),
        outcome=Outcome.SUCCESS,
        usage_log_id=str(call.log_id),
        template_id=call.template.id,
        template_version=call.template.version,
        cost_nano=cost_nano,
        cached_prompt_tokens=usage.cached_prompt,
        cache_write_tokens=usage.cache_write,
        reasoning_tokens=usage.reasoning,
    )


def _fail(
    call: _Call,
    *,
    code: str,
    message: str,
    attempts: int,
    latency_s: float,
    partial: ProviderReply | None,
    provider_fault: bool = True,
) -> AiUnavailable:
    # A failed call is charged what demonstrably went out and came back (a broken stream's partial text).
    usage = partial.usage() if partial and partial.text else Usage()
    if partial and partial.text and not usage.completion:
        usage = Usage(
            prompt=sum(math.ceil(len(m["content"]) / 4) for m in call.messages),
            completion=math.ceil(len(partial.text) / 4),
        )
    cost_nano = _cost(call, usage)
    cost = cost_nano / NANO
    _finish(
        call,
        outcome=Outcome.FAILED,
        usage=usage,
        cost_nano=cost_nano,
        latency_s=latency_s,
        # A reader who left is not the provider's fault: no failure recorded (a held probe slot is freed).
        record={"ok": False, "latency_s": latency_s, "cost": cost} if provider_fault else None,
        error_code=code,
        error_message=message,
        attempts=attempts,
        streamed=partial is not None,
        response=partial.text if partial else "",
    )
    plural = "attempt" if attempts == 1 else "attempts"
    return AiUnavailable(
        f"{message} Gave up after {attempts} {plural}; please try again later.",
        extra={"provider_error": code, "attempts": attempts},
    )


def ai_generate_text(
    *,
    user,
    task_id: str,
    template_id: str,
    variables: dict,
    release_candidate=None,
    subject: str = "",
    batch_id: str = "",
) -> AiTextResult:
    """Run one prompt template through the gateway and return the whole answer.

    Raises AiQuotaExceeded (429: which limit, when it resets), AiUnavailable (503: open circuit or provider failure
    after retries) or ValidationFailed (unknown template, missing variables). Every outcome writes a usage log.
    """
    call = _prepare(
        user=user,
        task_id=task_id,
        template_id=template_id,
        variables=variables,
        release_candidate=release_candidate,
        subject=subject,
        batch_id=batch_id,
    )
    provider = provider_get(call.provider_name)
    request = ProviderCall(
        model=call.model,
        messages=call.messages,
        max_tokens=call.max_tokens,
        template_id=call.template.id,
        variables=call.variables,
    )
    started = time.perf_counter()
    try:
        reply = provider.complete(request)
    except ProviderError as error:
        raise _fail(
            call,
            code=error.code,
            message=error.message,
            attempts=error.attempts,
            latency_s=time.perf_counter() - started,
            partial=None,
        ) from None
    return _succeed(call, reply, latency_s=time.perf_counter() - started, streamed=False)


class AiTextStream:
    """An admitted streaming call: iterate for text pieces; `result` is set once the stream completed.

    A provider failure mid-stream raises AiUnavailable from the iteration (after its usage log row was written);
    a consumer that stops early (browser closed) is logged as failed with the partial answer.
    """

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.result: AiTextResult | None = None
        self.provider = call.provider_name
        self.model = call.model
        self.template_id = call.template.id
        self.template_version = call.template.version
        self.usage_log_id = str(call.log_id)
        self._started = False

    def close(self) -> None:
        """Settle a stream that was admitted but never read (the client went away before the first byte)."""
        if not self._started:
            self._started = True
            _fail(
                self.call,
                code="ai_stream_abandoned",
                message="The answer was never read.",
                attempts=0,
                latency_s=0.0,
                partial=None,
                provider_fault=False,
            )

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("An AI stream can be read once.")
        self._started = True
        call = self.call
        provider = provider_get(call.provider_name)
        request = ProviderCall(
            model=call.model,
            messages=call.messages,
            max_tokens=call.max_tokens,
            template_id=call.template.id,
            variables=call.variables,
        )
        reply = ProviderReply()
        started = time.perf_counter()
        finished = False
        try:
            yield from provider.stream(request, reply)
            finished = True
        except ProviderError as error:
            finished = True
            raise _fail(
                call,
                code=error.code,
                message=error.message,
                attempts=error.attempts,
                latency_s=time.perf_counter() - started,
                partial=reply,
            ) from None
        finally:
            if not finished:
                _fail(
                    call,
                    code="ai_stream_aborted",
                    message="The answer was not read to the end.",
                    attempts=reply.attempts,
                    latency_s=time.perf_counter() - started,
                    partial=reply,
                    provider_fault=False,  # the reader left; the provider did nothing wrong
                )
        self.result = _succeed(call, reply, latency_s=time.perf_counter() - started, streamed=True)


def ai_bookkeeping_wait() -> None:
    """Block until this process's finished AI calls are settled and their usage rows queued. Call it before telling
    another process that work involving AI calls is done (they may read the usage right away)."""
    post_call.wait()


def ai_stream_text(
    *, user, task_id: str, template_id: str, variables: dict, release_candidate=None, subject: str = ""
) -> AiTextStream:
    """Admit a call (quotas, breaker, redaction, all before returning) and hand back the stream of its answer."""
    call = _prepare(
        user=user,
        task_id=task_id,
        template_id=template_id,
        variables=variables,
        release_candidate=release_candidate,
        subject=subject,
        batch_id="",
    )
    return AiTextStream(call)


def ai_batch_create(*, user, task: str, release_candidate_id: str) -> AiBatchJob:
    """Queue one task template over every failed run (latest status) of an RC. While a batch for the same user,
    task and RC is queued or running, that batch is returned instead of a second one."""
    from ai_assist.tasks import ai_batch_run_task

    if task not in BATCH_TASKS:
        raise ValidationFailed(
            f"Batches run {', '.join(BATCH_TASKS)}.", code="ai_unknown_task", fields={"task": ["Not batchable."]}
        )
    if not ObjectId.is_valid(release_candidate_id or ""):
        raise NotFound("No such release candidate.")
    rc = ReleaseCandidate.objects.filter(pk=ObjectId(release_candidate_id)).first()
    if rc is None:
        raise NotFound("No such release candidate.")
    active = AiBatchJob.objects.filter(
        user=user, task=task, release_candidate=rc, status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING]
    ).first()
    if active is not None:
        return active
    run_ids = [
        run.pk
        for run in release_selectors.release_candidate_failing_runs(
            release_candidate=rc, limit=settings.AI_BATCH_MAX_ITEMS
        )
    ]
    job = AiBatchJob.objects.create(user=user, task=task, release_candidate=rc, total=len(run_ids))
    AiBatchItem.objects.bulk_create([AiBatchItem(batch=job, run_id=run_id) for run_id in run_ids])
    try:
        ai_batch_run_task.delay(str(job.pk))
    except OperationalError as error:
        # Never "accepted, then lost": without a broker the batch is failed at once and the user told so.
        AiBatchJob.objects.filter(pk=job.pk).update(
            status=BatchStatus.FAILED, error="The job queue is unreachable.", finished_at=timezone.now()
        )
        raise ServiceUnavailable("The job queue is unreachable; the batch was not started.") from error
    return job


def ai_batch_run(*, batch_id: str) -> AiBatchJob:
    """Work through a batch's pending items. Idempotent: each item is claimed with a conditional update, so a
    redelivered or duplicated task never calls the provider twice for one item. A quota refusal stops the batch
    (status partial) and leaves the remaining items skipped; it can be queued again when the quota resets."""
    from ai_assist.selectors import assist_context_build

    job = AiBatchJob.objects.filter(pk=ObjectId(batch_id)).select_related("user").first()
    if job is None or job.status in (BatchStatus.SUCCEEDED, BatchStatus.PARTIAL, BatchStatus.FAILED):
        return job
    AiBatchJob.objects.filter(pk=job.pk, status=BatchStatus.QUEUED).update(
        status=BatchStatus.RUNNING, started_at=timezone.now()
    )
    stopped = ""
    for item_id in list(AiBatchItem.objects.filter(batch=job).order_by("pk").values_list("pk", flat=True)):
        # Pending, or left running by a worker that died mid-item longer ago than any call can take.
        stale_before = timezone.now() - timedelta(seconds=_item_lease_seconds())
        claimable = Q(status=BatchItemStatus.PENDING) | Q(status=BatchItemStatus.RUNNING, updated_at__lt=stale_before)
        claimed = AiBatchItem.objects.filter(claimable, pk=item_id).update(
            status=BatchItemStatus.RUNNING, updated_at=timezone.now()
        )
        if claimed != 1:
            continue
        item = AiBatchItem.objects.get(pk=item_id)
        if stopped:
            _batch_item_close(job, item, BatchItemStatus.SKIPPED, error=stopped)
            continue
        try:
            context = assist_context_build(task=job.task, run_id=str(item.run_id))
            result = ai_generate_text(
                user=job.user,
                task_id=job.task,
                template_id=job.task,
                variables=context["variables"],
                release_candidate=context["release_candidate"],
                subject=context["subject"],
                batch_id=str(job.pk),
            )
        except AiQuotaExceeded as error:
            stopped = error.message
            _batch_item_close(job, item, BatchItemStatus.SKIPPED, error=stopped)
        except DomainError as error:
            _batch_item_close(job, item, BatchItemStatus.FAILED, error=error.message)
        else:
            _batch_item_close(job, item, BatchItemStatus.DONE, text=result.text, usage_log_id=result.usage_log_id)
    # The job's end is read by other processes: its calls' usage rows and settlements are sent first.
    ai_bookkeeping_wait()
    job.refresh_from_db()
    if job.done + job.failed >= job.total and not stopped:
        status = BatchStatus.SUCCEEDED if job.failed == 0 else BatchStatus.PARTIAL
    else:
        status = BatchStatus.PARTIAL
    AiBatchJob.objects.filter(pk=job.pk, status=BatchStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), error=stopped[:500]
    )
    job.refresh_from_db()
    return job


def _item_lease_seconds() -> int:
    attempts = settings.AI_MAX_RETRIES + 1
    return int(attempts * settings.AI_REQUEST_TIMEOUT_SECONDS + 2**attempts * settings.AI_RETRY_BACKOFF_SECONDS) + 60


def _batch_item_close(
    job: AiBatchJob, item: AiBatchItem, status: str, *, error: str = "", text: str = "", usage_log_id: str = ""
) -> None:
    AiBatchItem.objects.filter(pk=item.pk).update(
        status=status, error=error[:500], text=text, usage_log_id=usage_log_id, updated_at=timezone.now()
    )
    counter = "done" if status == BatchItemStatus.DONE else "failed"
    AiBatchJob.objects.filter(pk=job.pk).update(**{counter: F(counter) + 1})


def ai_usage_export_csv(*, user, days: int = 30, month: str = "", request=None) -> tuple[str, Iterator[str]]:
    """The reconciliation export (admins): one CSV row per day x model x user x task x RC with tokens by kind, cost
    and calls, for the last `days` days or one calendar `month` ("YYYY-MM"). Writes one audit event. Returns the
    file name and the CSV text chunks (cells that look like formulas are neutralised)."""
    import csv
    import io

    from accounts.permissions import require_role
    from ai_assist.selectors import EXPORT_COLUMNS, usage_export_rows
    from imports.csvformat import neutralise_cell

    require_role(user, "admin")
    now = timezone.now()
    if month:
        try:
            start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            raise ValidationFailed("Give the month as YYYY-MM.", fields={"month": ["Use YYYY-MM."]}) from None
        until = budgets.next_month(start)
        name = f"ai-usage-{month}.csv"
    else:
        days = max(1, min(int(days), settings.AI_USAGE_LOG_TTL_DAYS))
        start, until = now - timedelta(days=days), None
        name = f"ai-usage-last-{days}-days-{now:%Y%m%d}.csv"
    rows = usage_export_rows(user=user, since=start, until=until)
    audit_record(
        action="export.csv",
        actor=user,
        resource="ai_usage",
        request=request,
        metadata={"export": "ai_usage", "since": start.isoformat(), "rows": len(rows)},
    )

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        for number, row in enumerate(rows, start=1):
            writer.writerow([neutralise_cell(str(row[column])) for column in EXPORT_COLUMNS])
            if number % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return name, chunks()
