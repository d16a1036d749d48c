"""Signal handlers: audit events for allauth's flows, and the consequences of a password reset or change."""

from __future__ import annotations

from allauth.account.signals import email_confirmed, password_changed, password_reset
from allauth.mfa.signals import authentication_failed, authenticator_added, authenticator_removed, authenticator_reset
from allauth.usersessions.models import UserSession
from django.db.models.signals import pre_save
from django.dispatch import receiver

from accounts import metrics, services
from accounts.models import User
from audit.services import audit_record


@receiver(pre_save, sender=User)
def on_user_password_saved(sender, instance, update_fields=None, **kwargs):
    """Whatever path changes a password (allauth, the admin's own password page, the shell), the user's API token
    families end; allauth's password signals below also end other browser sessions and write the audit event."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = User.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        services.token_families_revoke_for_user(user=instance, reason="password_changed")


@receiver(password_reset)
def on_password_reset(sender, request, user, **kwargs):
    services.credentials_changed(user=user, request=None, reason="password_changed")
    audit_record(action="auth.password_reset", actor=user, resource=f"user:{user.pk}", request=request)


@receiver(password_changed)
def on_password_changed(sender, request, user, **kwargs):
    services.credentials_changed(user=user, request=request, reason="password_changed")
    if request is not None and request.user.is_authenticated:
        # Django cycled this browser's session key: list it again under the new key.
        UserSession.objects.create_from_request(request)
    audit_record(action="auth.password_change", actor=user, resource=f"user:{user.pk}", request=request)


@receiver(email_confirmed)
def on_email_confirmed(sender, request, email_address, **kwargs):
    user = email_address.user
    if email_address.primary or user.email.lower() == email_address.email.lower():
        User.objects.filter(pk=user.pk).update(verified=True)
    audit_record(
        action="auth.email_verified",
        actor=None,
        actor_email=email_address.email,
        resource=f"user:{user.pk}",
        request=request,
    )


def _mfa_event(action: str, request, user, authenticator) -> None:
    audit_record(
        action=action,
        actor=user,
        resource=f"user:{user.pk}",
        request=request,
        metadata={"type": authenticator.type},
    )


@receiver(authenticator_added)
def on_authenticator_added(sender, request, user, authenticator, **kwargs):
    _mfa_event("mfa.added", request, user, authenticator)


@receiver(authenticator_removed)
def on_authenticator_removed(sender, request, user, authenticator, **kwargs):
    _mfa_event("mfa.removed", request, user, authenticator)


@receiver(authenticator_reset)
def on_authenticator_reset(sender, request, user, authenticator, **kwargs):
    _mfa_event("mfa.reset", request, user, authenticator)


@receiver(authentication_failed)
def on_mfa_authentication_failed(sender, request, user, authenticator=None, **kwargs):
    metrics.login_attempt("failure")
    audit_record(
        action="auth.login",
        actor=None,
        actor_email=user.email,
        resource=f"user:{user.pk}",
        outcome="failure",
        request=request,
        metadata={"reason": "mfa", "reauthentication": bool(kwargs.get("reauthentication"))},
    )
