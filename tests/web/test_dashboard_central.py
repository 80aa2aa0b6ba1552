"""The dashboard at a central hub: the city as its regional hub reported it (every school
online), and a header that says which tier this is. The central database is filled from a
regional one as tests/hub/test_federation.py does (``RegionalForwarder.collect``, then each
queued row to a ``FederationWorker``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.federation.ingest import FederationWorker
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings
from device_profiles.loader import load_profiles
from tests.auth_support import make_user
from tests.hub.builders import SITE, device_health, heartbeat
from tests.hub.test_federation import deliver, forwarder
from tests.hub.test_kpis import NOW
from tests.web.support import LoopThread, ServedHub, WatchedPage, serving, sign_in

SCHOOLS = [("s-1", "d-north"), ("s-2", "d-north"), ("s-3", "d-south")]


@pytest.fixture(scope="module")
def central_hub(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedHub]:
    """A central hub whose regional hub heard three schools' gateways, every device online."""
    work = tmp_path_factory.mktemp("tiers")
    profiles = load_profiles()
    regional, central = (make_engine(f"sqlite:///{work / name}") for name in ("r.db", "c.db"))
    for engine in (regional, central):
        create_schema(engine)
    worker = IngestWorker(make_sessionmaker(regional), profiles=profiles)
    for n, (school, district) in enumerate(SCHOOLS, 1):
        names = {"school_name": f"School {n}", "district_name": district}
        site = SITE.model_copy(update={"school_id": school, "district_id": district, **names})
        devices = [device_health("co2-1"), device_health("co2-2")]
        worker.process(*heartbeat(f"gw-{n}", seq=1, devices=devices, site=site), now=NOW)
    forwarding = forwarder(make_sessionmaker(regional), profiles, work / "outbox.db", at=NOW)
    forwarding.collect()
    deliver(forwarding, FederationWorker(make_sessionmaker(central)))
    forwarding.outbox.close()
    token = make_user(make_sessionmaker(central), "city", Role.CITY_ADMIN, "city:city-1", now=NOW)
    url = str(central.url)
    for engine in (regional, central):
        engine.dispose()
    app = create_app(
        HubSettings(role="central", database_url=url, development=True),
        run_ingest=False,
        profiles=profiles,
    )
    app.dependency_overrides[get_now] = lambda: NOW
    with serving(loop_thread, app) as served:
        served.token = token
        yield served


def test_the_central_hubs_dashboard_shows_the_schools_online_and_says_it_is_the_central_hub(
    central_hub: ServedHub, page: WatchedPage
) -> None:
    sign_in(page.page.context, central_hub)
    page.page.goto(f"{central_hub.url}/")

    schools = page.page.locator("#tree a.school")
    expect(schools).to_have_count(3)
    tier = page.page.locator("#tier")
    expect(tier).to_have_text("市级中心 hub · 3 所学校，由 1 个区县 hub 上报")
    assert [schools.nth(i).get_attribute("data-status") for i in range(3)] == ["online"] * 3
    expect(page.page.locator("#tree a.school[data-school=s-1]")).to_contain_text("2/2")
    expect(page.page.locator(".card-online .big")).to_have_text("3")
    expect(page.page.locator(".card-offline .big")).to_have_text("0")
    expect(page.page.locator(".kpis tr[data-kpi=campus_iot_coverage] td.num").first).to_have_text(
        "100 %"
    )
    page.screenshot("dashboard-central-hub")
    page.page.click("#lang")
    expect(tier).to_have_text("central hub · 3 schools reported by 1 regional hub(s)")
    page.assert_clean()
