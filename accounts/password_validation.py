"""Password strength: zxcvbn's estimate (dropbox's model, maintained Python port) with the product's name and the
user's own e-mail address as known words, plus two plain refusals zxcvbn is not asked about: whitespace only and
(nearly) one repeated character. Listed in AUTH_PASSWORD_VALIDATORS after the length and common-password checks."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from zxcvbn import zxcvbn

# Words an attacker tries first against this site.
PRODUCT_WORDS = ("report", "platform", "reportplatform", "report platform", "report-platform", "reports")
# zxcvbn's cost grows fast with the length; the first 72 characters decide (bcrypt's own input size).
ESTIMATE_MAX_LENGTH = 72
MIN_DISTINCT_CHARACTERS = 4


def _user_inputs(user) -> list[str]:
    inputs = list(PRODUCT_WORDS)
    email = (getattr(user, "email", "") or "").lower()
    if email:
        inputs.append(email)
        inputs.extend(part for part in re.split(r"[@._+-]", email) if len(part) >= 3)
    display_name = getattr(user, "display_name", "") or ""
    if display_name:
        inputs.append(display_name.lower())
    return inputs


class PasswordStrengthValidator:
    """Refuses passwords zxcvbn scores below `min_score` (0-4; 3 = "safely unguessable" against online and
    throttled offline attacks), whitespace-only passwords and ones made of fewer than 4 distinct characters."""

    def __init__(self, min_score: int = 3) -> None:
        self.min_score = min_score

    def validate(self, password: str, user=None) -> None:
        if not password.strip():
            raise ValidationError(_("The password cannot be only spaces."), code="password_blank")
        if len(set(password.lower())) < MIN_DISTINCT_CHARACTERS:
            raise ValidationError(_("The password repeats too few different characters."), code="password_repetitive")
        result = zxcvbn(password[:ESTIMATE_MAX_LENGTH], user_inputs=_user_inputs(user))
        if result["score"] < self.min_score:
            hints = [result["feedback"].get("warning") or "", *result["feedback"].get("suggestions", [])]
            hint = " ".join(h for h in hints if h)
            message = _("The password is too easy to guess.")
            raise ValidationError(f"{message} {hint}".strip(), code="password_too_weak")

    def get_help_text(self) -> str:
        return _("Use a long passphrase of unrelated words; avoid the site's name, your e-mail and repeated keys.")
