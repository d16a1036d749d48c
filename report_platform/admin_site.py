"""The Django admin, with its login routed through allauth so lockout, rate limits and MFA cover it too."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin


class PlatformAdminSite(admin.AdminSite):
    site_header = "Report Platform administration"
    site_title = "Report Platform admin"
    index_title = "Administration"

    def login(self, request, extra_context=None):
        return secure_admin_login(super().login)(request, extra_context)
