"""Least role per method for every URL name the audit app adds (see the route/role matrix test)."""

ROUTES = {
    "audit:event_list": {"GET": "admin"},
    "audit:event_export": {"GET": "admin"},
}
