"""The hub's own pages: the operations dashboard at ``/`` and Swagger UI at ``/docs``.

Every asset comes from ``cloud_hub/static`` (vendored with its licence, see
``tools/vendor_web_assets.sh``): the hub must work on a school network with no internet access.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
SWAGGER = "/static/vendor/swagger-ui"

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=FileResponse)
def dashboard() -> FileResponse:
    """The operations dashboard (a static page that reads the REST API)."""
    return FileResponse(STATIC_DIR / "dashboard" / "index.html", media_type="text/html")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the hub's own files (FastAPI's default loads it from a CDN)."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # the default validator is off-machine
    )


def add_web(app: FastAPI) -> None:
    """Mount the static files and the page routes on ``app``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
