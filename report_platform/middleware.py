"""Cross-cutting middleware: request ids with JSON access logs, and domain errors rendered in one place."""

from __future__ import annotations

import re
import time
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from report_platform.errors import DomainError, page_not_found, render_domain_error
from report_platform.logging import bind_context, clear_context, get_logger

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id (from nginx) is kept only if it is short and harmless; otherwise we mint one.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

access_log = get_logger("report_platform.access")
# Paths that carry a one-time secret (password-reset and email-confirmation keys) are logged with it masked.
_SECRET_IN_PATH = re.compile(r"^(/accounts/password/reset/key/|/accounts/confirm-email/)[^/]+")


def loggable_path(path: str) -> str:
    return _SECRET_IN_PATH.sub(r"\1[redacted]", path)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        clear_context()
        bind_context(request_id=request.request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        user = getattr(request, "user", None)
        access_log.info(
            "request",
            method=request.method,
            path=loggable_path(request.path),
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user_id=str(user.pk) if user is not None and user.is_authenticated else None,
        )
        clear_context()
        return response


class DomainErrorMiddleware:
    """Turns a `DomainError` raised by any view into the envelope / fragment / page for that request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.DEBUG and response.status_code == 404 and not getattr(response, "error_model", False):
            # DEBUG answers an unknown URL with Django's technical page (every URL pattern, HTML even under
            # /api/); people and API clients get the same 404 as in production instead.
            return page_not_found(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DomainError):
            return render_domain_error(request, exception)
        return None
