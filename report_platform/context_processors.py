from django.conf import settings
from django.http import HttpRequest


def platform(request: HttpRequest) -> dict:
    """Values every page layout needs (navigation by role)."""
    user = getattr(request, "user", None)
    role = getattr(user, "role", None) if user is not None and user.is_authenticated else None
    return {
        "platform_name": "Report Platform",
        "user_role": role,
        "debug": settings.DEBUG,
    }
