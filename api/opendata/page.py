"""The public page at ``/`` and its static files (Leaflet vendored from npm), from the package."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

STATIC: Final = Path(__file__).resolve().parent / "static"
STATIC_URL: Final = "/opendata/static"
# The page links relatively ("api/v1/…"), so it also works under a public URL's path prefix.
_PAGE_STATIC: Final = STATIC_URL.lstrip("/")
#: An XYZ tile URL template for the map background; empty (the default): no tiles, offline.
TILE_URL_ENV: Final = "CIVICPULSE_MAP_TILE_URL"
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    "": "text/plain; charset=utf-8",  # LICENSE, VERSION
}

page_router = APIRouter()


def tile_url() -> str:
    """The configured tile URL template (``{z}/{x}/{y}``), or ``""`` for none."""
    return os.environ.get(TILE_URL_ENV, "").strip()


def _csp(tiles: str) -> str:
    parts = urlsplit(tiles) if tiles else None
    origin = f" {parts.scheme}://{parts.netloc}" if parts and parts.scheme and parts.netloc else ""
    return (
        "default-src 'self'; script-src 'self'; connect-src 'self';"
        f" img-src 'self' data:{origin}; style-src 'self' 'unsafe-inline';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


@page_router.get("/", include_in_schema=False)
async def public_page() -> Response:
    """The map of the sensors with each site's DAQI band, latest readings and dataset links."""
    tiles = tile_url()
    text = (STATIC / "index.html").read_text("utf-8")
    text = text.replace("{{STATIC}}", _PAGE_STATIC).replace(
        "{{TILE_URL}}", html.escape(tiles, quote=True)
    )
    return HTMLResponse(text, headers={"Content-Security-Policy": _csp(tiles)})


@page_router.get(STATIC_URL + "/{path:path}", include_in_schema=False)
async def static_file(path: str) -> Response:
    """A file of ``api/opendata/static`` (never outside it)."""
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file() or target.suffix not in _TYPES:
        return Response('{"code":404,"message":"not found"}', 404, media_type="application/json")
    return FileResponse(
        target, media_type=_TYPES[target.suffix], headers={"Cache-Control": "public, max-age=3600"}
    )
