"""Healthcheck of the `api` container: GET /healthz on the local gunicorn, the way nginx would send it.

Run by docker-compose.yml as `python /app/deploy/healthcheck.py`; exit status 0 = healthy. Production settings
redirect plain-HTTP requests to HTTPS and only accept the hosts in DJANGO_ALLOWED_HOSTS, so the request carries
`X-Forwarded-Proto: https` and the first allowed host name. Standard library only (the image has no curl).
"""

from __future__ import annotations

import http.client
import os
import sys


def allowed_host() -> str:
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        entry = entry.strip()
        if entry and entry != "*":
            return entry.lstrip(".")
    return "localhost"


def main() -> int:
    port = int(os.environ.get("HEALTHCHECK_PORT", "8000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz", headers={"Host": allowed_host(), "X-Forwarded-Proto": "https"})
        status = connection.getresponse().status
    except OSError as error:
        print(f"healthz: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"healthz: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
