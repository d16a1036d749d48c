"""The one error model. Services raise `DomainError` subclasses with a stable `code`; `render_error` turns any of
them (and Django's own 400/403/404/500) into the JSON envelope for the API, an htmx fragment, or a friendly page.

    {"error": {"code": "validation_failed", "message": "...", "fields": {"name": ["This field is required."]}}}
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


class DomainError(Exception):
    """A failure a user can act on. `code` is stable (clients branch on it); `message` is for people."""

    code = "error"
    status = 400
    default_message = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        if status:
            self.status = status
        self.fields = fields or {}
        self.extra = extra or {}
        super().__init__(self.message)


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 400
    default_message = "Some fields are not valid."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    default_message = "You do not have permission to do that."


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    status = 401
    default_message = "Authentication is required."


class Conflict(DomainError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413
    default_message = "The upload is too large."


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests. Try again later."


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    status = 503
    default_message = "A service this needs is unavailable. Try again shortly."


# Field names whose words are not just the name with spaces (the rest: `field_label`).
FIELD_LABELS = {
    "rc": "RC",
    "release_candidate": "RC",
    "q": "Search",
    "mantis_ids": "Mantis ids",
    "executed_at": "Executed at",
    "executed_by": "Executed by",
    "password1": "Password",
    "password2": "Password (again)",
}


def error_envelope(
    *, code: str, message: str, fields: dict[str, list[str]] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "fields": fields or {}}
    if extra:
        body.update(extra)
    return {"error": body}


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.headers.get("Accept", "").startswith("application/json")


def render_error(
    request: HttpRequest,
    *,
    status: int,
    code: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """Render one error for whoever asked: JSON envelope, htmx fragment, or a full page."""
    if wants_json(request):
        response = JsonResponse(error_envelope(code=code, message=message, fields=fields, extra=extra), status=status)
        response.error_model = True
        return response
    context = {"status": status, "code": code, "message": message, "fields": field_messages(fields or {})}
    if getattr(request, "htmx", False):
        response = HttpResponse(render_to_string("partials/error.html", context, request=request), status=status)
        # Errors land in the page's message area, whatever the element that asked was targeting.
        response["HX-Retarget"] = "#messages"
        response["HX-Reswap"] = "innerHTML"
    else:
        response = HttpResponse(render_to_string("errors/error.html", context, request=request), status=status)
    response.error_model = True  # rendered here: the DEBUG 404 replacement leaves it alone
    return response


def field_label(name: str) -> str:
    """A field name as people read it: "release_candidate" -> "Release candidate", "rc" -> "RC"."""
    return FIELD_LABELS.get(name) or name.replace("_", " ").strip().capitalize() or "This form"


def field_messages(fields: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """Field errors with readable labels, for pages and fragments (the JSON envelope keeps the field names)."""
    return [("" if name == "__all__" else field_label(name), list(messages)) for name, messages in fields.items()]


def render_domain_error(request: HttpRequest, error: DomainError) -> HttpResponse:
    return render_error(
        request, status=error.status, code=error.code, message=error.message, fields=error.fields, extra=error.extra
    )


# Django's handler400/403/404/500: the same shapes for errors raised outside our code.
def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render_error(request, status=400, code="bad_request", message="The request was malformed.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render_error(request, status=403, code="forbidden", message=Forbidden.default_message)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render_error(request, status=404, code="not_found", message="That page or object does not exist.")


def server_error(request: HttpRequest) -> HttpResponse:
    return render_error(
        request,
        status=500,
        code="server_error",
        message="Something went wrong on our side. It has been logged; please try again.",
        extra={"request_id": getattr(request, "request_id", "")},
    )
