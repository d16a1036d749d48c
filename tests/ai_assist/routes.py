"""Every URL name the ai_assist app adds, with the least role allowed per method (DESIGN.md roles table:
viewers may use AI assist within their own quota)."""

ROUTES = {
    "ai_assist:assist": {"GET": "viewer"},
    "ai_assist:assist_stream": {"POST": "viewer"},
    "ai_assist:usage": {"GET": "viewer"},
    "ai_assist:batch_create": {"POST": "viewer"},
    "ai_assist:batch_detail": {"GET": "viewer"},
    "api:ai_assist": {"POST": "viewer"},
    "api:ai_usage": {"GET": "viewer"},
    "api:ai_usage_export": {"GET": "admin"},
    "api:ai_batch_create": {"POST": "viewer"},
    "api:ai_batch_detail": {"GET": "viewer"},
}
