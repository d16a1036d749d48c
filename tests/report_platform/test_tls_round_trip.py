"""The real application behind Debian's nginx with deploy/nginx/nginx.conf and a throw-away certificate: pages,
sessions, CSRF and the JSON API work over HTTPS on loopback, with nginx's HSTS/gzip and the app's own headers.

The nginx helpers (rendering the template, the certificate, starting and stopping nginx) are the ones of
tests/deploy/test_nginx.py; here the upstream is pytest-django's `live_server` (the WSGI app with test settings)
instead of a stub.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
from http.cookies import SimpleCookie

import pytest

from tests.deploy.test_nginx import (
    HSTS,
    TIMEOUT,
    free_port,
    https_request,
    nginx_prefix,
    running_nginx,
    tls_context,
)


@pytest.fixture
def site(live_server):
    port = live_server.thread.port
    with (
        nginx_prefix(upstream=f"127.0.0.1:{port}", http_port=free_port(), https_port=free_port()) as site,
        running_nginx(site),
    ):
        yield site


def _cookies(response) -> dict[str, str]:
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


@pytest.mark.django_db(transaction=True)
def test_a_page_of_the_real_app_is_served_over_https_through_nginx(site):
    response, body = https_request(site, "GET", "/accounts/login/", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    html = gzip.decompress(body).decode() if response.getheader("Content-Encoding") == "gzip" else body.decode()
    assert response.getheader("Content-Encoding") == "gzip"
    assert "<html" in html and 'name="password"' in html
    assert response.headers.get_all("Strict-Transport-Security") == [HSTS]
    csp = response.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.headers.get_all("X-Request-ID") and len(response.headers.get_all("X-Request-ID")) == 1

    # The JSON API through the proxy: the error envelope, with the request id nginx chose and the app kept.
    response, body = https_request(site, "GET", "/api/v1/does-not-exist", headers={"X-Request-ID": "tls-trip-0001"})
    assert response.status == 404
    assert json.loads(body)["error"]["code"] == "not_found"
    assert response.getheader("X-Request-ID") == "tls-trip-0001"

    # Plain HTTP never reaches the app.
    connection = http.client.HTTPConnection("127.0.0.1", site["http_port"], timeout=TIMEOUT)
    try:
        connection.request("GET", "/accounts/login/")
        redirect = connection.getresponse()
        redirect.read()
    finally:
        connection.close()
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://127.0.0.1:{site['https_port']}/accounts/login/"


@pytest.mark.django_db(transaction=True)
def test_login_with_session_and_csrf_works_through_nginx(site, make_user):
    user = make_user("viewer")
    page, _ = https_request(site, "GET", "/accounts/login/")
    csrf = _cookies(page)["csrftoken"]
    form = f"login={user.email}&password={user.raw_password}&csrfmiddlewaretoken={csrf}"
    connection = http.client.HTTPSConnection(
        "127.0.0.1", site["https_port"], timeout=TIMEOUT, context=tls_context(site["ca_file"], alpn=["http/1.1"])
    )
    try:
        connection.request(
            "POST",
            "/accounts/login/",
            body=form.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf}",
                "Referer": f"https://127.0.0.1:{site['https_port']}/accounts/login/",
            },
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 302, response.status
    session = _cookies(response)["sessionid"]
    home, body = https_request(site, "GET", "/", headers={"Cookie": f"sessionid={session}"})
    assert home.status == 200
    assert re.search(re.escape(user.email), body.decode())
