"""Writes of the accounts app: API token families, sessions, roles, activation, and the API auth flows that reuse
allauth's forms, rate limits and signals. Each action writes its one audit event here."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from datetime import timedelta

from allauth.account import signals as account_signals
from allauth.account.adapter import get_adapter
from allauth.account.forms import ResetPasswordKeyForm, SignupForm, UserTokenForm
from allauth.account.internal.flows.email_verification import send_verification_email_to_address
from allauth.account.internal.flows.password_reset import finalize_password_reset
from allauth.account.models import EmailAddress
from allauth.core import ratelimit
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.usersessions.models import UserSession
from bson import ObjectId
from django import forms
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from accounts import metrics, selectors, tokens
from accounts.models import Role, TokenFamily, User
from audit.services import audit_record
from report_platform.client_ip import client_ip
from report_platform.errors import Conflict, Forbidden, NotAuthenticated, NotFound, RateLimited, ValidationFailed

logger = logging.getLogger(__name__)

INVALID_TOKEN = "The token is invalid or has expired."


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    access_expires_in: int
    family_id: str


# --- token families --------------------------------------------------------------------------------------------


def _network(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address: a new network is what flags a refresh."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def device_fingerprint(*, user_agent: str, ip: str) -> str:
    """SHA-256 over the user agent and the client's network."""
    return hashlib.sha256(f"{user_agent}|{_network(ip)}".encode()).hexdigest()


def _request_device(request: HttpRequest) -> tuple[str, str]:
    return request.headers.get("User-Agent", "")[:300], client_ip(request)


def _issue(*, family: TokenFamily, request: HttpRequest) -> TokenPair:
    """Mint an access token and the family's next refresh token (stored as a hash)."""
    now = timezone.now()
    user_agent, ip = _request_device(request)
    jti = tokens.new_token_id()
    family.tokens.create(
        user_id=family.user_id,
        token_hash=tokens.hash_token_id(jti),
        created_at=now,
        expires_at=family.expires_at,
        ip=ip,
        user_agent=user_agent,
    )
    access_expires = min(now + settings.JWT_ACCESS_LIFETIME, family.expires_at)
    # Tokens name the family by its random public id; TokenPair.family_id (audit, sessions page) is the database id.
    user_id, family_id = str(family.user_id), family.public_id
    access = tokens.encode(
        typ=tokens.ACCESS,
        user_id=user_id,
        family_id=family_id,
        jti=tokens.new_token_id(),
        expires_at=access_expires,
        now=now,
    )
    refresh = tokens.encode(
        typ=tokens.REFRESH, user_id=user_id, family_id=family_id, jti=jti, expires_at=family.expires_at, now=now
    )
    return TokenPair(
        access=access,
        refresh=refresh,
        access_expires_in=int((access_expires - now).total_seconds()),
        family_id=str(family.pk),
    )


def token_family_start(*, user: User, request: HttpRequest, device_name: str = "") -> TokenPair:
    """A new API login: a family with an absolute lifetime, its first refresh token and an access token."""
    now = timezone.now()
    user_agent, ip = _request_device(request)
    family = TokenFamily.objects.create(
        user=user,
        created_at=now,
        last_used_at=now,
        expires_at=now + settings.JWT_REFRESH_LIFETIME,
        device_name=device_name[:100],
        user_agent=user_agent,
        ip=ip,
        last_ip=ip,
        last_user_agent=user_agent,
        fingerprint=device_fingerprint(user_agent=user_agent, ip=ip),
    )
    return _issue(family=family, request=request)


