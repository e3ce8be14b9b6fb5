"""Open data: aggregates as data, CSV and GeoJSON exports, and the public map page at ``/``."""

from api.opendata.page import page_router
from api.opendata.routes import router as _data_router

router = _data_router
router.include_router(page_router)

__all__ = ["router"]
