"""The JSON API under /api/v1: one NinjaAPI, each app's router mounted, every error in the envelope.

OpenAPI schema at /api/v1/openapi.json, docs page at /api/v1/docs (Swagger UI served from our static files).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from accounts.api import router as accounts_router
from accounts.api_auth import API_AUTH
from ai_assist.api import router as ai_router
from audit.api import router as audit_router
from imports.api import router as imports_router
from releases.api import router as releases_router
from report_platform import health, rate_limits
from report_platform.api_parser import StorableJSONParser
from report_platform.errors import DomainError, error_envelope
from reports.api import router as reports_router

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="Report Platform API",
    version="1",
    description=(
        "Release-quality tracking: suites, cases, RC runs, metrics, CSV imports, AI assistance and reports. "
        'Every error has the shape {"error": {"code", "message", "fields"}}. Every route is rate limited (per '
        "user by role, per IP when anonymous, heavy routes separately): answers carry RateLimit-Limit, "
        "RateLimit-Remaining, RateLimit-Reset and RateLimit-Policy; a refusal is 429 rate_limited with Retry-After."
    ),
    urls_namespace="api",
    auth=API_AUTH,
    parser=StorableJSONParser(),
    # Gateway rate limits on every route (report_platform/rate_limits.py): the throttle counts each call after
    # authentication; the decorator below adds the RateLimit headers to every answer.
    throttle=rate_limits.ApiRateThrottle(),
    docs_decorator=rate_limits.rate_limited_view,
)
# mode "view" wraps the whole operation (authentication included); ninja's "operation" mode wraps only the endpoint.
api.add_decorator(rate_limits.rate_limit_headers, mode="view")


def _envelope(request: HttpRequest, status: int, code: str, message: str, fields=None, extra=None) -> HttpResponse:
    return api.create_response(
        request, error_envelope(code=code, message=message, fields=fields, extra=extra), status=status
    )


def _validation_fields(errors: list[dict]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for error in errors:
        # ninja's loc is ("body", "payload", "name") / ("query", "page"): keep the meaningful tail.
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        fields.setdefault(".".join(location) or "__all__", []).append(error.get("msg", "Invalid value."))
    return fields


@api.exception_handler(DomainError)
def _domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return _envelope(request, exc.status, exc.code, exc.message, exc.fields, exc.extra)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _envelope(request, 400, "validation_failed", "Some fields are not valid.", _validation_fields(exc.errors))


@api.exception_handler(AuthenticationError)
def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _envelope(request, 401, "not_authenticated", "Authentication is required.")


@api.exception_handler(Throttled)
def _rate_limited(request: HttpRequest, exc: Throttled) -> HttpResponse:
    decision = rate_limits.decision_for(request)
    if decision is None:
        return _envelope(request, 429, "rate_limited", "Too many requests. Try again later.")
    return rate_limits.refused_response(request, decision)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, DomainError):  # ninja wraps parser errors (e.g. 415 from api_parser) in a 400
        return _domain_error(request, exc.__cause__)
    codes = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found", 429: "rate_limited"}
    return _envelope(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _envelope(request, 404, "not_found", "Not found.")


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _envelope(request, 403, "forbidden", "You do not have permission to do that.")


# Raised by Django when request.body / POST / FILES is read (body parsing, CSRF check of session auth, uploads).
@api.exception_handler(RequestDataTooBig)
def _payload_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _envelope(request, 413, "payload_too_large", "The request body is too large.")


@api.exception_handler(MultiPartParserError)
@api.exception_handler(TooManyFieldsSent)
@api.exception_handler(TooManyFilesSent)
@api.exception_handler(UnreadablePostError)
def _malformed_body(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _envelope(request, 400, "malformed_body", "The request body could not be read.")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("Unhandled API error", exc_info=exc)
    return _envelope(
        request,
        500,
        "server_error",
        "Something went wrong on our side. It has been logged; please try again.",
        extra={"request_id": getattr(request, "request_id", "")},
    )


@api.get("/health", auth=None, tags=["health"], summary="Liveness and dependencies (MongoDB, Redis)")
def api_health(request: HttpRequest):
    report = health.check_all()
    return api.create_response(request, report, status=200 if report["status"] == "ok" else 503)


api.add_router("/", accounts_router)
api.add_router("/", releases_router)
api.add_router("/", imports_router)
api.add_router("/", ai_router)
api.add_router("/", reports_router)
api.add_router("/", audit_router)
