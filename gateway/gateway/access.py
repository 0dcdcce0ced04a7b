"""Who may call what: one rule for every public route. A route without a rule is refused.

Roles: `public` anyone; `user` anyone signed in; `staff` staff and admins; `admin` admins.
Ownership (a customer sees only their own orders, cart and deliveries) is checked by the app
that owns the data; this table only decides who may knock.
"""

import re
from enum import StrEnum

from bookstore_shared.errors import Forbidden, Unauthorized
from bookstore_shared.identity import Principal


class Rule(StrEnum):
    PUBLIC = "public"
    USER = "user"
    STAFF = "staff"
    ADMIN = "admin"


RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/auth/register"): Rule.PUBLIC,
    ("POST", "/api/auth/token"): Rule.PUBLIC,
    ("POST", "/api/auth/refresh"): Rule.PUBLIC,
    ("POST", "/api/auth/logout"): Rule.PUBLIC,
    ("POST", "/api/auth/password-reset"): Rule.PUBLIC,
    ("POST", "/api/auth/password-reset/confirm"): Rule.PUBLIC,
    ("GET", "/api/auth/me"): Rule.USER,
    ("PATCH", "/api/auth/me"): Rule.USER,
    ("POST", "/api/auth/api-keys"): Rule.ADMIN,
    ("GET", "/api/auth/api-keys"): Rule.ADMIN,
    ("DELETE", "/api/auth/api-keys/{key_id}"): Rule.ADMIN,
    ("GET", "/api/users"): Rule.ADMIN,
    ("PUT", "/api/users/{user_id}/role"): Rule.ADMIN,
    ("POST", "/api/users/{user_id}/deactivate"): Rule.ADMIN,
    ("GET", "/api/books"): Rule.PUBLIC,
    ("GET", "/api/books/categories"): Rule.PUBLIC,
    ("GET", "/api/books/isbn/{isbn}"): Rule.PUBLIC,
    ("GET", "/api/books/{book_id}"): Rule.PUBLIC,
    ("POST", "/api/books"): Rule.STAFF,
    ("POST", "/api/books/import"): Rule.STAFF,
    ("PATCH", "/api/books/{book_id}"): Rule.STAFF,
    ("DELETE", "/api/books/{book_id}"): Rule.STAFF,
    ("POST", "/api/books/{book_id}/restore"): Rule.STAFF,
    ("POST", "/api/books/{book_id}/stock-adjustments"): Rule.STAFF,
    ("GET", "/api/books/{book_id}/stock-adjustments"): Rule.STAFF,
    ("GET", "/api/books/{book_id}/summary"): Rule.PUBLIC,
    ("GET", "/api/books/{book_id}/reviews"): Rule.PUBLIC,
    ("POST", "/api/books/{book_id}/reviews"): Rule.USER,
    ("GET", "/api/books/{book_id}/reviews/{review_id}"): Rule.PUBLIC,
    ("PATCH", "/api/books/{book_id}/reviews/{review_id}"): Rule.USER,
    ("DELETE", "/api/books/{book_id}/reviews/{review_id}"): Rule.USER,
    ("GET", "/api/reports/low-stock"): Rule.STAFF,
    ("GET", "/api/reports/sales-summary"): Rule.STAFF,
    ("GET", "/api/reports/top-sellers"): Rule.STAFF,
    ("GET", "/api/cart"): Rule.USER,
    ("DELETE", "/api/cart"): Rule.USER,
    ("POST", "/api/cart/items"): Rule.USER,
    ("PUT", "/api/cart/items/{book_id}"): Rule.USER,
    ("DELETE", "/api/cart/items/{book_id}"): Rule.USER,
    ("GET", "/api/orders"): Rule.USER,
    ("GET", "/api/orders/events"): Rule.USER,
    ("POST", "/api/orders"): Rule.USER,
    ("GET", "/api/orders/{order_id}"): Rule.USER,
    ("GET", "/api/orders/{order_id}/saga"): Rule.USER,
    ("GET", "/api/orders/{order_id}/events"): Rule.USER,
    ("POST", "/api/orders/{order_id}/cancel"): Rule.USER,
    ("GET", "/api/deliveries"): Rule.USER,
    ("GET", "/api/deliveries/{delivery_id}"): Rule.USER,
    ("POST", "/api/deliveries/{delivery_id}/status"): Rule.STAFF,
}


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")


# Literal segments before parameters: /api/books/categories must win over /api/books/{id}.
_COMPILED = sorted(
    ((method, _pattern(template), template, rule) for (method, template), rule in RULES.items()),
    key=lambda entry: (entry[2].count("{"), -len(entry[2])),
)


def _route(path: str) -> list[tuple[str, str, Rule]]:
    """(method, template, rule) of the route this path names: of the templates that match it,
    the most literal (/api/books/categories is that route, not /api/books/{book_id})."""
    matching = [(t, m, r) for m, pattern, t, r in _COMPILED if pattern.match(path)]
    if not matching:
        return []
    fewest = min(template.count("{") for template, _, _ in matching)
    return [(m, t, r) for t, m, r in matching if t.count("{") == fewest]


def find_route(method: str, path: str) -> tuple[str, Rule] | None:
    """The route template this request names and its rule (None: no such route)."""
    method = "GET" if method == "HEAD" else method
    return next(
        ((t, rule) for route_method, t, rule in _route(path) if route_method == method), None
    )


def methods_for(path: str) -> set[str]:
    """The methods the route this path names takes (empty: no route has this path)."""
    methods = {method for method, _, _ in _route(path)}
    return methods | ({"HEAD"} if "GET" in methods else set())


def check(rule: Rule, principal: Principal) -> None:
    if rule == Rule.PUBLIC:
        return
    if not principal.is_authenticated:
        raise Unauthorized("Sign in first: POST /api/auth/token, or send X-API-Key.")
    if rule == Rule.STAFF and not principal.is_staff:
        raise Forbidden("This route is for staff.")
    if rule == Rule.ADMIN and not principal.is_admin:
        raise Forbidden("This route is for admins.")