def token_refresh(*, refresh_token: str, request: HttpRequest) -> TokenPair:
    """Rotate: claim the refresh token with one conditional update (exactly one concurrent caller wins), then issue
    the next pair. A token that was already used is a reuse: the whole family is revoked and audited, unless the
    same device presents it again within JWT_REFRESH_REUSE_GRACE_SECONDS of its rotation (parallel refreshes of
    one client): that answers 409 `token_already_rotated` and the winner's new tokens stay valid."""
    from accounts.models import RefreshToken

    try:
        claims = tokens.decode(refresh_token, typ=tokens.REFRESH)
    except tokens.InvalidToken as exc:
        raise NotAuthenticated(INVALID_TOKEN, code="invalid_token") from exc
    token_hash = tokens.hash_token_id(claims["jti"])
    now = timezone.now()
    # The family is read BEFORE the claim, so the winner of concurrent refreshes is never turned away by a state
    # the losers changed afterwards.
    stored = RefreshToken.objects.select_related("family", "user").filter(token_hash=token_hash).first()
    if stored is None:
        raise NotAuthenticated(INVALID_TOKEN, code="invalid_token")
    family = stored.family
    user_agent, ip = _request_device(request)
    fingerprint = device_fingerprint(user_agent=user_agent, ip=ip)
    claimed = RefreshToken.objects.filter(pk=stored.pk, used_at=None, expires_at__gt=now).update(
        used_at=now, used_fingerprint=fingerprint
    )
    if claimed != 1:
        used = RefreshToken.objects.filter(pk=stored.pk, used_at__isnull=False).first()
        if used is not None:
            grace = timedelta(seconds=settings.JWT_REFRESH_REUSE_GRACE_SECONDS)  # 0: no grace at all
            same_device = bool(used.used_fingerprint) and used.used_fingerprint == fingerprint
            if grace and same_device and now - used.used_at <= grace and family.is_active:
                raise Conflict(
                    "This refresh token was just exchanged by another request of this client: use the tokens that "
                    "request received.",
                    code="token_already_rotated",
                )
            _revoke_family_for_reuse(family=family, request=request)
        raise NotAuthenticated(INVALID_TOKEN, code="invalid_token")
    if not family.is_active or not stored.user.is_active:
        raise NotAuthenticated(INVALID_TOKEN, code="invalid_token")

    updates = {"last_used_at": now, "last_ip": ip, "last_user_agent": user_agent}
    if fingerprint != family.fingerprint:
        reason = "new network" if _network(ip) != _network(family.last_ip) else "new device"
        updates.update(fingerprint=fingerprint, flagged_at=now, flag_reason=f"Refresh from a {reason} ({ip})")
        audit_record(
            action="auth.token_new_device",
            actor=stored.user,
            resource=f"token_family:{family.pk}",
            request=request,
            metadata={"reason": reason, "previous_ip": family.last_ip},
        )
    TokenFamily.objects.filter(pk=family.pk).update(**updates)
    for field, value in updates.items():
        setattr(family, field, value)
    return _issue(family=family, request=request)


def _revoke_family_for_reuse(*, family: TokenFamily, request: HttpRequest) -> None:
    revoked = TokenFamily.objects.filter(pk=family.pk, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_reason="reuse"
    )
    if revoked == 1:
        logger.warning("Refresh token reuse: family %s revoked", family.pk)
        audit_record(
            action="auth.token_reuse",
            actor=family.user,
            resource=f"token_family:{family.pk}",
            outcome="denied",
            request=request,
            metadata={"family_revoked": True},
        )


def _token_failure_key(request: HttpRequest) -> str:
    # Fixed windows named by their start, so the count resets with the clock (and time travel in tests).
    window = int(timezone.now().timestamp()) // settings.API_TOKEN_FAILURE_WINDOW_SECONDS
    return f"accounts:token-failures:{client_ip(request)}:{window}"


def token_failures_check(*, request: HttpRequest) -> None:
    """Refuse (429 `too_many_token_failures`) a client IP that failed API_TOKEN_FAILURES_PER_IP bearer-token
    checks within the current window, before its token is even looked at: guessing stays impossible at scale."""
    if (cache.get(_token_failure_key(request)) or 0) >= settings.API_TOKEN_FAILURES_PER_IP:
        raise RateLimited("Too many invalid tokens from your address. Try again later.", code="too_many_token_failures")


def token_failure_record(*, request: HttpRequest) -> None:
    """Count one failed bearer-token check for the client IP (shared by every web process through Redis)."""
    key = _token_failure_key(request)
    timeout = 2 * settings.API_TOKEN_FAILURE_WINDOW_SECONDS
    cache.add(key, 0, timeout=timeout)
    try:
        cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=timeout)


def token_families_revoke_for_user(*, user: User, reason: str) -> int:
    """Revoke every live API token family of `user` (no audit event: the calling action writes it)."""
    return TokenFamily.objects.filter(user=user, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )


def token_family_end(*, actor: User, family_id: str, request: HttpRequest) -> None:
    """The owner ends one of their API logins from the sessions page."""
    if not ObjectId.is_valid(family_id):
        raise NotFound("No such API login.")
    ended = TokenFamily.objects.filter(pk=ObjectId(family_id), user=actor, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_reason="ended_by_user"
    )
    if ended != 1:
        raise NotFound("No such API login.")
    audit_record(action="auth.token_family_end", actor=actor, resource=f"token_family:{family_id}", request=request)


