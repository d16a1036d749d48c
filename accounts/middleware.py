"""Mandatory MFA for the roles in settings.MFA_REQUIRED_ROLES: until TOTP is enrolled, every page (the Django admin
included) redirects to the enrolment page; only enrolment, re-authentication, logout and static files pass."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from report_platform.errors import render_error

_ALLOWED_URL_NAMES = ("mfa_activate_totp", "mfa_reauthenticate", "account_reauthenticate", "account_logout")


class MfaRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            settings.MFA_REQUIRED_ROLES
            and user is not None
            and user.is_authenticated
            and user.role in settings.MFA_REQUIRED_ROLES
            and not self._exempt(request)
            and not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        ):
            if request.path.startswith("/api/"):
                # The browser session is refused by the API too (bearer tokens are checked at API login).
                return render_error(
                    request,
                    status=403,
                    code="mfa_enrolment_required",
                    message="Your role requires two-factor authentication: enrol it first.",
                )
            target = reverse("mfa_activate_totp")
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = target
                return response
            return HttpResponseRedirect(target)
        return self.get_response(request)

    @staticmethod
    def _exempt(request: HttpRequest) -> bool:
        path = request.path
        if request.path.startswith("/api/") and "Authorization" in request.headers:
            return True  # bearer tokens: the API login already refused unenrolled privileged users
        if path.startswith(settings.STATIC_URL) or path in ("/healthz", "/metrics"):
            return True
        return any(path == reverse(name) for name in _ALLOWED_URL_NAMES)
