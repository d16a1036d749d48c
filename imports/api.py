"""JSON endpoints of the imports app, mounted under /api/v1 by report_platform/api.py."""

from ninja import Router

router = Router(tags=["imports"])
