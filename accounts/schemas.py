"""Schemas of the auth API (blueprint: POST auth/register|login|refresh|logout|reset|reset/confirm)."""

from __future__ import annotations

from ninja import Field, Schema


class RegisterIn(Schema):
    email: str = Field(..., max_length=254)
    password: str = Field(..., max_length=4096)


class LoginIn(Schema):
    email: str = Field(..., max_length=254)
    password: str = Field(..., max_length=4096)
    code: str = Field("", max_length=32, description="TOTP or recovery code; required when MFA is enrolled.")
    device_name: str = Field("", max_length=100, description="Shown on the sessions page, e.g. 'CI runner'.")


class RefreshIn(Schema):
    refresh: str = Field(..., max_length=4096)


class ResetIn(Schema):
    email: str = Field(..., max_length=254)


class ResetConfirmIn(Schema):
    uid: str = Field(..., max_length=64, description="The user part of the key in the reset mail.")
    key: str = Field(..., max_length=128, description="The token part of the key in the reset mail.")
    password: str = Field(..., max_length=4096)


class TokenPairOut(Schema):
    access: str
    refresh: str
    token_type: str = "Bearer"
    expires_in: int = Field(..., description="Seconds until the access token expires.")


class DetailOut(Schema):
    detail: str


class MeOut(Schema):
    id: str
    email: str
    role: str
    mfa_enabled: bool
