"""The dashboard over a live school: real Mosquitto (TLS, ACL), pymodbus servers, an MQTT device,
the edge agent, and the hub with its ingest worker, all on this machine.

The school serves ``tests.e2e.support.SERVED``: its gas detector reads 30 %LEL, above the
GB/T 50493-2019 first alarm level, so the hub holds one active level II (orange) alert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, expect

from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.broker import MosquittoBroker
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.settings import BrokerSettings, HubSettings, TlsSettings
from device_profiles.loader import load_profiles
from edge_agent.app import Agent
from simulators.faults import Fault, FaultKind
from simulators.fleet import RunningFleet, plan_city
from tests.auth_support import bearer, make_user
from tests.e2e.support import agent_settings, serve_school
from tests.web.support import (
    LoopThread,
    ServedHub,
    WatchedPage,
    change_alert_in_dialog,
    serving,
    sign_in,
)

POLL = "?poll=1"
#: the hub calls a gateway offline after this long without a heartbeat (the agent beats every 1 s)
OFFLINE_AFTER_S = 5.0


@dataclass
class LiveSchool:
    hub: ServedHub
    fleet: RunningFleet
    school_id: str

    def modbus_device(self) -> str:
        configs = self.fleet.agent_device_configs(self.school_id)
        modbus = [d for d in configs if "modbus" in d and d["profile"] != "honeywell_midas_gas"]
        return str(modbus[0]["id"])


@pytest.fixture(scope="module")
def school(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSchool]:
    workdir = tmp_path_factory.mktemp("live")
    plan = plan_city(1, 1, seed=7)
    gateway, school_id = plan.schools[0].gateway_id, plan.schools[0].id
    broker = MosquittoBroker(workdir / "mosquitto", gateways=[gateway], tls=True)
    broker.start()
    fleet = loop_thread.run(serve_school(plan, site_broker_port=broker.site_port or 0))
    settings = HubSettings(
        database_url=f"sqlite:///{workdir / 'hub.db'}",
        broker=BrokerSettings(
            host=broker.host,
            port=broker.port,
            password=broker.hub_password,
            tls=TlsSettings(ca_file=broker.ca_file),
        ),
        offline_after_s=OFFLINE_AFTER_S,
        development=True,
    )
    agent_config = agent_settings(plan, fleet, broker, workdir / "agent")
    engine = make_engine(settings.database_url)
    create_schema(engine)
    city = f"city:{plan.city_id}"
    token = make_user(
        make_sessionmaker(engine), "admin", Role.CITY_ADMIN, city, now=datetime.now(UTC)
    )
    engine.dispose()

    async def start_agent() -> tuple[Agent, asyncio.Task[None]]:
        agent = Agent(agent_config, load_profiles())  # its outbox belongs to the loop's thread
        return agent, asyncio.create_task(agent.run())

    try:
        with serving(loop_thread, create_app(settings, profiles=load_profiles())) as hub:
            hub.token = token
            agent, running = loop_thread.run(start_agent())
            try:
                yield LiveSchool(hub=hub, fleet=fleet, school_id=school_id)
            finally:
                loop_thread.loop.call_soon_threadsafe(agent.request_stop)
                loop_thread.run(asyncio.wait_for(running, 20))
    finally:
        loop_thread.run(fleet.stop())
        broker.stop()


@pytest.fixture(autouse=True)
def signed_in(school: LiveSchool, context: BrowserContext) -> None:
    sign_in(context, school.hub)


def test_city_view_shows_the_school_online_and_its_orange_gas_alert(
    school: LiveSchool, page: WatchedPage
) -> None:
    page.page.goto(f"{school.hub.url}/{POLL}")

    row = page.page.locator(f"#tree a.school[data-school={school.school_id}]")
    expect(row).to_have_attribute("data-status", "online", timeout=15_000)
    gas = page.page.locator(".active-alerts tr.alert[data-level=II]")
    expect(gas.locator(".level")).to_have_text("橙", timeout=10_000)
    page.screenshot("dashboard-live-city")
    page.assert_clean()


def series_span(url: str) -> timedelta | None:
    """The range a request for a series asks for (None for any other request)."""
    if "/series?" not in url:
        return None
    query = parse_qs(urlsplit(url).query)
    return datetime.fromisoformat(query["to"][0]) - datetime.fromisoformat(query["from"][0])


def test_school_page_draws_a_history_chart_of_a_point_from_the_hubs_downsampled_series(
    school: LiveSchool, page: WatchedPage
) -> None:
    page.page.goto(f"{school.hub.url}/{POLL}#/school/{school.school_id}")

    page.page.wait_for_function(
        "Number(document.querySelector('#chart')?.dataset.points) >= 2", timeout=30_000
    )
    expect(page.page.locator("#chart canvas")).to_have_count(1)
    page.screenshot("dashboard-live-school-chart")

    with page.page.expect_response(lambda r: series_span(r.url) == timedelta(hours=24)) as answer:
        page.page.select_option("select.chart-range", "range_24h")
    assert parse_qs(urlsplit(answer.value.url).query)["buckets"] == ["300"]
    assert answer.value.ok
    page.page.wait_for_function(
        "(c => c.dataset.range === 'range_24h' && Number(c.dataset.points) >= 2)"
        "(document.querySelector('#chart'))"
    )
    page.assert_clean()


def test_an_operator_acknowledges_an_alert_with_a_comment(
    school: LiveSchool, page: WatchedPage
) -> None:
    page.page.goto(f"{school.hub.url}/{POLL}#/alerts")
    gas = page.page.locator("tr.alert[data-level=II]")
    expect(gas).to_have_attribute("data-state", "open", timeout=15_000)

    comment = "ventilating lab 1, technician on the way"

    answer = change_alert_in_dialog(page.page, gas, "ack", comment)

    assert answer.ok
    assert answer.request.post_data_json == {"comment": comment}
    assert answer.json()["changes"][-1]["comment"] == comment
    expect(gas).to_have_attribute("data-state", "acknowledged")
    expect(gas.locator("td.state-cell")).to_contain_text("已确认")
    expect(gas.locator("td.state-cell")).to_contain_text("admin")
    expect(gas.locator("button.ack")).to_have_count(0)
    expect(gas.locator("button.resolve")).to_be_visible()
    page.screenshot("dashboard-live-alert-acknowledged")
    page.assert_clean()


def test_the_page_follows_the_hubs_event_stream_without_polling(
    school: LiveSchool, page: WatchedPage
) -> None:
    """The page polls once an hour here: an alert resolved elsewhere leaves it by the stream."""
    page.page.goto(f"{school.hub.url}/?poll=3600#/alerts")
    expect(page.page.locator("#live")).to_have_attribute("data-mode", "stream", timeout=15_000)
    gas = page.page.locator("tr.alert[data-level=II]")
    expect(gas).to_have_count(1, timeout=15_000)
    alert_id = gas.get_attribute("data-alert")

    answer = page.page.request.post(
        f"{school.hub.url}/api/v1/alerts/{alert_id}/resolve",
        headers=bearer(school.hub.token),
        data={"comment": "leak found and fixed"},
    )

    assert answer.ok, answer.text()
    resolved = page.page.locator(f"tr.alert[data-alert='{alert_id}']")
    expect(resolved).to_have_count(0, timeout=10_000)
    expect(page.page.locator("#live")).not_to_have_attribute("data-events", "0")  # by the stream
    page.assert_clean()


def test_a_stopped_device_turns_its_school_amber_within_the_health_timeout(
    school: LiveSchool, page: WatchedPage, loop_thread: LoopThread
) -> None:
    page.page.goto(f"{school.hub.url}/{POLL}")
    row = page.page.locator(f"#tree a.school[data-school={school.school_id}]")
    expect(row).to_have_attribute("data-status", "online", timeout=15_000)
    device = school.modbus_device()

    stopped_at = time.monotonic()
    school.fleet.set_fault(school.school_id, device, Fault(FaultKind.OFFLINE))
    try:
        expect(row).to_have_attribute("data-status", "degraded", timeout=OFFLINE_AFTER_S * 1000)
        took = time.monotonic() - stopped_at
        page.screenshot("dashboard-live-school-amber")
        page.page.goto(f"{school.hub.url}/{POLL}#/school/{school.school_id}")
        device_row = page.page.locator(f"tr.device[data-device={device}]")
        expect(device_row).to_have_attribute("data-status", "offline")
        expect(device_row.locator("td.error")).not_to_be_empty()
    finally:
        school.fleet.set_fault(school.school_id, device, None)
    assert took < OFFLINE_AFTER_S
    page.assert_clean()
