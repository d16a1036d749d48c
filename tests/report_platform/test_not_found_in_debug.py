"""In DEBUG (dev) an unknown URL answers like production: the JSON envelope under /api/, the project's error page
elsewhere; never Django's technical 404 listing every URL pattern."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


def test_it_answers_unknown_api_urls_with_the_json_envelope(client, debug):
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"
    assert client.get("/api/nothing-here/").json()["error"]["code"] == "not_found"


def test_it_answers_unknown_pages_with_the_error_template(client, debug):
    response = client.get("/no-such-page/")
    body = response.content.decode()
    assert response.status_code == 404 and 'data-error-code="not_found"' in body and "<h1>Not found</h1>" in body
    assert "URLconf" not in body and "urlpatterns" not in body


def test_it_keeps_the_views_own_not_found_answers(viewer_client, debug):
    response = viewer_client.get("/cases/000000000000000000000000/")
    assert response.status_code == 404 and "No such case." in response.content.decode()
