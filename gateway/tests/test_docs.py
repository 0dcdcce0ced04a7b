from typing import Any

from gateway.docs import merge_specs


def _spec(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_merge_specs_roots_app_paths_under_api_and_keeps_only_routed_ones() -> None:
    inventory = _spec({"/books": {"get": {}}, "/health/live": {"get": {}}}, {})
    merged = merge_specs(_spec({"/api/auth/me": {"get": {}}}, {}), {"inventory": inventory})
    assert sorted(merged["paths"]) == ["/api/auth/me", "/api/books"]


def test_merge_specs_prefixes_a_schema_name_two_apps_use_differently() -> None:
    sales = _spec(
        {"/orders": {"get": {"responses": {"200": _ref("Item")}}}},
        {"Item": {"type": "object", "properties": {"quantity": {}}}},
    )
    delivery = _spec(
        {"/deliveries": {"get": {"responses": {"200": _ref("Item")}}}},
        {"Item": {"type": "object", "properties": {"parcel": {}}}},
    )
    merged = merge_specs(_spec({}, {}), {"sales": sales, "delivery": delivery})
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"Item", "DeliveryItem"}
    assert merged["paths"]["/api/orders"]["get"]["responses"]["200"] == _ref("Item")
    assert merged["paths"]["/api/deliveries"]["get"]["responses"]["200"] == _ref("DeliveryItem")
    assert "parcel" in schemas["DeliveryItem"]["properties"]


def test_merge_specs_shares_a_schema_two_apps_define_identically() -> None:
    problem = {"type": "object", "properties": {"status": {}}}
    merged = merge_specs(
        _spec({}, {"Problem": problem}),
        {"sales": _spec({}, {"Problem": problem}), "delivery": _spec({}, {"Problem": problem})},
    )
    assert set(merged["components"]["schemas"]) == {"Problem"}
