"""One OpenAPI document for the whole public API, built from the apps' own specs.

Each app's paths are re-rooted under /api (only those the route table sends to that app), its
schemas merged into one `components` (a name two apps use for different shapes is prefixed
with the app's name), and the gateway's own routes added. The result is cached for a while.

The pages that show it (Swagger UI at /docs, ReDoc at /redoc) load their scripts and styles
from the gateway itself, from the files the package fastapi-offline ships: no CDN, so they
work on a machine without internet.
"""

import asyncio
import json
import time
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from bookstore_shared.identity import ASSERTION_HEADER, IdentitySigner
from gateway.proxy import API_PREFIX, Upstream, route_for

log = structlog.get_logger(__name__)

SECURITY_SCHEMES = {
    "bearer": {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "/api/auth/token", "scopes": {}}},
        "description": "Access token from POST /api/auth/token",
    },
}


async def _fetch_spec(
    client: httpx.AsyncClient, upstream: Upstream, signer: IdentitySigner
) -> dict[str, Any] | None:
    headers = {ASSERTION_HEADER: signer.sign(user_id=None, roles=(), request_id=None)}
    for base_url in upstream.urls:
        try:
            reply = await client.get(f"{base_url}/openapi.json", headers=headers)
            reply.raise_for_status()
            spec: dict[str, Any] = reply.json()
            return spec
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("openapi_fetch_failed", app=upstream.name, url=base_url, error=str(exc))
    return None


def _rename_schemas(spec: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    if not renames:
        return spec
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    renamed: dict[str, Any] = json.loads(text)
    schemas = renamed.get("components", {}).get("schemas", {})
    for old, new in renames.items():
        schemas[new] = schemas.pop(old)
    return renamed


def merge_specs(own: dict[str, Any], upstream_specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {
        **own,
        "paths": dict(own.get("paths", {})),
        "components": {
            "schemas": dict(own.get("components", {}).get("schemas", {})),
            "securitySchemes": SECURITY_SCHEMES,
        },
        "security": [{}, {"bearer": []}],
    }
    schemas = merged["components"]["schemas"]
    for app, spec in upstream_specs.items():
        theirs = spec.get("components", {}).get("schemas", {})
        renames = {
            name: f"{app.capitalize()}{name}"
            for name, schema in theirs.items()
            if name in schemas and schemas[name] != schema
        }
        spec = _rename_schemas(spec, renames)
        schemas.update(spec.get("components", {}).get("schemas", {}))
        for path, item in spec.get("paths", {}).items():
            public = API_PREFIX + path
            if route_for(public) == app:
                merged["paths"][public] = item
    merged["paths"] = dict(sorted(merged["paths"].items()))
    return merged


class MergedDocs:
    def __init__(
        self,
        *,
        app: FastAPI,
        client: httpx.AsyncClient,
        upstreams: dict[str, Upstream],
        signer: IdentitySigner,
        cache_seconds: float,
    ) -> None:
        self._app = app
        self._client = client
        self._upstreams = upstreams
        self._signer = signer
        self._cache_seconds = cache_seconds
        self._cached: dict[str, Any] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def _own_spec(self) -> dict[str, Any]:
        return self._app.openapi()

    async def spec(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached is not None and time.monotonic() < self._expires:
                return self._cached
            names = list(self._upstreams)
            fetched = await asyncio.gather(
                *(_fetch_spec(self._client, self._upstreams[n], self._signer) for n in names)
            )
            specs = {n: s for n, s in zip(names, fetched, strict=True) if s is not None}
            merged = merge_specs(self._own_spec(), specs)
            # A spec missing an app is served but not kept, so the next call tries again.
            if len(specs) == len(names):
                self._cached, self._expires = merged, time.monotonic() + self._cache_seconds
            return merged


DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"
# Swagger UI's "Authorize" dialog comes back here (FastAPI's usual path for it).
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"
ASSETS_URL = f"{DOCS_URL}/assets"
# Swagger UI 5 and ReDoc, as fastapi-offline ships them (its `static` folder): served from
# the installed package, never copied into this repository.
ASSETS_PACKAGE = ("fastapi_offline", "static")


def install_docs_pages(app: FastAPI, *, title: str) -> None:
    """GET /docs (Swagger UI) and GET /redoc (ReDoc) for the document at /openapi.json, with
    their assets under /docs/assets. Outside /api, so the guard lets anyone read them."""
    # Starlette finds the package's folder (and fails here, at start-up, if it is missing).
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root, assets = _urls(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=title,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root, assets = _urls(request)
        return get_redoc_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=title,
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,  # fonts from Google would be fetched from the internet
        )


def _urls(request: Request) -> tuple[str, str]:
    """Where the gateway is mounted (behind a proxy's prefix, say) and its docs assets."""
    root = request.scope.get("root_path", "").rstrip("/")
    return root, f"{root}{ASSETS_URL}"
