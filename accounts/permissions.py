"""Role checks shared by pages and API endpoints (roles table in DESIGN.md)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest

from accounts.models import Role
from report_platform.errors import Forbidden, NotAuthenticated


def require_role(user, role: str) -> None:
    """Raise `NotAuthenticated`/`Forbidden` unless `user` has `role` (or a higher one)."""
    if user is None or not user.is_authenticated:
        raise NotAuthenticated()
    if not user.has_role(role):
        raise Forbidden(f"This needs the {Role(role).label.lower()} role.")


def role_required(role: str):
    """Page decorator: anonymous users go to the login page, users without the role get a 403."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            require_role(request.user, role)
            return view(request, *args, **kwargs)

        wrapper.required_role = role
        return wrapper

    return decorator
