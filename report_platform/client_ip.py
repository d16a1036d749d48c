"""The client's IP address, trusting X-Forwarded-For only when the direct peer is one of our proxies."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    if peer and peer in settings.TRUSTED_PROXY_IPS:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        # Walk from the nearest hop back; the first address that is not one of our proxies is the client.
        for address in reversed(forwarded):
            if address not in settings.TRUSTED_PROXY_IPS:
                return address
    return peer