def api_logout(*, refresh_token: str, request: HttpRequest) -> None:
    """End the API login the refresh token belongs to (idempotent for an already ended family)."""
    try:
        claims = tokens.decode(refresh_token, typ=tokens.REFRESH)
    except tokens.InvalidToken as exc:
        raise NotAuthenticated(INVALID_TOKEN, code="invalid_token") from exc
    from accounts.models import RefreshToken

    # Found by the token's secret id (hashed), never by a family id from the claims.
    stored = (
        RefreshToken.objects.select_related("family__user")
        .filter(token_hash=tokens.hash_token_id(claims["jti"]))
        .first()
    )
    if stored is None:
        raise NotAuthenticated(INVALID_TOKEN, code="invalid_token")
    family = stored.family
    ended = TokenFamily.objects.filter(pk=family.pk, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_reason="logout"
    )
    if ended == 1:
        audit_record(action="auth.logout", actor=family.user, resource=f"token_family:{family.pk}", request=request)


# --- browser sessions ------------------------------------------------------------------------------------------


# Why a browser session was ended by someone else, told to its browser on the next page (the login page).
SESSION_END_REASONS = {
    "role_change": "An administrator changed your role, so you were signed out. Please sign in again.",
    "deactivated": "An administrator deactivated your account, so you were signed out.",
}
SESSION_END_NOTICE_SECONDS = 14 * 24 * 3600


def session_end_notice_key(session_key: str) -> str:
    """The cache key of an ended session's notice (the session key itself is hashed: it is a credential)."""
    return "accounts:session-ended:" + hashlib.sha256(session_key.encode()).hexdigest()


def sessions_end_for_user(*, user: User, keep_session_key: str | None = None, reason: str = "") -> int:
    """End the user's browser sessions (all, or all but `keep_session_key`). With a `reason` from
    SESSION_END_REASONS, each ended browser is told why on its next request (see accounts.middleware)."""
    from allauth.usersessions.adapter import get_adapter as get_sessions_adapter

    to_end = [s for s in UserSession.objects.filter(user=user) if s.session_key != keep_session_key]
    if reason in SESSION_END_REASONS and to_end:
        cache.set_many(
            {session_end_notice_key(session.session_key): reason for session in to_end},
            timeout=SESSION_END_NOTICE_SECONDS,
        )
    get_sessions_adapter().end_sessions(to_end)
    return len(to_end)


def session_end(*, actor: User, session_id: str, request: HttpRequest) -> bool:
    """The owner ends one browser session. Returns True when it was the current one (the caller is logged out)."""
    if not ObjectId.is_valid(session_id):
        raise NotFound("No such session.")
    session = UserSession.objects.filter(pk=ObjectId(session_id), user=actor).first()
    if session is None:
        raise NotFound("No such session.")
    current = session.session_key == request.session.session_key
    audit_record(action="auth.session_end", actor=actor, resource=f"session:{session_id}", request=request)
    session.end()
    return current


def credentials_changed(*, user: User, request: HttpRequest | None, reason: str) -> None:
    """After a password reset or change: end every other browser session and every API token family."""
    keep = request.session.session_key if request is not None and request.user.is_authenticated else None
    sessions_end_for_user(user=user, keep_session_key=keep)
    token_families_revoke_for_user(user=user, reason=reason)


# --- roles and activation --------------------------------------------------------------------------------------


def _ensure_not_last_admin(*, user: User) -> None:
    if user.role == Role.ADMIN and user.is_active and selectors.admin_count_active() <= 1:
        raise Conflict("The last admin cannot lose the admin role.", code="last_admin")


def user_change_role(*, actor: User, user: User, role: str, request: HttpRequest | None) -> User:
    """Change a user's role (admins only); the user's sessions and token families end."""
    if not actor.has_role(Role.ADMIN):
        raise Forbidden("Only admins change roles.")
    if role not in Role.values:
        raise ValidationFailed(fields={"role": [f"Choose one of: {', '.join(Role.values)}."]})
    if user.role == role:
        return user
    if role != Role.ADMIN:
        _ensure_not_last_admin(user=user)
    previous = user.role
    User.objects.filter(pk=user.pk).update(role=role, updated_at=timezone.now())
    user.role = role
    keep = request.session.session_key if request is not None and user.pk == actor.pk else None
    sessions_end_for_user(user=user, keep_session_key=keep, reason="role_change")
    token_families_revoke_for_user(user=user, reason="role_change")
    audit_record(
        action="user.role_change",
        actor=actor,
        resource=f"user:{user.pk}",
        request=request,
        metadata={"from": previous, "to": role, "email": user.email},
    )
    return user


