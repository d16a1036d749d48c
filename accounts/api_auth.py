"""How API callers authenticate: a JWT access token (`Authorization: Bearer ...`), or the browser session with
CSRF. Every router uses `API_AUTH` unless an operation is public (`auth=None`)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from accounts import selectors, services, tokens


class JWTBearer(HttpBearer):
    """Validates the access token (tokens.decode: HS256 only, kid, exp, iss, aud, typ) and that its family is live
    and its user active. Sets `request.user`; returns None (401) for every failure. Failures are counted per client
    IP: past API_TOKEN_FAILURES_PER_IP in the window, every bearer call from that IP is refused 429."""

    openapi_description = "JWT access token from POST /api/v1/auth/login (15 minutes)."

    def authenticate(self, request: HttpRequest, token: str):
        services.token_failures_check(request=request)
        try:
            user = selectors.user_from_access_token(token=token)
        except tokens.InvalidToken:
            services.token_failure_record(request=request)
            return None
        request.user = user
        return user


class CITokenBearer(HttpBearer):
    """A long-lived CI token (`rpt_...`, accounts.models.ApiToken). Listed only on the routes it is scoped to
    (CI_AUTH: POST imports/junit, POST runs/bulk); anywhere else such a token is refused like any bad bearer.
    Anything that is not a CI token is left to the next scheme (the JWT)."""

    openapi_description = "Long-lived CI token (rpt_...) from your account page; results import and bulk runs only."

    def authenticate(self, request: HttpRequest, token: str):
        if tokens.ci_token_prefix(token) is None:
            return None
        services.token_failures_check(request=request)
        try:
            user, api_token = selectors.api_token_user(token=token)
        except tokens.InvalidToken:
            services.token_failure_record(request=request)
            return None
        services.api_token_used(token=api_token, request=request)
        request.user = user
        request.api_token = api_token
        return user


API_AUTH = [JWTBearer(), SessionAuth(csrf=True)]
# The routes a CI token may call: the CI token first, then what every route accepts.
CI_AUTH = [CITokenBearer(), *API_AUTH]
