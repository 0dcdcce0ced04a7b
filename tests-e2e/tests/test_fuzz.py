"""Schemathesis against the merged OpenAPI document, through the gateway, as a customer and as
staff: no input may cause a server error or an answer that breaks its own documented schema."""

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from bookstore_shared.stack import LocalStack
from bookstore_testing.plugin import DEMO_PASSWORD

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 12


def _bearer(base_url: str, email: str) -> dict[str, str]:
    token = httpx.post(
        f"{base_url}/api/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    ).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


@pytest.fixture(scope="session")
def api_schema(stack: LocalStack) -> Any:
    base_url = stack.url("gateway")
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.fixture(scope="session")
def as_customer(stack: LocalStack) -> dict[str, str]:
    return _bearer(stack.url("gateway"), "customer@bookstore.local")


@pytest.fixture(scope="session")
def as_staff(stack: LocalStack) -> dict[str, str]:
    return _bearer(stack.url("gateway"), "staff@bookstore.local")


def _fuzz(operation: Any, headers: dict[str, str], calls: list[str]) -> str | None:
    """Run one operation's examples; the first failure, described, or None."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # report, don't spend minutes shrinking
        database=None,
    )
    def run(case: Any) -> None:
        calls.append(operation.label)
        case.call_and_validate(
            headers=headers, checks=[not_a_server_error, response_schema_conformance], timeout=30
        )

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its failures
        return f"{operation.label}: {str(exc)[:1500]}"
    return None


def test_api_never_errs_and_keeps_to_its_schema(
    api_schema: Any, as_customer: dict[str, str], as_staff: dict[str, str]
) -> None:
    calls: list[str] = []
    failures = [
        failure
        for result in api_schema.get_all_operations()
        for headers in (as_customer, as_staff)
        if (failure := _fuzz(result.ok(), headers, calls)) is not None
    ]
    assert failures == [], "\n\n".join(failures)
    # It did fuzz: every public operation, with several examples each.
    assert len(set(calls)) >= 25
    assert len(calls) >= 10 * len(set(calls))
