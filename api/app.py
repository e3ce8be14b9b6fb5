"""The API's ASGI application: one FastAPI app, its routers, its database pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool

import api.agreements
import api.opendata
import api.sensorthings.router
from api.access import PUBLIC_RATE_PER_MINUTE, Access
from api.opendata.page import STATIC_URL
from api.reader import REQUEST_LINE, Reader


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """What the app needs: where to read, and the public base URL its links are built from."""

    database_url: str
    public_url: str  # e.g. http://localhost:8080 (no trailing slash)
    tenancy: bool = True
    pool_size: int = 8
    public_rate_per_minute: int = PUBLIC_RATE_PER_MINUTE  # per client address, without a key
    # sensors.geojson per caller role is reused this long (the map polls it; 0: never):
    # each request still leaves its access-log row.
    geojson_cache_s: float = 10.0


class StripPrefix:
    """Serve the routes also under the public URL's path (``/civic/v1.1`` as ``/v1.1``)."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] in ("http", "websocket") else ""
        if path == self.prefix or path.startswith(self.prefix + "/"):
            scope = dict(scope, path=path[len(self.prefix) :] or "/")
        await self.app(scope, receive, send)


class RequestLine:
    """Note the request line (method, path, query) for the access log of its reads."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode("latin-1")
            line = f"{scope['method']} {scope['path']}" + (f"?{query}" if query else "")
            token = REQUEST_LINE.set(line)
            try:
                await self.app(scope, receive, send)
            finally:
                REQUEST_LINE.reset(token)
            return
        await self.app(scope, receive, send)


def create_app(config: ApiConfig) -> FastAPI:
    """The application; the pool opens on start-up and closes on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool = AsyncConnectionPool(
            config.database_url, min_size=1, max_size=config.pool_size, open=False
        )
        await pool.open()
        app.state.reader = Reader(pool, tenancy=config.tenancy)
        app.state.access = Access(pool, public_rate=config.public_rate_per_minute)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="civicpulse open-data API", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    prefix_path = urlsplit(config.public_url).path.rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """The OpenAPI docs, with Swagger UI served from the package (no CDN)."""
        vendor = f"{prefix_path}{STATIC_URL}/vendor/swagger-ui"
        return get_swagger_ui_html(
            openapi_url=f"{prefix_path}{app.openapi_url}",
            title=f"{app.title} — docs",
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    app.state.config = config
    api.sensorthings.router.install_error_handlers(app)
    app.include_router(api.sensorthings.router.router)
    app.include_router(api.opendata.router)
    app.include_router(api.agreements.router)
    # Open data is for anyone's web page: any origin may read (GET), with or without a key.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Authorization", "X-API-Key"],
        expose_headers=["Retry-After"],
    )
    app.add_middleware(RequestLine)
    prefix = urlsplit(config.public_url).path.rstrip("/")
    if prefix:
        app.add_middleware(StripPrefix, prefix=prefix)
    return app
