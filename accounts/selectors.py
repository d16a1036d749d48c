"""Reads of the accounts app."""

from __future__ import annotations

import hmac

from bson import ObjectId
from django.db.models import QuerySet
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, Role, TokenFamily, User


def user_from_access_token(*, token: str) -> User:
    """The active user of a valid access token whose family is not revoked; `tokens.InvalidToken` otherwise."""
    claims = tokens.decode(token, typ=tokens.ACCESS)
    if not ObjectId.is_valid(claims["sub"]) or not isinstance(claims["fam"], str) or len(claims["fam"]) > 32:
        raise tokens.InvalidToken("malformed subject")
    # `fam` is the family's random public id (128 bits), never its database id.
    family = (
        TokenFamily.objects.select_related("user")
        .filter(public_id=claims["fam"], user_id=ObjectId(claims["sub"]), revoked_at=None)
        .first()
    )
    if family is None or not family.user.is_active:
        raise tokens.InvalidToken("revoked")
    return family.user


def token_family_list_active(*, user: User) -> QuerySet[TokenFamily]:
    """The user's API logins that can still refresh, newest first."""
    return TokenFamily.objects.filter(user=user, revoked_at=None, expires_at__gt=timezone.now()).order_by(
        "-last_used_at"
    )


def user_list(*, role: str | None = None) -> QuerySet[User]:
    """Every user for the admin's role page, by email; optionally one role."""
    users = User.objects.order_by("email")
    if role in Role.values:
        users = users.filter(role=role)
    return users


def user_get(*, user_id: str) -> User | None:
    """A user by 24-hex id, or None for unknown and malformed ids."""
    if not ObjectId.is_valid(user_id):
        return None
    return User.objects.filter(pk=ObjectId(user_id)).first()


def admin_count_active() -> int:
    """How many active admins exist (the last one cannot be demoted or deactivated)."""
    return User.objects.filter(role=Role.ADMIN, is_active=True).count()


def api_token_user(*, token: str) -> tuple[User, ApiToken]:
    """The active reviewer (or admin) owning a live CI token, and the token; `tokens.InvalidToken` otherwise
    (malformed, unknown, revoked, expired, its user deactivated or no longer allowed to import)."""
    prefix = tokens.ci_token_prefix(token)
    if prefix is None:
        raise tokens.InvalidToken("not a CI token")
    found = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if found is None or not hmac.compare_digest(found.token_hash, tokens.ci_token_hash(token)):
        raise tokens.InvalidToken("unknown")
    if not found.is_active or not found.user.is_active or not found.user.has_role("reviewer"):
        raise tokens.InvalidToken("revoked")
    return found.user, found


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """The user's CI tokens that were not revoked, newest first (never their secrets: only hashes are stored)."""
    return ApiToken.objects.filter(user=user, revoked_at=None).order_by("-created_at")
