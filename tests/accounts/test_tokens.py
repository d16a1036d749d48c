"""B. Tokens: access JWT validation (B1), refresh rotation (B2), reuse (B3), concurrency (B4), lifetime and
revocation, hashes and device metadata (B5)."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta

import jwt
import pytest
import time_machine
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts import services, tokens
from accounts.models import RefreshToken, TokenFamily, User
from audit.models import AuditEvent
from tests.accounts.helpers import events

pytestmark = pytest.mark.django_db

PROTECTED = "/api/v1/auth/me"


@pytest.fixture
def api():
    return Client(HTTP_USER_AGENT="pytest-cli/1.0", REMOTE_ADDR="10.1.2.3")


def _login(api, user, **extra):
    response = api.post(
        "/api/v1/auth/login",
        {"email": user.email, "password": user.raw_password, **extra},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def _refresh(client, refresh):
    return client.post("/api/v1/auth/refresh", {"refresh": refresh}, content_type="application/json")


def _get(api, token):
    return api.get(PROTECTED, HTTP_AUTHORIZATION=f"Bearer {token}")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_it_accepts_a_fresh_access_token_and_stores_only_hashes(api, make_user):
    user = make_user("viewer")
    pair = _login(api, user, device_name="CI runner")
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    response = _get(api, pair["access"])
    assert response.status_code == 200 and response.json()["email"] == user.email

    family = TokenFamily.objects.get(user=user)
    assert family.device_name == "CI runner" and family.user_agent == "pytest-cli/1.0" and family.ip == "10.1.2.3"
    assert family.expires_at - family.created_at == timedelta(days=14)
    stored = RefreshToken.objects.get(family=family)
    jti = jwt.decode(pair["refresh"], options={"verify_signature": False})["jti"]
    assert stored.token_hash == tokens.hash_token_id(jti) != jti
    # Neither token appears anywhere in the stored documents or the audit trail.
    from django.db import connection

    for name in ("refreshTokens", "tokenFamilies", "auditEvents", "auditInbox"):
        for document in connection.database[name].find():
            text = json.dumps(document, default=str)
            assert pair["refresh"] not in text and jti not in text and pair["access"] not in text


def test_it_accepts_access_just_before_expiry_and_rejects_it_at_expiry(api, make_user):
    user = make_user("viewer")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        pair = _login(api, user)
        traveller.shift(timedelta(minutes=15) - timedelta(seconds=1))
        assert _get(api, pair["access"]).status_code == 200
        traveller.shift(timedelta(seconds=1))
        response = _get(api, pair["access"])
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


def _forged_variants(pair: dict) -> dict[str, str]:
    access = pair["access"]
    header_b64, payload_b64, signature = access.split(".")
    claims = jwt.decode(access, options={"verify_signature": False})
    key = tokens.signing_keys()[0]
    kid = {"kid": key.kid}
    edited = dict(claims, sub=str(claims["sub"])[::-1])
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', **kid})}.{payload_b64}.",
        "alg none lower-case signature kept": f"{_b64({'alg': 'none', **kid})}.{payload_b64}.{signature}",
        "wrong algorithm HS512": jwt.encode(claims, key.secret, algorithm="HS512", headers=kid),
        "wrong algorithm HS384": jwt.encode(claims, key.secret, algorithm="HS384", headers=kid),
        "bad signature": f"{header_b64}.{payload_b64}.{signature[:-4]}AAAA",
        "other secret": jwt.encode(claims, b"x" * 32, algorithm="HS256", headers=kid),
        "edited payload": f"{header_b64}.{_b64(edited)}.{signature}",
        "expired": jwt.encode(dict(claims, exp=claims["iat"] - 1), key.secret, algorithm="HS256", headers=kid),
        "wrong audience": jwt.encode(dict(claims, aud="someone-else"), key.secret, algorithm="HS256", headers=kid),
        "wrong issuer": jwt.encode(dict(claims, iss="evil"), key.secret, algorithm="HS256", headers=kid),
        "unknown kid": jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": "nope"}),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key.secret, "HS256", headers=kid),
        "refresh used as access": pair["refresh"],
        "garbage": "not-a-jwt",
    }


def test_it_rejects_every_forged_or_misused_access_token(api, make_user):
    user = make_user("viewer")
    pair = _login(api, user)
    before = AuditEvent.objects.count()
    for name, token in _forged_variants(pair).items():
        response = _get(api, token)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "not_authenticated", name
    assert AuditEvent.objects.count() == before
    assert _get(api, pair["access"]).status_code == 200  # the genuine token still works


def test_it_rejects_the_token_of_a_deactivated_user(api, make_user, admin_user):
    user = make_user("viewer")
    pair = _login(api, user)
    services.user_set_active(actor=admin_user, user=user, active=False, request=None)
    assert _get(api, pair["access"]).status_code == 401
    assert _refresh(api, pair["refresh"]).status_code == 401
    assert TokenFamily.objects.get(user=user).revoked_reason == "deactivated"
    assert len(events("user.deactivate")) == 1


def test_it_verifies_with_every_configured_key_and_signs_with_the_first(api, make_user, settings):
    user = make_user("viewer")
    settings.JWT_SIGNING_KEYS = "old:" + "o" * 40
    old_pair = _login(api, user)
    assert jwt.get_unverified_header(old_pair["access"])["kid"] == "old"
    settings.JWT_SIGNING_KEYS = "new:" + "n" * 40 + ",old:" + "o" * 40
    assert _get(api, old_pair["access"]).status_code == 200
    new_pair = _refresh(api, old_pair["refresh"]).json()
    assert jwt.get_unverified_header(new_pair["access"])["kid"] == "new"
    settings.JWT_SIGNING_KEYS = "new:" + "n" * 40
    assert _get(api, new_pair["access"]).status_code == 200


def test_it_rotates_the_refresh_token_and_the_old_one_then_fails(api, make_user):
    user = make_user("viewer")
    first = _login(api, user)
    second = _refresh(api, first["refresh"])
    assert second.status_code == 200
    second = second.json()
    assert second["refresh"] != first["refresh"]
    assert _get(api, second["access"]).status_code == 200
    assert RefreshToken.objects.filter(family__user=user).count() == 2
    assert RefreshToken.objects.filter(family__user=user, used_at__isnull=False).count() == 1


def test_it_revokes_the_family_and_audits_once_when_a_rotated_token_is_reused(api, make_user, settings):
    user = make_user("viewer")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        first = _login(api, user)
        second = _refresh(api, first["refresh"]).json()
        # Past the grace window for parallel requests, any reuse (even from the same device) is a theft.
        traveller.shift(timedelta(seconds=settings.JWT_REFRESH_REUSE_GRACE_SECONDS, milliseconds=1))
        stolen = _refresh(api, first["refresh"])
    assert stolen.status_code == 401 and stolen.json()["error"]["code"] == "invalid_token"
    family = TokenFamily.objects.get(user=user)
    assert family.revoked_reason == "reuse" and family.revoked_at is not None
    # The legitimate holder's newer tokens are dead too.
    assert _refresh(api, second["refresh"]).status_code == 401
    assert _get(api, second["access"]).status_code == 401
    reuse = events("auth.token_reuse")
    assert len(reuse) == 1 and reuse[0].actor_id == str(user.pk) and reuse[0].outcome == "denied"
    assert first["refresh"] not in json.dumps(reuse[0].metadata)


def test_it_answers_a_reuse_within_the_grace_window_from_another_device_by_revoking(api, make_user):
    user = make_user("viewer")
    first = _login(api, user)
    assert _refresh(api, first["refresh"]).status_code == 200
    thief = Client(HTTP_USER_AGENT="curl/8.0", REMOTE_ADDR="198.51.100.66")
    stolen = _refresh(thief, first["refresh"])
    assert stolen.status_code == 401 and stolen.json()["error"]["code"] == "invalid_token"
    assert TokenFamily.objects.get(user=user).revoked_reason == "reuse"
    assert len(events("auth.token_reuse")) == 1


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_twenty_concurrent_refreshes_win_and_keeps_the_winner_logged_in(make_user, settings):
    user = make_user("viewer")
    pair = _login(Client(), user)
    barrier = threading.Barrier(20)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def worker():
        client = Client()
        barrier.wait()
        try:
            response = _refresh(client, pair["refresh"])
        finally:
            close_old_connections()
        with lock:
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200] + [409] * 19
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"token_already_rotated"}
    assert RefreshToken.objects.filter(family__user=user, used_at__isnull=False).count() == 1
    assert RefreshToken.objects.filter(family__user=user).count() == 2
    # The losers did not revoke the login: the winner's new tokens work.
    winner = next(body for status, body in answers if status == 200)
    assert TokenFamily.objects.get(user=user).revoked_at is None
    assert _get(Client(), winner["access"]).status_code == 200
    assert not events("auth.token_reuse")
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.JWT_REFRESH_REUSE_GRACE_SECONDS + 1)):
        # Later, the old token again: that is a reuse, and the whole family ends.
        assert _refresh(Client(), pair["refresh"]).status_code == 401
        assert _get(Client(), winner["access"]).status_code == 401
        assert _refresh(Client(), winner["refresh"]).status_code == 401
    assert TokenFamily.objects.get(user=user).revoked_reason == "reuse"
    assert len(events("auth.token_reuse")) == 1


def test_it_never_extends_the_absolute_family_lifetime(api, make_user):
    user = make_user("viewer")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        pair = _login(api, user)
        for _ in range(13):
            traveller.shift(timedelta(days=1))
            response = _refresh(api, pair["refresh"])
            assert response.status_code == 200
            pair = response.json()
        traveller.shift(timedelta(days=1) - timedelta(seconds=1))
        last = _refresh(api, pair["refresh"])
        assert last.status_code == 200
        claims = jwt.decode(last.json()["access"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 1  # access capped by the family's end
        traveller.shift(timedelta(seconds=1))
        assert _refresh(api, last.json()["refresh"]).status_code == 401
    family = TokenFamily.objects.get(user=user)
    assert family.expires_at - family.created_at == timedelta(days=14)


def test_it_revokes_on_logout_with_one_audit_event(api, make_user):
    user = make_user("viewer")
    pair = _login(api, user)
    response = api.post("/api/v1/auth/logout", {"refresh": pair["refresh"]}, content_type="application/json")
    assert response.status_code == 204
    assert _get(api, pair["access"]).status_code == 401
    assert _refresh(api, pair["refresh"]).status_code == 401
    assert len(events("auth.logout")) == 1


def test_it_revokes_on_password_change_and_role_change(client, api, make_user, admin_user):
    user = make_user("viewer")
    pair = _login(api, user)
    client.force_login(user)
    new = "a-brand-new-passphrase-5"
    response = client.post(
        "/accounts/password/change/", {"oldpassword": user.raw_password, "password1": new, "password2": new}
    )
    assert response.status_code == 302
    assert _get(api, pair["access"]).status_code == 401
    assert len(events("auth.password_change")) == 1
    assert "this browser" in client.get("/account/security/").content.decode()

    user.raw_password = new
    pair = _login(api, user)
    services.user_change_role(actor=admin_user, user=user, role="reviewer", request=None)
    assert _get(api, pair["access"]).status_code == 401
    assert User.objects.get(pk=user.pk).role == "reviewer"


def test_it_flags_a_refresh_from_a_new_network_and_shows_it(api, make_user):
    user = make_user("viewer")
    pair = _login(api, user)
    same_net = Client(HTTP_USER_AGENT="pytest-cli/1.0", REMOTE_ADDR="10.1.2.99")
    pair = _refresh(same_net, pair["refresh"]).json()
    assert TokenFamily.objects.get(user=user).flagged_at is None
    elsewhere = Client(HTTP_USER_AGENT="pytest-cli/1.0", REMOTE_ADDR="198.51.100.7")
    pair = _refresh(elsewhere, pair["refresh"]).json()
    family = TokenFamily.objects.get(user=user)
    assert family.flagged_at is not None and "new network" in family.flag_reason
    flagged = events("auth.token_new_device")
    assert len(flagged) == 1 and flagged[0].ip == "198.51.100.7"

    page = Client()
    page.force_login(user)
    html = page.get("/account/security/").content.decode()
    assert "new network" in html and "198.51.100.7" in html


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    garbage=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda header, payload, signature: f"{_b64(header)}.{_b64(payload)}.{signature}",
            st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), st.one_of(st.text(max_size=10), st.integers())),
            st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=10), st.integers(), st.none())),
            st.text(alphabet="abcdefABCDEF0123456789-_", max_size=50),
        ),
    )
)
def test_it_answers_any_garbage_token_with_invalid_token_only(garbage):
    with pytest.raises(tokens.InvalidToken):
        tokens.decode(garbage, typ=tokens.ACCESS)
