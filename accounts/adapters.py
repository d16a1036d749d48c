"""allauth adapters: audit events and metrics around authentication, the client IP behind our proxies, and
encryption of MFA secrets at rest. ObjectId handling without an adapter hook lives in accounts/allauth_compat.py."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from accounts import metrics
from audit.services import audit_record
from report_platform.client_ip import client_ip


@dataclass(frozen=True)
class SiteIdentity:
    """What allauth's mail templates read from a Site: its name and domain."""

    name: str
    domain: str


def _channel(request: HttpRequest) -> str:
    return "api" if request.path.startswith("/api/") else "browser"


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        """The peer address, or X-Forwarded-For only when the peer is a trusted proxy: a spoofed header from a
        client never changes the per-IP rate-limit key."""
        return client_ip(request) or "0.0.0.0"  # noqa: S104 - a key for the rate limiter, never bound

    def pre_authenticate(self, request: HttpRequest, **credentials) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except forms.ValidationError:
            metrics.login_attempt("locked")
            audit_record(
                action="auth.lockout",
                actor_email=str(credentials.get("email", ""))[:254].lower(),
                outcome="denied",
                request=request,
                metadata={"channel": _channel(request)},
            )
            raise

    def authentication_failed(self, request: HttpRequest, **credentials) -> None:
        super().authentication_failed(request, **credentials)
        metrics.login_attempt("failure")
        audit_record(
            action="auth.login",
            actor_email=str(credentials.get("email", ""))[:254].lower(),
            outcome="failure",
            request=request,
            metadata={"reason": "credentials", "channel": _channel(request)},
        )

    def login(self, request: HttpRequest, user) -> None:
        """The browser login completes here (after every stage, MFA included)."""
        super().login(request, user)
        metrics.login_attempt("success")
        audit_record(action="auth.login", actor=user, request=request, metadata={"channel": "browser"})

    def logout(self, request: HttpRequest) -> None:
        user = request.user
        if user.is_authenticated:
            audit_record(action="auth.logout", actor=user, request=request, metadata={"channel": "browser"})
        super().logout(request)

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Every allauth mail names the configured site (SITE_NAME / SITE_DOMAIN), never the request's host."""
        site = SiteIdentity(name=settings.SITE_NAME, domain=settings.SITE_DOMAIN)
        super().send_mail(template_prefix, email, {**context, "current_site": site})

    def send_account_already_exists_mail(self, email: str) -> None:
        """A sign-up with a registered address (browser and API): do the work a new account costs (one password
        hash with the production hasher) before the notice, so the answer's timing does not reveal the account."""
        make_password(secrets.token_urlsafe(16))
        super().send_account_already_exists_mail(email)

    def save_user(self, request: HttpRequest, user, form, commit: bool = True):
        """Sign-ups are always viewers; the email is stored lower-case."""
        user = super().save_user(request, user, form, commit=False)
        user.email = user.email.lower()
        user.role = "viewer"
        user.verified = False
        if commit:
            user.save()
        return user


def _fernet() -> MultiFernet:
    raw_keys = list(settings.MFA_ENCRYPTION_KEYS)
    if not raw_keys:
        digest = hashlib.sha256(f"report-platform mfa encryption|{settings.SECRET_KEY}".encode()).digest()
        raw_keys = [base64.urlsafe_b64encode(digest).decode()]
    try:
        return MultiFernet([Fernet(key.encode()) for key in raw_keys])
    except ValueError as exc:
        raise ImproperlyConfigured("MFA_ENCRYPTION_KEYS must be Fernet keys (Fernet.generate_key())") from exc


ENCRYPTED_PREFIX = "fernet:"


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        """TOTP secrets and recovery-code seeds are stored encrypted (the raw document shows no secret)."""
        return ENCRYPTED_PREFIX + _fernet().encrypt(text.encode()).decode()

    def decrypt(self, encrypted_text: str) -> str:
        if not encrypted_text.startswith(ENCRYPTED_PREFIX):
            raise ImproperlyConfigured("An MFA secret is stored unencrypted")
        try:
            return _fernet().decrypt(encrypted_text[len(ENCRYPTED_PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise ImproperlyConfigured("An MFA secret cannot be decrypted with MFA_ENCRYPTION_KEYS") from exc

    def can_delete_authenticator(self, authenticator) -> bool:
        """A role that requires MFA cannot remove its TOTP authenticator."""
        user = authenticator.user
        if authenticator.type == authenticator.Type.TOTP and user.role in settings.MFA_REQUIRED_ROLES:
            return False
        return super().can_delete_authenticator(authenticator)
