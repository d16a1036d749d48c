from django.contrib import admin

from accounts.models import User


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["email", "display_name", "role", "verified", "is_active", "last_login", "created_at"]
    list_filter = ["role", "verified", "is_active"]
    search_fields = ["email", "display_name"]
    ordering = ["email"]
    readonly_fields = ["password", "last_login", "created_at", "updated_at"]
    exclude = ["groups", "user_permissions"]