def user_set_active(*, actor: User, user: User, active: bool, request: HttpRequest | None) -> User:
    """Activate or deactivate a user (admins only); deactivation ends sessions and token families."""
    if not actor.has_role(Role.ADMIN):
        raise Forbidden("Only admins activate or deactivate users.")
    if user.is_active == active:
        return user
    if not active:
        _ensure_not_last_admin(user=user)
    User.objects.filter(pk=user.pk).update(is_active=active, updated_at=timezone.now())
    user.is_active = active
    if not active:
        sessions_end_for_user(user=user, reason="deactivated")
        token_families_revoke_for_user(user=user, reason="deactivated")
    audit_record(
        action="user.activate" if active else "user.deactivate",
        actor=actor,
        resource=f"user:{user.pk}",
        request=request,
        metadata={"email": user.email},
    )
    return user


# --- API auth flows (allauth's forms, rate limits and signals) --------------------------------------------------


def _form_errors(form: forms.Form) -> dict[str, list[str]]:
    names = {"password1": "password", "password2": "password", "uidb36": "uid"}
    fields: dict[str, list[str]] = {}
    for name, errors in form.errors.items():
        fields.setdefault(names.get(name, name), []).extend(str(e) for e in errors)
    return fields


def api_register(*, request: HttpRequest, email: str, password: str) -> None:
    """Sign up through allauth's form. New and already-registered addresses get the same answer; the mailbox
    receives a verification link or an "account exists" notice. No session, no token until verified."""
    if not ratelimit.consume(request, action="signup"):
        raise RateLimited(code="rate_limited")
    form = SignupForm(data={"email": email, "password1": password, "password2": password})
    if not form.is_valid():
        raise ValidationFailed(fields=_form_errors(form))
    if form.account_already_exists:
        # The adapter hashes a password there too: same timing as a new account (accounts/adapters.py).
        get_adapter(request).send_account_already_exists_mail(form.cleaned_data["email"])
        return
    user = form.save(request)
    account_signals.user_signed_up.send(sender=user.__class__, request=request, user=user)
    address = EmailAddress.objects.get_for_user(user, user.email)
    send_verification_email_to_address(request, address, signup=True)


def _mfa_code_valid(*, user: User, code: str) -> bool:
    for authenticator in Authenticator.objects.filter(user=user).exclude(type=Authenticator.Type.WEBAUTHN):
        if authenticator.wrap().validate_code(code.strip()):
            authenticator.record_usage()
            return True
    return False


def _login_failed(*, request: HttpRequest, email: str, user: User | None, reason: str) -> None:
    metrics.login_attempt("failure")
    audit_record(
        action="auth.login",
        actor=user,
        actor_email=email,
        outcome="failure",
        request=request,
        metadata={"reason": reason, "channel": "api" if request.path.startswith("/api/") else "browser"},
    )


def api_login(*, request: HttpRequest, email: str, password: str, code: str = "", device_name: str = "") -> TokenPair:
    """Password (allauth's authenticate with its per-account and per-IP limits), then the TOTP or recovery code
    when MFA is enrolled; returns a new token family."""
    adapter = get_adapter(request)
    email = email.strip().lower()
    try:
        user = adapter.authenticate(request, email=email, password=password)
    except forms.ValidationError as exc:
        raise RateLimited("Too many failed login attempts. Try again later.", code="too_many_login_attempts") from exc
    if user is None or not user.is_active:
        if user is not None:
            _login_failed(request=request, email=email, user=None, reason="inactive")
        raise NotAuthenticated(
            "The email address and/or password you specified are not correct.", code="invalid_credentials"
        )
    if not EmailAddress.objects.filter(user=user, verified=True).exists():
        _login_failed(request=request, email=email, user=None, reason="unverified")
        raise Forbidden("Verify your email address first; we sent you a link.", code="email_not_verified")
    if is_mfa_enabled(user, [Authenticator.Type.TOTP]):
        if not code:
            raise NotAuthenticated("Enter the code from your authenticator app.", code="mfa_required")
        if not _mfa_code_valid(user=user, code=code):
            # A wrong second factor counts against the same per-account limit as a wrong password.
            ratelimit.consume(
                request, action="login_failed", key=adapter._get_login_attempts_cache_key(request, email=email)
            )
            _login_failed(request=request, email=email, user=None, reason="mfa")
            raise NotAuthenticated("The code is not valid.", code="invalid_mfa_code")
    elif user.role in settings.MFA_REQUIRED_ROLES:
        raise Forbidden(
            "Your role requires two-factor authentication: enrol it in the browser first.",
            code="mfa_enrolment_required",
        )
    pair = token_family_start(user=user, request=request, device_name=device_name)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    metrics.login_attempt("success")
    audit_record(
        action="auth.login",
        actor=user,
        resource=f"token_family:{pair.family_id}",
        request=request,
        metadata={"channel": "api"},
    )
    return pair


