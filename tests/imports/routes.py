"""Least role per method for every URL name the imports app adds (checked by the route/role matrix test)."""

ROUTES = {
    "imports:import_list": {"GET": "reviewer", "POST": "reviewer"},
    "imports:import_detail": {"GET": "reviewer"},
    "imports:import_confirm": {"POST": "reviewer"},
    "imports:import_cancel": {"POST": "reviewer"},
    "imports:junit_upload": {"POST": "reviewer"},
    "imports:template_download": {"GET": "viewer"},
    "imports:export_cases": {"GET": "admin"},
    "imports:export_runs": {"GET": "admin"},
    "api:import_create": {"POST": "reviewer"},
    "api:import_junit_create": {"POST": "reviewer"},
    "api:import_get": {"GET": "reviewer"},
    "api:import_confirm": {"POST": "reviewer"},
    "api:import_cancel": {"POST": "reviewer"},
    "api:export_cases": {"GET": "admin"},
    "api:export_runs": {"GET": "admin"},
}
