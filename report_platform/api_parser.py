"""The API's JSON body parser: standard JSON, minus strings MongoDB cannot store.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a `str` that has no UTF-8 form, so
the first query or insert carrying it fails deep in the driver (BSON strings are UTF-8) and the caller got a 500.
Such a body is refused up front; ninja turns any parser error into a 400 envelope ("Cannot parse request body").
Found by the schema-driven fuzzing in tests/report_platform/test_openapi_fuzz.py.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser


class UnstorableText(ValueError):
    pass


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
        data = json.loads(request.body)
        _check(data)
        return data
