"""The product a page works in. Every page, the API and the reports choose RCs within one product; the product is
chosen once and then remembered:

1. an RC named in the request (`?rc=`) or a suite (`?suite=`) decides: it belongs to exactly one product;
2. else `?product=` (the header's chooser puts it in the URL, so a view can be shared);
3. else the product remembered in the user's session (the last one chosen or shown);
4. else the product of the newest RC in testing, else the first product with suites.

The product found is remembered in the session (pages only, never the API) and kept on the request for the
header (`releases.context_processors.product_chooser`).
"""

from __future__ import annotations

from django.http import HttpRequest

from releases import selectors
from releases.models import ReleaseCandidate, TestSuite
from report_platform.errors import ValidationFailed

SESSION_KEY = "releases.product"
REQUEST_ATTRIBUTE = "releases_product"


def product_check(value: str) -> str:
    """`value` when it is a product with suites, else `ValidationFailed` (code "unknown_product")."""
    products = selectors.products_list()
    if value not in products:
        raise ValidationFailed(
            "No such product.",
            code="unknown_product",
            fields={"product": [f"Use one of: {', '.join(products) or '(no products yet)'}."]},
        )
    return value


def suite_check(*, release_candidate: ReleaseCandidate, suite: TestSuite | None) -> None:
    """A suite of another product than the RC's is refused (`ValidationFailed` code "suite_other_product")."""
    if suite is not None and release_candidate.product and suite.product != release_candidate.product:
        raise ValidationFailed(
            f"{suite.name} belongs to {suite.product}, {release_candidate.name} to {release_candidate.product}.",
            code="suite_other_product",
            fields={"suite": [f"Choose a suite of {release_candidate.product}."]},
        )


def request_product(
    request: HttpRequest,
    *,
    release_candidate: ReleaseCandidate | None = None,
    suite: TestSuite | None = None,
) -> str:
    """The product of this request (rules in the module docstring). A suite and an RC of different products are
    refused (`ValidationFailed` code "suite_other_product")."""
    if release_candidate is not None and suite is not None:
        suite_check(release_candidate=release_candidate, suite=suite)
    session = getattr(request, "session", None)
    if release_candidate is not None:
        product = release_candidate.product
    elif suite is not None:
        product = suite.product
    elif request.GET.get("product"):
        product = product_check(request.GET["product"].strip())
    else:
        product = (session.get(SESSION_KEY) if session is not None else "") or ""
        if product and product not in selectors.products_list():
            product = ""
        product = product or selectors.product_default()
    if session is not None and product and session.get(SESSION_KEY) != product:
        session[SESSION_KEY] = product
    setattr(request, REQUEST_ATTRIBUTE, product)
    return product


def request_product_shown(request: HttpRequest) -> str:
    """The product the header shows: the one this request worked in, else the remembered one (no query)."""
    product = getattr(request, REQUEST_ATTRIBUTE, None)
    if product is None:
        session = getattr(request, "session", None)
        product = session.get(SESSION_KEY, "") if session is not None else ""
    return product
