"""Cross-cutting pages: home, health, metrics gate."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from report_platform import health, observability
from report_platform.client_ip import client_ip
from report_platform.errors import render_error


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    report = health.check_all()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for allow-listed scrapers or a bearer token (METRICS_TOKEN)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    token_ok = bool(token) and hmac.compare_digest(header, f"Bearer {token}")
    if not token_ok and client_ip(request) not in settings.METRICS_ALLOWED_IPS:
        return render_error(request, status=403, code="forbidden", message="Metrics are not public.")
    return observability.metrics_response()
