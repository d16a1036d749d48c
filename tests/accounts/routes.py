"""Least role per method for the accounts app's URL names and for the foundation's routes (home, health, metrics,
the Django admin, allauth's account/MFA/session pages, the API's schema, docs and health). Checked by
tests/test_access_matrix.py.

"<namespace>:*" covers every URL of a namespace (the Django admin adds one per registered model, whoever registers
it); a specific entry wins over the wildcard."""

ANON, VIEWER, REVIEWER, ADMIN = "anonymous", "viewer", "reviewer", "admin"

ROUTES = {
    # Foundation
    "home": {"GET": ANON},
    "healthz": {"GET": ANON},
    "metrics": {"GET": ANON},  # gated by client IP (METRICS_ALLOWED_IPS) or METRICS_TOKEN, not by role
    "api:openapi-json": {"GET": ANON},
    "api:openapi-view": {"GET": ANON},
    "api:api-root": {"GET": ANON},
    "api:api_health": {"GET": ANON},
    # The Django admin: admins only; its login page sends everyone to allauth's login.
    "admin:*": {"GET": ADMIN, "POST": ADMIN},
    "admin:login": {"GET": ANON, "POST": ANON},
    # allauth: account
    "account_login": {"GET": ANON, "POST": ANON},
    "account_logout": {"GET": VIEWER, "POST": VIEWER},
    "account_inactive": {"GET": ANON},
    "account_signup": {"GET": ANON, "POST": ANON},
    "account_reauthenticate": {"GET": VIEWER, "POST": VIEWER},
    "account_email": {"GET": VIEWER, "POST": VIEWER},
    "account_email_verification_sent": {"GET": ANON},
    "account_change_password": {"GET": VIEWER, "POST": VIEWER},
    "account_set_password": {"GET": VIEWER, "POST": VIEWER},
    "account_reset_password": {"GET": ANON, "POST": ANON},
    "account_confirm_login_code": {"GET": ANON, "POST": ANON},
    "account_confirm_email": {"GET": ANON, "POST": ANON},
    "account_reset_password_from_key_done": {"GET": ANON},
    "account_reset_password_from_key": {"GET": ANON, "POST": ANON},
    "account_reset_password_done": {"GET": ANON},
    # allauth: MFA and sessions
    "mfa_index": {"GET": VIEWER},
    "mfa_authenticate": {"GET": ANON, "POST": ANON},  # the pending login's second step (no session yet)
    "mfa_reauthenticate": {"GET": VIEWER, "POST": VIEWER},
    "mfa_activate_totp": {"GET": VIEWER, "POST": VIEWER},
    "mfa_deactivate_totp": {"GET": VIEWER, "POST": VIEWER},
    "mfa_view_recovery_codes": {"GET": VIEWER},
    "mfa_generate_recovery_codes": {"GET": VIEWER, "POST": VIEWER},
    "mfa_download_recovery_codes": {"GET": VIEWER},
    "usersessions_list": {"GET": VIEWER, "POST": VIEWER},
    # accounts pages
    "accounts:security": {"GET": VIEWER},
    "accounts:session_end": {"POST": VIEWER},
    "accounts:token_family_end": {"POST": VIEWER},
    "accounts:api_token_create": {"POST": REVIEWER},
    "accounts:api_token_revoke": {"POST": REVIEWER},
    "accounts:user_list": {"GET": ADMIN},
    "accounts:user_role": {"POST": ADMIN},
    "accounts:user_active": {"POST": ADMIN},
    # accounts API
    "api:auth_register": {"POST": ANON},
    "api:auth_login": {"POST": ANON},
    "api:auth_refresh": {"POST": ANON},
    "api:auth_logout": {"POST": ANON},
    "api:auth_reset": {"POST": ANON},
    "api:auth_reset_confirm": {"POST": ANON},
    "api:auth_me": {"GET": VIEWER},
}
