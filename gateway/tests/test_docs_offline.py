"""/docs and /redoc work with no internet: their scripts and styles come from the gateway.

The first tests read the pages in-process; the last one renders both in headless Chromium,
which is kept off the internet, from a gateway listening on a loopback port.
"""

import asyncio
import os
import re
import shutil
import signal
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import gateway
from bookstore_testing.harness import listening, migrate
from gateway.config import Settings
from gateway.main import create_app

MIGRATIONS = Path(gateway.__file__).parent / "migrations"
# What the browser loads for a page: scripts, style sheets, icons.
_ASSET = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.I)
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
CHROMIUM = "chromium"
CHROMIUM_SECONDS = 90


def _assets(page: str) -> list[str]:
    return _ASSET.findall(page)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_docs_pages_load_their_assets_from_the_gateway(
    client: httpx.AsyncClient, page: str, expected: set[str]
) -> None:
    reply = await client.get(page)  # no credentials: the docs are public
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/html")
    assets = _assets(reply.text)
    assert {url.rsplit("/", 1)[-1] for url in assets} == expected
    assert not re.search(r"https?://", reply.text), "the page refers to another site"
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(_CONTENT_TYPES[Path(url).suffix]), url
        assert len(asset.content) > 1000, url


async def test_swagger_ui_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in page
    reply = await client.get("/docs/oauth2-redirect")
    assert reply.status_code == 200
    assert "oauth2" in reply.text
    assert not re.search(r"https?://", reply.text)


async def test_docs_assets_serve_only_the_package_files(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs/assets/")).status_code == 404
    assert (await client.get("/docs/assets/..%2F__init__.py")).status_code == 404
    assert (await client.get("/docs/assets/missing.js")).status_code == 404


# An app's own OpenAPI document, as inventory would serve it (only what the merge reads).
INVENTORY_SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Inventory", "version": "0.1.0"},
    "paths": {
        "/books": {
            "get": {
                "summary": "List books",
                "operationId": "list_books",
                "responses": {"200": {"description": "The books"}},
            }
        }
    },
}


async def _inventory_spec(request: Request) -> JSONResponse:
    return JSONResponse(INVENTORY_SPEC)


inventory_stand_in = Starlette(routes=[Route("/openapi.json", _inventory_spec)])


async def _dump_dom(url: str, profile: Path) -> str:
    """The page as headless Chromium has it once its scripts ran. Chromium cannot reach the
    internet: every request but those to 127.0.0.1 goes to a proxy that is not there."""
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(CHROMIUM_SECONDS):
            out, err = await process.communicate()
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)  # the browser and its helper processes
        await process.wait()
        pytest.fail(f"chromium did not finish within {CHROMIUM_SECONDS} s")
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_docs_render_in_a_browser_without_internet(
    gateway_settings: Settings, tmp_path: Path
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            "chromium is not installed; this test renders /docs in it. Install it: "
            "apt-get install -y chromium (.ci/run does)"
        )
    await migrate(MIGRATIONS, gateway_settings.database_url)
    async with listening(inventory_stand_in) as inventory_url:
        settings = gateway_settings.model_copy(update={"inventory_url": inventory_url})
        async with listening(create_app(settings)) as gateway_url:
            swagger = await _dump_dom(f"{gateway_url}/docs", tmp_path / "swagger-profile")
            redoc = await _dump_dom(f"{gateway_url}/redoc", tmp_path / "redoc-profile")
    # Swagger UI puts a zero-width space before each "/" of a path it shows.
    text = swagger.replace("\u200b", "")
    assert "opblock" in swagger, f"Swagger UI rendered no operation:\n{swagger[:3000]}"
    assert "/api/books" in text  # from the app's document, merged
    assert "/api/auth/token" in text  # the gateway's own
    assert "Authorize" in swagger  # the security scheme's button
    assert "redoc-wrap" in redoc, f"ReDoc rendered nothing:\n{redoc[:3000]}"
    assert "/api/books" in redoc
    assert "/api/auth/token" in redoc
