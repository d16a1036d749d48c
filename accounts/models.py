"""Users: email is the login; one role from the roles table in DESIGN.md."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


# Higher rank includes every permission of the lower ones.
ROLE_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("role", Role.VIEWER)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("role", Role.ADMIN)
        extra.setdefault("verified", True)
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER, db_index=True)
    verified = models.BooleanField(default=False, help_text="Email address confirmed.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    @property
    def is_staff(self) -> bool:
        """Only admins reach the Django admin (DESIGN.md roles table)."""
        return self.is_active and self.role == Role.ADMIN

    @property
    def lastLoginAt(self):  # noqa: N802 - the blueprint's field name, kept as an alias of Django's last_login
        return self.last_login

    def has_role(self, role: str) -> bool:
        """True when this user's role includes `role` (admin > reviewer > viewer)."""
        return self.is_active and ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    def has_perm(self, perm, obj=None) -> bool:
        # The admin role holds every model permission in the Django admin; others go through Django's checks.
        if self.is_active and self.role == Role.ADMIN:
            return True
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label) -> bool:
        if self.is_active and self.role == Role.ADMIN:
            return True
        return super().has_module_perms(app_label)

    def get_full_name(self) -> str:
        return self.display_name or self.email

    def get_short_name(self) -> str:
        return self.display_name or self.email.split("@")[0]


def new_token_family_public_id() -> str:
    """128 random bits: what tokens carry as `fam` (never the database id, which is guessable)."""
    return secrets.token_urlsafe(16)


class TokenFamily(models.Model):
    """One API login: the chain of refresh tokens rotated from it. Its lifetime is absolute (14 days from login);
    revoking the family ends every access and refresh token of that login. Tokens name it by `public_id`."""

    public_id = models.CharField(max_length=32, unique=True, default=new_token_family_public_id, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="token_families")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True)
    device_name = models.CharField(max_length=100, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of user agent and network at login.")
    last_ip = models.CharField(max_length=45, blank=True)
    last_user_agent = models.CharField(max_length=300, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True, help_text="A refresh came from a new device/network.")
    flag_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "tokenFamilies"
        verbose_name_plural = "token families"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="tokenfamily_user_revoked")]

    def __str__(self) -> str:
        return f"token family {self.pk} of {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class RefreshToken(models.Model):
    """One refresh token of a family. Only the SHA-256 of its secret id is stored; `used_at` is set by the atomic
    claim that rotates it (a conditional update), so a token can be exchanged exactly once."""

    family = models.ForeignKey(TokenFamily, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Device fingerprint of the refresh that used it (the reuse grace window)."
    )
    ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "refreshTokens"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["family", "used_at"], name="refreshtoken_family_used")]

    def __str__(self) -> str:
        return f"refresh token {self.pk} of family {self.family_id}"


class ApiToken(models.Model):
    """A long-lived API token for CI (`Authorization: Bearer rpt_<prefix>_<secret>`), shown once at creation.

    Only the SHA-256 of the whole token is stored; `prefix` (public, random) names it in lists and audit events.
    Its scope is fixed: importing results (POST imports/junit) and recording runs in bulk (POST runs/bulk), never
    anything else. Revoking sets `revoked_at`; a token of a user who is deactivated or no longer a reviewer stops
    working at once (checked on every use)."""

    class Scope(models.TextChoices):
        RESULTS_IMPORT = "results:import", "Import results and record runs in bulk"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=32, choices=Scope.choices, default=Scope.RESULTS_IMPORT)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.CharField(max_length=45, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "apiTokens"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="apitoken_user_revoked")]

    def __str__(self) -> str:
        return f"API token {self.name} (rpt_{self.prefix}…) of {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())
