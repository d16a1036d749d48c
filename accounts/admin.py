import django.contrib.auth.admin  # noqa: F401 - registers Group now, so it can be unregistered below
from django.contrib import admin, messages
from django.contrib.auth.models import Group

from accounts import services
from accounts.models import TokenFamily, User
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
    readonly_fields = ["password", "last_login", "created_at", "updated_at"]
    exclude = ["groups", "user_permissions", "is_superuser"]

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
