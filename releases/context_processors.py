from django.http import HttpRequest

from releases import product_scope, selectors


def product_chooser(request: HttpRequest) -> dict:
    """The header's product chooser: the products (lazily: read only when a page draws the header for a signed-in
    user) and the product the page works in."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"products": selectors.products_list, "current_product": product_scope.request_product_shown(request)}
