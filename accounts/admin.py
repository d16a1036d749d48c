import django.contrib.auth.admin  # noqa: F401 - registers Group now, so it can be unregistered below
from django.contrib import admin, messages
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, identify_hasher
from django.contrib.auth.models import Group
from django.utils.html import format_html, format_html_join

from accounts import services
from accounts.models import ApiToken, TokenFamily, User
from report_platform.errors import DomainError

# Roles are the `User.role` field (DESIGN.md); Django's groups are not used, so their admin pages are not offered.
# (autodiscover imports this module before auth's; the import at the top registers Group first.)
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["email", "display_name", "role", "verified", "is_active", "last_login", "created_at"]
    list_filter = ["role", "verified", "is_active"]
    search_fields = ["email", "display_name"]
    ordering = ["email"]
    readonly_fields = ["password_summary", "last_login", "created_at", "updated_at"]
    exclude = ["groups", "user_permissions", "is_superuser", "password"]

    @admin.display(description="Password")
    def password_summary(self, obj) -> str:
        """The hash's algorithm and masked parts, as Django's ReadOnlyPasswordHashField shows them: never the
        whole hash. Passwords are changed by their owner (or a reset mail), not here."""
        encoded = obj.password or ""
        if not encoded or encoded.startswith(UNUSABLE_PASSWORD_PREFIX):
            return "No password set."
        try:
            summary = identify_hasher(encoded).safe_summary(encoded)
        except (ValueError, NotImplementedError):
            return "Invalid password format or unknown hashing algorithm."
        parts = format_html_join(", ", "{}: {}", ((str(key), value) for key, value in summary.items()))
        return format_html(
            '{} <br><span class="help">The password itself is never shown; users change it '
            "from their security page or with a reset mail.</span>",
            parts,
        )

    def save_model(self, request, obj, form, change):
        """Role and activation changes go through the services (last-admin rule, sessions and tokens end, audit)."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        stored = User.objects.get(pk=obj.pk)
        new_role, new_active = obj.role, obj.is_active
        obj.role, obj.is_active = stored.role, stored.is_active
        super().save_model(request, obj, form, change)
        try:
            if new_role != stored.role:
                services.user_change_role(actor=request.user, user=obj, role=new_role, request=request)
            if new_active != stored.is_active:
                services.user_set_active(actor=request.user, user=obj, active=new_active, request=request)
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)


@admin.register(TokenFamily)
class TokenFamilyAdmin(admin.ModelAdmin):
    list_display = ["user", "device_name", "ip", "created_at", "last_used_at", "expires_at", "revoked_at", "flagged_at"]
    list_filter = ["revoked_reason"]
    readonly_fields = [f.name for f in TokenFamily._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """CI tokens: created here for any reviewer or admin (the token is shown once, in the confirmation message),
    revoked with the action; never edited (only the hash is stored)."""

    list_display = ["name", "user", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    search_fields = ["name", "prefix", "user__email"]
    fields = ["user", "name"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ApiToken._meta.fields] if obj is not None else []

    def has_change_permission(self, request, obj=None):
        return obj is None or super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        try:
            token, text = services.api_token_create(actor=request.user, user=obj.user, name=obj.name, request=request)
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        obj.pk = token.pk
        self.message_user(request, f"CI token created. Copy it now, it is shown only once: {text}", messages.WARNING)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at=None):
            services.api_token_revoke(actor=request.user, token_id=str(token.pk), request=request)
        self.message_user(request, "Revoked.")
