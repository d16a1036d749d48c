"""The accounts middleware.

- Mandatory MFA for the roles in settings.MFA_REQUIRED_ROLES: until TOTP is enrolled, every page (the Django admin
  included) redirects to the enrolment page; only enrolment, re-authentication, logout and static files pass.
- "Last seen" of browser sessions for the sessions page, written at most every SESSION_SEEN_INTERVAL seconds per
  session (allauth's USERSESSIONS_TRACK_ACTIVITY would write on every request).
"""

from __future__ import annotations

import time

from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from report_platform.client_ip import client_ip
from report_platform.errors import render_error

SESSION_SEEN_KEY = "_accounts_seen_at"
SESSION_SEEN_INTERVAL = 300

_ALLOWED_URL_NAMES = ("mfa_activate_totp", "mfa_reauthenticate", "account_reauthenticate", "account_logout")


class AccountsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            self._track_session(request)
        elif request.COOKIES.get(settings.SESSION_COOKIE_NAME):
            self._tell_why_session_ended(request)
        if (
            settings.MFA_REQUIRED_ROLES
            and user is not None
            and user.is_authenticated
            and user.role in settings.MFA_REQUIRED_ROLES
            and not self._exempt(request)
            and not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        ):
            if request.path.startswith("/api/"):
                # The browser session is refused by the API too, whatever else the request carries (an invalid
                # bearer token would fall back to the session); bearer tokens are refused at API login.
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
    def _tell_why_session_ended(request: HttpRequest) -> None:
        """A browser whose session an admin ended (role change, deactivation) hears why, once."""
        from accounts.services import SESSION_END_REASONS, session_end_notice_key

        key = session_end_notice_key(request.COOKIES[settings.SESSION_COOKIE_NAME])
        reason = cache.get(key)
        if reason in SESSION_END_REASONS:
            cache.delete(key)
            messages.warning(request, SESSION_END_REASONS[reason])

    @staticmethod
    def _track_session(request: HttpRequest) -> None:
        session = getattr(request, "session", None)
        now = time.time()
        if session is None or not session.session_key or now - session.get(SESSION_SEEN_KEY, 0) < SESSION_SEEN_INTERVAL:
            return
        UserSession.objects.filter(session_key=session.session_key, user=request.user).update(
            last_seen_at=timezone.now(),
            ip=client_ip(request) or "0.0.0.0",  # noqa: S104 - stored, never bound
            user_agent=request.headers.get("User-Agent", "")[: UserSession._meta.get_field("user_agent").max_length],
        )
        session[SESSION_SEEN_KEY] = now

    @staticmethod
    def _exempt(request: HttpRequest) -> bool:
        path = request.path
        if path.startswith(settings.STATIC_URL) or path in ("/healthz", "/metrics"):
            return True
        return any(path == reverse(name) for name in _ALLOWED_URL_NAMES)
