"""JSON endpoints of the ai_assist app, mounted under /api/v1 by report_platform/api.py."""

from ninja import Router

router = Router(tags=["ai_assist"])
