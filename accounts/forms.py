"""Forms of the accounts app: allauth's reset form with its audit event, and the role form of the admin page."""

from __future__ import annotations

from allauth.account import forms as allauth_forms
from django import forms
from django.http import HttpRequest

from accounts.models import Role
from audit.services import audit_record


class ResetPasswordForm(allauth_forms.ResetPasswordForm):
    """allauth's form (same answer for unknown addresses) plus one audit event per reset request."""

    def save(self, request: HttpRequest, **kwargs) -> str:
        email = super().save(request, **kwargs)
        user = self.users[0] if self.users else None
        audit_record(
            action="auth.password_reset_request",
            actor=None,
            actor_email=email,
            resource=f"user:{user.pk}" if user is not None else "",
            request=request,
            metadata={"known_address": user is not None},
        )
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ActiveForm(forms.Form):
    active = forms.BooleanField(required=False)
