"""report_platform/backend_compat.py: the backend bugs it works around, shown with the ORM."""

import pytest

from accounts.models import User


@pytest.mark.django_db
@pytest.mark.parametrize("value", [")", "a(b", "[", "v.*@example.com", "viewer1@example.co.", "^viewer"])
def test_iexact_treats_regex_characters_literally(make_user, value):
    make_user("viewer", email="viewer1@example.com")
    assert not User.objects.filter(email__iexact=value).exists()


@pytest.mark.django_db
def test_iexact_still_ignores_case(make_user):
    user = make_user("viewer", email="Viewer1+tag@Example.com")
    assert User.objects.get(email__iexact="viewer1+TAG@example.COM") == user


def test_probe_the_backend_still_needs_the_workaround():
    """Fails once django-mongodb-backend defines prep_for_iexact_query itself: then delete the workaround."""
    from django.db import connection

    from report_platform import backend_compat

    assert backend_compat.iexact_unescaped_in_backend is True
    assert connection.ops.prep_for_iexact_query("a.b(") == r"a\.b\("
