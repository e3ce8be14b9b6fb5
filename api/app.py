"""The API's ASGI application: one FastAPI app, its routers, its database pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.reader import Reader


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """What the app needs: where to read, and the public base URL its links are built from."""

    database_url: str
    public_url: str  # e.g. http://localhost:8080 (no trailing slash)
    tenancy: bool = True
    pool_size: int = 8


def create_app(config: ApiConfig) -> FastAPI:
    """The application; the pool opens on start-up and closes on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool = AsyncConnectionPool(
            config.database_url, min_size=1, max_size=config.pool_size, open=False
        )
        await pool.open()
        app.state.reader = Reader(pool, tenancy=config.tenancy)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="civicpulse open-data API", lifespan=lifespan, docs_url="/docs")
    app.state.config = config
    return app
