"""Each ObjectId workaround for allauth (accounts/allauth_compat.py and the settings) with the failure it prevents."""

from __future__ import annotations

import pytest
from allauth.account import utils as account_utils
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from bson import ObjectId
from django.core.signing import JSONSerializer

from accounts import allauth_compat
from accounts.models import User


def test_it_shows_allauth_cannot_encode_an_objectid_user_pk():
    user = User(pk=ObjectId(), email="a@example.com")
    with pytest.raises(TypeError):
        allauth_compat.originals["user_pk_to_url_str"](user)


def test_it_round_trips_objectid_user_pks_through_allauths_url_functions():
    user = User(pk=ObjectId(), email="a@example.com")
    encoded = account_utils.user_pk_to_url_str(user)
    assert encoded == str(user.pk)
    assert account_utils.url_str_to_user_pk(encoded) == user.pk
    with pytest.raises(ValueError):
        account_utils.url_str_to_user_pk("zzz")


def test_it_shows_djangos_session_serializer_rejects_objectids_and_ours_writes_hex():
    data = {"account_authentication_methods": [{"method": "mfa", "id": ObjectId("0123456789abcdef01234567")}]}
    with pytest.raises(TypeError):
        JSONSerializer().dumps(data)
    loaded = allauth_compat.SessionSerializer().loads(allauth_compat.SessionSerializer().dumps(data))
    assert loaded["account_authentication_methods"][0]["id"] == "0123456789abcdef01234567"


@pytest.mark.django_db
def test_it_shows_why_hmac_confirmation_keys_are_off(make_user, settings):
    user = make_user("viewer")
    address = EmailAddress.objects.get(user=user)
    with pytest.raises(TypeError):
        EmailConfirmationHMAC(address).key  # noqa: B018 - JSON-serialises the ObjectId pk
    assert settings.ACCOUNT_EMAIL_CONFIRMATION_HMAC is False


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_ten_concurrent_uses_of_a_recovery_code_win(make_user):
    import threading

    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from django.db import close_old_connections

    user = make_user("reviewer")
    code = RecoveryCodes.activate(user).get_unused_codes()[3]
    barrier = threading.Barrier(10)
    results: list[bool] = []

    def use():
        authenticator = Authenticator.objects.get(user=user, type="recovery_codes")
        barrier.wait()
        try:
            results.append(RecoveryCodes(authenticator).validate_code(code))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=use) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1 and len(results) == 10
    stored = Authenticator.objects.get(user=user, type="recovery_codes")
    assert stored.data["used_mask"] == 1 << 3
    assert not RecoveryCodes(stored).validate_code(code)


def test_it_encrypts_the_pending_totp_secret_in_the_stored_session():
    from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, generate_totp_secret

    secret = generate_totp_secret()
    serializer = allauth_compat.SessionSerializer()
    stored = serializer.dumps({SECRET_SESSION_KEY: secret, "other": 1})
    assert secret.encode() not in stored and b"fernet:" in stored
    assert serializer.loads(stored) == {SECRET_SESSION_KEY: secret, "other": 1}
