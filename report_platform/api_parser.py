"""The API's JSON body parser: standard JSON, minus strings MongoDB cannot store.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a `str` that has no UTF-8 form, so
the first query or insert carrying it fails deep in the driver (BSON strings are UTF-8) and the caller got a 500.
Such a body is refused up front; ninja turns any parser error into a 400 envelope ("Cannot parse request body").
Found by the schema-driven fuzzing in tests/report_platform/test_openapi_fuzz.py.

A JSON body must say so (`Content-Type: application/json` or `+json`): anything else is refused with 415
`unsupported_media_type` (report_platform/api.py unwraps it from ninja's parse error), so a form or `text/plain`
post (what a cross-site form can send without a preflight) never reaches a JSON endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from report_platform.errors import DomainError


class UnstorableText(ValueError):
    pass


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    status = 415
    default_message = "Send the request body as JSON (Content-Type: application/json)."


def is_json_content_type(content_type: str) -> bool:
    content_type = (content_type or "").lower()
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _check(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnstorableText("text with a lone surrogate cannot be stored") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key)
            _check(item)
    elif isinstance(value, list):
        for item in value:
            _check(item)


class StorableJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        if not is_json_content_type(request.content_type):
            raise UnsupportedMediaType()
        data = json.loads(request.body)
        _check(data)
        return data
