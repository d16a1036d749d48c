"""JSON endpoints of the accounts app, mounted under /api/v1 by report_platform/api.py."""

from __future__ import annotations

from allauth.mfa.utils import is_mfa_enabled
from django.http import HttpRequest
from ninja import Router, Status

from accounts import services
from accounts.schemas import DetailOut, LoginIn, MeOut, RefreshIn, RegisterIn, ResetConfirmIn, ResetIn, TokenPairOut

router = Router(tags=["auth"])

REGISTER_SENT = "If the address can be registered, a verification link is on its way."
RESET_SENT = "If the address belongs to an account, a reset link is on its way."


def _pair(pair: services.TokenPair) -> dict:
    return {
        "access": pair.access,
        "refresh": pair.refresh,
        "token_type": "Bearer",
        "expires_in": pair.access_expires_in,
    }


@router.post("/auth/register", auth=None, response={202: DetailOut}, url_name="auth_register")
def register(request: HttpRequest, payload: RegisterIn):
    """Create a viewer account; no session or token until the email address is verified."""
    services.api_register(request=request, email=payload.email, password=payload.password)
    return Status(202, {"detail": REGISTER_SENT})


@router.post("/auth/login", auth=None, response={200: TokenPairOut}, url_name="auth_login")
def login(request: HttpRequest, payload: LoginIn):
    """Email + password (+ TOTP/recovery code when enrolled) → access (15 min) and refresh (rotating) tokens."""
    pair = services.api_login(
        request=request,
        email=payload.email,
        password=payload.password,
        code=payload.code,
        device_name=payload.device_name,
    )
    return Status(200, _pair(pair))


@router.post("/auth/refresh", auth=None, response={200: TokenPairOut}, url_name="auth_refresh")
def refresh(request: HttpRequest, payload: RefreshIn):
    """Exchange a refresh token for a new pair; the old refresh token stops working (reuse revokes the login)."""
    return Status(200, _pair(services.token_refresh(refresh_token=payload.refresh, request=request)))


@router.post("/auth/logout", auth=None, response={204: None}, url_name="auth_logout")
def logout(request: HttpRequest, payload: RefreshIn):
    """End the API login (token family) the refresh token belongs to."""
    services.api_logout(refresh_token=payload.refresh, request=request)
    return Status(204, None)


@router.post("/auth/reset", auth=None, response={202: DetailOut}, url_name="auth_reset")
def reset(request: HttpRequest, payload: ResetIn):
    """Mail a password reset link (same answer for unknown addresses; one mail per address per cooldown)."""
    services.api_password_reset_request(request=request, email=payload.email)
    return Status(202, {"detail": RESET_SENT})


@router.post("/auth/reset/confirm", auth=None, response={204: None}, url_name="auth_reset_confirm")
def reset_confirm(request: HttpRequest, payload: ResetConfirmIn):
    """Set a new password with the key from the mail. No login follows; all sessions and tokens end."""
    services.api_password_reset_confirm(request=request, uid=payload.uid, key=payload.key, password=payload.password)
    return Status(204, None)


@router.get("/auth/me", response=MeOut, url_name="auth_me")
def me(request: HttpRequest):
    """Who the token (or session) belongs to."""
    user = request.auth
    return {"id": str(user.pk), "email": user.email, "role": user.role, "mfa_enabled": is_mfa_enabled(user)}
