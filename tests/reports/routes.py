"""Route/role table of the reports app: the least role allowed per method (see the brief and DESIGN.md)."""

ROUTES = {
    "reports:report_list": {"GET": "viewer"},
    "reports:report_create": {"GET": "reviewer", "POST": "reviewer"},
    "reports:report_detail": {"GET": "viewer"},
    "reports:report_download_link": {"GET": "viewer"},
    "reports:report_download": {"GET": "viewer"},
    "reports:report_delete": {"POST": "admin"},
    "api:report_list": {"GET": "viewer", "POST": "reviewer"},
    "api:report_detail": {"GET": "viewer", "DELETE": "admin"},
}