def api_password_reset_request(*, request: HttpRequest, email: str) -> None:
    """allauth's reset form and cooldown (1 mail per address per window); unknown addresses answer the same."""
    from accounts.forms import ResetPasswordForm

    form = ResetPasswordForm(data={"email": email})
    if not form.is_valid():
        raise ValidationFailed(fields=_form_errors(form))
    if not ratelimit.consume(request, action="reset_password", key=form.cleaned_data["email"].lower()):
        raise RateLimited("A reset mail was sent recently. Try again later.", code="rate_limited")
    form.save(request)


def api_password_reset_confirm(*, request: HttpRequest, uid: str, key: str, password: str) -> None:
    """Set a new password with the key from the reset mail (single use, 1 h). No login follows; every session and
    token family of the user ends (receivers.on_password_reset)."""
    if not ratelimit.consume(request, action="reset_password_from_key"):
        raise RateLimited(code="rate_limited")
    token_form = UserTokenForm(data={"uidb36": uid, "key": key})
    if not token_form.is_valid():
        raise ValidationFailed("The reset link is invalid or has expired.", code="invalid_reset_key")
    user = token_form.reset_user
    form = ResetPasswordKeyForm(data={"password1": password, "password2": password}, user=user, temp_key=key)
    if not form.is_valid():
        raise ValidationFailed(fields=_form_errors(form))
    form.save()
    finalize_password_reset(request, user)


# --- CI tokens -------------------------------------------------------------------------------------------------

API_TOKEN_NAME_MAX_LENGTH = 100
API_TOKENS_PER_USER_MAX = 20


def api_token_create(*, actor: User, name: str, user: User | None = None, request: HttpRequest | None = None):
    """Create a long-lived CI token for `user` (default: the actor; another user only by an admin). Returns
    (ApiToken, the token text): the text is shown once and never stored (only its SHA-256). The token may import
    results and record runs in bulk, nothing else, and only while its user is an active reviewer or admin."""
    from accounts.models import ApiToken
    from accounts.permissions import require_role

    owner = user or actor
    require_role(actor, "admin" if owner.pk != actor.pk else "reviewer")
    require_role(owner, "reviewer")
    name = " ".join((name or "").split())
    if not name or len(name) > API_TOKEN_NAME_MAX_LENGTH:
        raise ValidationFailed(
            "Name the token (where it is used, e.g. 'GitLab CI web').",
            code="invalid_name",
            fields={"name": [f"1 to {API_TOKEN_NAME_MAX_LENGTH} characters."]},
        )
    if ApiToken.objects.filter(user=owner, revoked_at=None).count() >= API_TOKENS_PER_USER_MAX:
        raise Conflict(f"At most {API_TOKENS_PER_USER_MAX} tokens per user; revoke one first.", code="too_many_tokens")
    prefix, text = tokens.ci_token_new()
    token = ApiToken.objects.create(user=owner, name=name, prefix=prefix, token_hash=tokens.ci_token_hash(text))
    audit_record(
        action="auth.api_token_create",
        actor=actor,
        resource=f"api_token:{token.pk}",
        request=request,
        metadata={"name": name, "prefix": prefix, "user": str(owner.pk), "scope": token.scope},
    )
    return token, text


def api_token_revoke(*, actor: User, token_id: str, request: HttpRequest | None = None) -> None:
    """Revoke a CI token: its owner, or an admin. It stops working at once. Revoking twice is NotFound."""
    from accounts.models import ApiToken

    if not ObjectId.is_valid(str(token_id)):
        raise NotFound("No such token.")
    tokens_of = ApiToken.objects.filter(pk=ObjectId(str(token_id)), revoked_at=None)
    if not actor.has_role("admin"):
        tokens_of = tokens_of.filter(user=actor)
    token = tokens_of.first()
    if token is None or not tokens_of.update(revoked_at=timezone.now()):
        raise NotFound("No such token.")
    audit_record(
        action="auth.api_token_revoke",
        actor=actor,
        resource=f"api_token:{token.pk}",
        request=request,
        metadata={"name": token.name, "prefix": token.prefix, "user": str(token.user_id)},
    )


def api_token_used(*, token, request: HttpRequest) -> None:
    """Note when and from where a CI token was last used (at most once a minute: a single-document update)."""
    from accounts.models import ApiToken

    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=client_ip(request)[:45])
