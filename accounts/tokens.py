"""JWT access and refresh tokens: signing keys with key ids, issuing, strict validation.

Keys come from `JWT_SIGNING_KEYS` ("kid1:secret1,kid2:secret2"): the first key signs, every listed key verifies,
selected by the token's `kid` header. Only HS256 is accepted; `alg: none`, other algorithms, a bad signature, an
edited payload, an expired token, a wrong audience/issuer, an unknown kid and the wrong token type all fail
validation with `InvalidToken`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "typ", "fam"]


class InvalidToken(Exception):
    """The token is not acceptable (any reason; callers answer 401 without details)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes


def signing_keys() -> list[SigningKey]:
    """The configured keys, signing key first. Without JWT_SIGNING_KEYS, one key derived from SECRET_KEY."""
    raw = settings.JWT_SIGNING_KEYS.strip()
    if not raw:
        derived = hmac.new(settings.SECRET_KEY.encode(), b"report-platform jwt signing key", hashlib.sha256)
        return [SigningKey(kid="derived", secret=derived.digest())]
    keys = []
    for item in raw.split(","):
        kid, sep, secret = item.strip().partition(":")
        if not sep or not kid or len(secret) < 32:
            raise ImproperlyConfigured("JWT_SIGNING_KEYS entries must be 'kid:secret' with secrets of 32+ characters")
        keys.append(SigningKey(kid=kid, secret=secret.encode()))
    return keys


def hash_token_id(jti: str) -> str:
    """What the database keeps instead of a refresh token's secret id."""
    return hashlib.sha256(jti.encode()).hexdigest()


def new_token_id() -> str:
    return secrets.token_urlsafe(32)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def encode(*, typ: str, user_id: str, family_id: str, jti: str, expires_at: datetime, now: datetime | None = None):
    """Sign a token of type `typ` ("access"/"refresh") with the current signing key."""
    now = now or timezone.now()
    key = signing_keys()[0]
    claims = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": user_id,
        "fam": family_id,
        "jti": jti,
        "typ": typ,
        "iat": _epoch(now),
        "exp": _epoch(expires_at),
    }
    return jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})


def decode(token: str, *, typ: str) -> dict:
    """Validate signature, algorithm, kid, expiry, issuer, audience and type; return the claims."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("algorithm")
    kid = str(header.get("kid", "")).encode()
    key = next((k for k in signing_keys() if hmac.compare_digest(k.kid.encode(), kid)), None)
    if key is None:
        raise InvalidToken("unknown key id")
    try:
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            options={"require": _REQUIRED_CLAIMS},
            leeway=0,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from exc
    if claims.get("typ") != typ:
        raise InvalidToken("wrong token type")
    return claims


# --- long-lived CI tokens (accounts.models.ApiToken) ---------------------------------------------------------

CI_TOKEN_PATTERN = re.compile(r"^rpt_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


def ci_token_new() -> tuple[str, str]:
    """A new CI token: (public prefix, the whole token `rpt_<prefix>_<secret>`). The secret has 256 random bits."""
    prefix = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(12))
    return prefix, f"rpt_{prefix}_{secrets.token_urlsafe(32)}"


def ci_token_hash(token: str) -> str:
    """What the database keeps of a CI token (it is high-entropy: a plain SHA-256 is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


def ci_token_prefix(token: str) -> str | None:
    """The prefix of a well-formed CI token, None for anything else (a JWT, garbage)."""
    found = CI_TOKEN_PATTERN.match(token or "")
    return found.group(1) if found else None
