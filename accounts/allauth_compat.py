"""Patches to django-allauth for ObjectId primary keys, where allauth offers no adapter hook.

allauth encodes user ids for URLs and the serialised login state with `allauth.account.utils.user_pk_to_url_str`
and parses them back with `url_str_to_user_pk`. Both check `issubclass(pk_field, IntegerField)` and then call
`int(user.pk)` / `base36_to_int(...)`; `ObjectIdAutoField` subclasses `IntegerField`, so with ObjectIds the
password-reset link and the login stages (TOTP step) fail (upstream: pennersr/django-allauth#3419). No adapter method
covers these two functions, so they are replaced here by versions that carry the 24-hex ObjectId string.

Each patch has a test in tests/accounts/test_allauth_compat.py that fails without it; when allauth handles
non-integer `IntegerField` subclasses, delete this module and the `install()` call in accounts/apps.py.

The MFA login step records `{"method": "mfa", "id": authenticator.pk}` in the session, which Django's JSON session
serializer cannot encode for an ObjectId; `SessionSerializer` below (settings.SESSION_SERIALIZER) writes ObjectIds
as their hex string. allauth only displays that id, never looks it up. The same serializer encrypts the TOTP secret
that allauth keeps in the session while enrolment is pending, so no stored document shows a TOTP secret in clear.

Recovery codes: `RecoveryCodes.validate_code` relies on `select_for_update()` inside `transaction.atomic` to use a
code once; on MongoDB both are no-ops, so two concurrent logins could spend the same code. `validate_recovery_code`
claims the code with a single-document conditional update on the used-codes bitmask instead (exactly one winner).

Not patched: `EmailConfirmationHMAC` (it JSON-serialises `email_address.pk`); the settings turn HMAC keys off
(`ACCOUNT_EMAIL_CONFIRMATION_HMAC = False`) so confirmation keys are random strings stored in the database.
"""

from __future__ import annotations

import json

from bson import ObjectId
from bson.errors import InvalidId
from django.core.signing import JSONSerializer


def user_pk_to_url_str(user) -> str:
    """The user's ObjectId as 24 hex characters (matches allauth's `[0-9A-Za-z]+` URL pattern)."""
    return str(user.pk)


def url_str_to_user_pk(pk_str: str) -> ObjectId:
    """Parse what `user_pk_to_url_str` produced; a malformed id raises ValueError, which allauth's callers catch."""
    try:
        return ObjectId(str(pk_str))
    except (InvalidId, TypeError) as exc:
        raise ValueError(f"not a user id: {pk_str!r}") from exc


def validate_recovery_code(self, code: str) -> bool:
    """Replacement for `RecoveryCodes.validate_code`: a code counts only if this call flips its bit in the stored
    mask (conditional update on the mask it read); a concurrent use of the same code loses and gets False."""
    from allauth.core.internal.cryptokit import compare_user_code
    from allauth.mfa.models import Authenticator

    if self.instance.pk is not None:
        self.instance = Authenticator.objects.get(pk=self.instance.pk)
    migrated = self._validate_migrated_code(code)
    if migrated is not None:
        return migrated
    for index, expected in enumerate(self.generate_codes()):
        if self._is_code_used(index) or not compare_user_code(actual=code, expected=expected):
            continue
        old_mask = self.instance.data["used_mask"]
        data = {**self.instance.data, "used_mask": old_mask | (1 << index)}
        claimed = Authenticator.objects.filter(pk=self.instance.pk, data__used_mask=old_mask).update(data=data)
        if claimed == 1:
            self.instance.data = data
            return True
        return False
    return False


class _ObjectIdEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, ObjectId):
            return str(o)
        return super().default(o)


class SessionSerializer(JSONSerializer):
    """Django's JSON session serializer, writing ObjectIds as 24-hex strings and the pending TOTP secret encrypted
    with the MFA adapter's key (the session document is stored in MongoDB)."""

    def dumps(self, obj) -> bytes:
        from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY

        from accounts.adapters import MFAAdapter

        if isinstance(obj, dict) and isinstance(obj.get(SECRET_SESSION_KEY), str):
            obj = {**obj, SECRET_SESSION_KEY: MFAAdapter().encrypt(obj[SECRET_SESSION_KEY])}
        return json.dumps(obj, separators=(",", ":"), cls=_ObjectIdEncoder).encode("latin-1")

    def loads(self, data: bytes):
        from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY

        from accounts.adapters import ENCRYPTED_PREFIX, MFAAdapter

        obj = super().loads(data)
        value = obj.get(SECRET_SESSION_KEY) if isinstance(obj, dict) else None
        if isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX):
            obj[SECRET_SESSION_KEY] = MFAAdapter().decrypt(value)
        return obj


_installed = False
# allauth's own functions, kept for the tests that show why the patch exists.
originals: dict = {}


def install() -> None:
    """Replace the two functions in allauth's modules that hold a reference to them. Idempotent."""
    global _installed
    if _installed:
        return
    from allauth.account import forms as account_forms
    from allauth.account import utils as account_utils
    from allauth.mfa import adapter as mfa_adapter
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    originals.update(
        user_pk_to_url_str=account_utils.user_pk_to_url_str, url_str_to_user_pk=account_utils.url_str_to_user_pk
    )
    account_utils.user_pk_to_url_str = user_pk_to_url_str  # read lazily by Login.serialize and the reset flow
    account_utils.url_str_to_user_pk = url_str_to_user_pk  # read lazily by Login.deserialize
    account_forms.url_str_to_user_pk = url_str_to_user_pk  # imported at module load by the reset-key form
    mfa_adapter.user_pk_to_url_str = user_pk_to_url_str  # WebAuthn user handle (not enabled, kept consistent)
    originals["recovery_validate_code"] = RecoveryCodes.validate_code
    RecoveryCodes.validate_code = validate_recovery_code
    _installed = True
