import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from bookstore_shared.errors import NotFound, install_error_handlers


class ShelfMissing(NotFound):
    code, title = "shelf_missing", "Shelf not found"


class Shelf(BaseModel):
    name: str
    capacity: int


@pytest.fixture
async def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/shelves/{name}")
    async def get_shelf(name: str) -> Shelf:
        if name == "boom":
            raise RuntimeError("database password is hunter2")
        raise ShelfMissing(f"No shelf {name}.", shelf=name)

    @app.post("/shelves")
    async def add_shelf(shelf: Shelf) -> Shelf:
        return shelf

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_domain_error_renders_as_problem_with_its_own_status_and_extras(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/shelves/poetry", headers={"X-Request-ID": "ignored-not-uuid"})
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["type"] == "urn:bookstore:problem:shelf_missing"
    assert (body["title"], body["code"], body["shelf"]) == (
        "Shelf not found",
        "shelf_missing",
        "poetry",
    )
    assert body["detail"] == "No shelf poetry."


async def test_validation_error_lists_each_bad_field(client: httpx.AsyncClient) -> None:
    reply = await client.post("/shelves", json={"name": "poetry", "capacity": "lots"})
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["loc"] == ["body", "capacity"]


async def test_unexpected_error_is_a_bare_500_without_internals(client: httpx.AsyncClient) -> None:
    reply = await client.get("/shelves/boom")
    assert reply.status_code == 500
    assert reply.json()["code"] == "internal_error"
    assert "hunter2" not in reply.text
    assert "Traceback" not in reply.text


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere")).json()["status"] == 404
    reply = await client.delete("/shelves")
    assert reply.status_code == 405
    assert reply.headers["content-type"] == "application/problem+json"
