"""Pages of the accounts app: sessions and devices (every user), users and roles (admins)."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors, services
from accounts.forms import ActiveForm, RoleForm
from accounts.models import Role
from accounts.permissions import role_required
from report_platform.errors import NotFound, ValidationFailed


def _security_context(request: HttpRequest) -> dict:
    sessions = UserSession.objects.purge_and_list(request.user)
    return {
        "sessions": sorted(sessions, key=lambda s: s.last_seen_at, reverse=True),
        "current_session_key": request.session.session_key,
        "token_families": list(selectors.token_family_list_active(user=request.user)),
        "has_totp": Authenticator.objects.filter(user=request.user, type=Authenticator.Type.TOTP).exists(),
        "api_tokens": list(selectors.api_token_list(user=request.user)) if request.user.has_role("reviewer") else [],
    }


@require_GET
@role_required("viewer")
def security(request: HttpRequest) -> HttpResponse:
    """Browser sessions and API logins of the current user, each with a way to end it; MFA status; CI tokens."""
    return render(request, "accounts/security.html", _security_context(request))


@require_POST
@role_required("reviewer")
def api_token_create(request: HttpRequest) -> HttpResponse:
    """Create a CI token and show it on this answer only (it is never stored, so never shown again)."""
    token, text = services.api_token_create(actor=request.user, name=request.POST.get("name", ""), request=request)
    context = {**_security_context(request), "new_token": text, "new_token_name": token.name}
    response = render(request, "accounts/security.html", context, status=201)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@role_required("reviewer")
def api_token_revoke(request: HttpRequest, pk: str) -> HttpResponse:
    services.api_token_revoke(actor=request.user, token_id=pk, request=request)
    messages.success(request, "The CI token is revoked; it no longer works.")
    return redirect("accounts:security")


@require_POST
@role_required("viewer")
def session_end(request: HttpRequest, pk: str) -> HttpResponse:
    if services.session_end(actor=request.user, session_id=pk, request=request):
        return redirect_to_login("/")
    messages.success(request, "The session has ended.")
    return redirect("accounts:security")


@require_POST
@role_required("viewer")
def token_family_end(request: HttpRequest, pk: str) -> HttpResponse:
    services.token_family_end(actor=request.user, family_id=pk, request=request)
    messages.success(request, "The API login has ended; its tokens no longer work.")
    return redirect("accounts:security")


@require_GET
@role_required("admin")
def user_list(request: HttpRequest) -> HttpResponse:
    role = request.GET.get("role") or None
    context = {"users": selectors.user_list(role=role), "roles": Role.choices, "role_filter": role}
    return render(request, "accounts/user_list.html", context)


def _target(pk: str):
    user = selectors.user_get(user_id=pk)
    if user is None:
        raise NotFound("No such user.")
    return user


@require_POST
@role_required("admin")
def user_role(request: HttpRequest, pk: str) -> HttpResponse:
    user = _target(pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        raise ValidationFailed(fields={k: [str(e) for e in v] for k, v in form.errors.items()})
    services.user_change_role(actor=request.user, user=user, role=form.cleaned_data["role"], request=request)
    messages.success(request, f"{user.email} is now {user.role}; their sessions and API logins have ended.")
    return redirect("accounts:user_list")


@require_POST
@role_required("admin")
def user_active(request: HttpRequest, pk: str) -> HttpResponse:
    user = _target(pk)
    form = ActiveForm(request.POST)
    form.is_valid()
    services.user_set_active(actor=request.user, user=user, active=form.cleaned_data["active"], request=request)
    messages.success(request, f"{user.email} is now {'active' if user.is_active else 'deactivated'}.")
    return redirect("accounts:user_list")
