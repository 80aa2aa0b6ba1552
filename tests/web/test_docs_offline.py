"""``/docs`` works on a network without internet access: Swagger UI is served by the hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from campus_cli.quiet_server import QuietServer
from cloud_hub.api.main import create_app
from cloud_hub.settings import HubSettings
from tests.web.support import LoopThread, WatchedPage, serving


@pytest.fixture(scope="module")
def hub(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuietServer]:
    database = tmp_path_factory.mktemp("docs") / "hub.db"
    settings = HubSettings(database_url=f"sqlite:///{database}", development=True)
    with serving(loop_thread, create_app(settings, run_ingest=False)) as served:
        yield served


def test_swagger_ui_renders_every_route_from_the_hubs_own_files(
    hub: QuietServer, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/docs")

    page.page.locator(".opblock-summary-path", has_text="/api/v1/schools").first.wait_for()
    page.screenshot("docs-offline")
    page.assert_clean()


def test_vendored_assets_carry_their_licences() -> None:
    vendor = Path(__file__).resolve().parents[2] / "cloud_hub" / "static" / "vendor"
    for package in ("swagger-ui", "uplot"):
        assert (vendor / package / "LICENSE").read_text().strip(), package
