"""The city view over a hub holding two schools: one degraded with alerts, one offline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, expect

from campus_protocol import DeviceStatus, EventState
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings
from device_profiles.loader import load_profiles
from tests.auth_support import PASSWORD, bearer, make_user
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, stats, telemetry
from tests.web.support import (
    LoopThread,
    ServedHub,
    WatchedPage,
    change_alert_in_dialog,
    serving,
    sign_in,
)

SITE_2 = SITE.model_copy(
    update={"district_id": "d-south", "district_name": "South", "school_id": "s-2",
            "school_name": "No. 2 Middle School"}
)  # fmt: skip


@pytest.fixture(scope="module")
def hub(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('city') / 'hub.db'}"
    engine = make_engine(database_url)
    create_schema(engine)
    worker = IngestWorker(make_sessionmaker(engine), profiles=load_profiles())
    devices = [
        device_health("co2-1"),
        device_health("lux-1", status=DeviceStatus.OFFLINE),
        device_health("box-1", profile="acme_mystery_box_v9"),
    ]
    worker.process(*heartbeat(seq=1, devices=devices), now=T0)
    worker.process(*telemetry(seq=2, points={"co2": stats(1200, unit="ppm")}))
    worker.process(*event(seq=3, state=EventState.RAISED))  # gas-1, level II
    worker.process(*event(seq=4, state=EventState.RAISED, rule="gas_lab_2", device="gas-2"))
    earlier = T0 - timedelta(minutes=10)
    worker.process(*heartbeat("gw-2", seq=1, site=SITE_2, sent_at=earlier), now=earlier)
    sessions = make_sessionmaker(engine)
    token = make_user(sessions, "admin", Role.CITY_ADMIN, "city:city-1", now=T0)
    tokens = {
        "viewer": make_user(sessions, "viewer", Role.VIEWER, "city:city-1", now=T0),
        "leaving": make_user(sessions, "leaving", Role.CITY_ADMIN, "city:city-1", now=T0),
    }
    engine.dispose()
    app = create_app(HubSettings(database_url=database_url, development=True), run_ingest=False)
    app.dependency_overrides[get_now] = lambda: T0 + timedelta(seconds=5)
    with serving(loop_thread, app) as served:
        served.token, served.tokens = token, tokens
        yield served


@pytest.fixture(autouse=True)
def signed_in(request: pytest.FixtureRequest, hub: ServedHub, context: BrowserContext) -> None:
    """The browser holds the admin's session cookie, as after signing in at /login (or the
    cookie of the user a ``signed_in_as`` mark names)."""
    if "signed_out" in request.keywords:
        return
    as_user = request.node.get_closest_marker("signed_in_as")
    sign_in(context, hub, as_user.args[0] if as_user else None)


@pytest.mark.signed_out
def test_a_signed_out_visitor_is_sent_to_the_login_page_and_signs_in(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/")
    page.page.wait_for_url(f"{hub.url}/login")

    page.page.fill("input[name=username]", "admin")
    page.page.fill("input[name=password]", PASSWORD)
    page.page.click("button")

    page.page.wait_for_url(f"{hub.url}/")
    expect(page.page.locator("#tree a.school")).to_have_count(2)


def test_city_tree_lists_problem_schools_first_with_their_status_colours(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/")

    schools = page.page.locator("#tree a.school")
    expect(schools).to_have_count(2)
    assert [schools.nth(i).get_attribute("data-status") for i in range(2)] == [
        "offline",
        "degraded",
    ]
    expect(page.page.locator("#tree a.school[data-school=s-1] .status")).to_have_text("部分故障")
    page.screenshot("dashboard-city-seeded")
    page.assert_clean()


def test_active_alerts_show_their_level_in_chinese_by_default_and_english_on_switch(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/#/alerts")
    gas = page.page.locator("tr.alert[data-device=gas-1]")  # the gateway's gas event, level II
    expect(gas.locator(".level")).to_have_text("橙")

    page.page.click("#lang")

    expect(gas.locator(".level")).to_have_text("Orange")
    expect(page.page.locator("header nav")).to_contain_text("Alerts")
    page.assert_clean()


def test_school_page_shows_rooms_devices_values_with_units_and_the_last_error(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/#/school/s-1")

    co2 = page.page.locator("tr.device[data-device=co2-1]")
    expect(co2.locator("li[data-point=co2]")).to_contain_text("1200 ppm")
    lux = page.page.locator("tr.device[data-device=lux-1]")
    expect(lux).to_have_attribute("data-status", "offline")
    expect(lux.locator("td.error")).to_have_text("timeout after 2.0 s")
    expect(page.page.locator(".room h3").first).to_contain_text("Room 101")
    page.assert_clean()


def test_the_kpi_section_shows_each_kpi_of_the_city_beside_its_2025_target(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/")

    kpis = page.page.locator(".kpis table")
    expect(kpis.locator("tbody tr")).to_have_count(6)
    coverage = kpis.locator("tr[data-kpi=campus_iot_coverage]")
    expect(coverage).to_contain_text("校园物联网覆盖率")
    expect(coverage.locator("td")).to_have_text(["校园物联网覆盖率", "100 %", "100 %", "达标"])
    lighting = kpis.locator("tr[data-kpi=smart_lighting_coverage] td")  # no lighting controller
    expect(lighting).to_have_text(["智能灯光教室覆盖率", "0 %", "100 %", "未达标"])
    compliance = kpis.locator("tr[data-kpi=classroom_lighting_compliance] td")  # no desk sensor
    expect(compliance).to_have_text(["教室照明达标率（GB 7793-2010）", "–", "100 %", "暂无数据"])
    energy = kpis.locator("tr[data-kpi=energy_per_school] td")  # the plans give no number
    expect(energy.nth(3)).to_have_text("规划未定数值目标")

    page.page.click("#lang")

    expect(coverage.locator("td").first).to_have_text("Campus IoT coverage")
    expect(page.page.locator(".kpis thead th").nth(2)).to_have_text("2025 target")
    page.assert_clean()


def test_the_school_page_shows_the_schools_own_kpis(hub: ServedHub, page: WatchedPage) -> None:
    page.page.goto(f"{hub.url}/#/school/s-1")

    expect(page.page.locator(".kpis h2")).to_contain_text("1 所学校")
    coverage = page.page.locator(".kpis tr[data-kpi=campus_iot_coverage] td")
    expect(coverage).to_have_text(["校园物联网覆盖率", "100 %", "100 %", "达标"])
    page.assert_clean()


def test_the_header_names_the_user_and_their_role(hub: ServedHub, page: WatchedPage) -> None:
    page.page.goto(f"{hub.url}/")

    expect(page.page.locator("#user")).to_have_text("admin · 市级管理员")
    page.assert_clean()


@pytest.mark.signed_in_as("viewer")
def test_a_viewer_sees_alerts_without_acknowledge_or_resolve_buttons(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/#/alerts")

    gas = page.page.locator("tr.alert[data-device=gas-1]")
    expect(gas.locator(".actions")).to_have_text("只读")
    expect(page.page.locator("tr.alert button")).to_have_count(0)
    expect(page.page.locator("#user")).to_have_text("viewer · 只读用户")
    page.assert_clean()


@pytest.mark.signed_in_as("leaving")
def test_sign_out_revokes_the_session_and_returns_to_the_login_page(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/")
    expect(page.page.locator("#tree a.school")).to_have_count(2)

    page.page.click("#signout")

    page.page.wait_for_url(f"{hub.url}/login")
    answer = page.page.request.get(
        f"{hub.url}/api/v1/auth/me", headers=bearer(hub.tokens["leaving"])
    )
    assert answer.status == 401


SECTIONS_WIDER_THAN_THEIR_BOX = (
    "[...document.querySelectorAll('main section')]"
    ".filter(s => s.scrollWidth > s.clientWidth).map(s => s.className)"
)


@pytest.mark.parametrize("viewport", [(1366, 768), (820, 1180)], ids=["laptop", "tablet"])
def test_every_view_fits_the_screen_width_of_a_laptop_and_a_tablet(
    hub: ServedHub, page: WatchedPage, viewport: tuple[int, int]
) -> None:
    width, height = viewport
    page.page.set_viewport_size({"width": width, "height": height})
    for view, name in (("", "city"), ("#/alerts", "alerts"), ("#/school/s-1", "school")):
        page.page.goto(f"{hub.url}/{view}")
        page.page.wait_for_selector(f"main[data-page={name}] section")
        assert page.page.evaluate("document.documentElement.scrollWidth") <= width, name
        # nor does any section scroll sideways (a table wider than its box hides its buttons)
        assert page.page.evaluate(SECTIONS_WIDER_THAN_THEIR_BOX) == [], name
    page.screenshot(f"dashboard-school-{width}x{height}")
    page.assert_clean()


def test_an_operator_resolves_an_alert_with_a_comment_and_it_leaves_the_active_list(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/#/alerts")
    lab2 = page.page.locator("tr.alert[data-device=gas-2]")
    expect(lab2).to_have_attribute("data-state", "open")

    answer = change_alert_in_dialog(page.page, lab2, "resolve", "sensor cleaned, reading normal")

    assert answer.ok
    assert (answer.json()["state"], answer.json()["resolved_by"]) == ("resolved", "admin")
    expect(lab2).to_have_count(0)
    expect(page.page.locator("tr.alert[data-device=gas-1]")).to_have_count(1)
    page.assert_clean()


def as_local_input(page: WatchedPage, at: datetime) -> str:
    """``at`` as a datetime-local input value in the browser's own time zone."""
    return str(
        page.page.evaluate(
            "iso => { const d = new Date(iso);"
            " return new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); }",
            at.isoformat(),
        )
    )


def test_a_history_chart_draws_a_point_over_a_chosen_range(
    hub: ServedHub, page: WatchedPage
) -> None:
    """The hub holds one window of co2-1 at T0: a custom range around it shows it."""
    page.page.goto(f"{hub.url}/#/school/s-1")
    page.page.select_option("select.chart-device", "gw-1/co2-1")
    page.page.select_option("select.chart-range", "range_custom")
    page.page.fill("input.chart-from", as_local_input(page, T0 - timedelta(hours=1)))

    with page.page.expect_response(lambda r: "/series?" in r.url) as answer:
        page.page.fill("input.chart-to", as_local_input(page, T0 + timedelta(hours=1)))
        page.page.locator("input.chart-to").dispatch_event("change")

    query = parse_qs(urlsplit(answer.value.url).query)
    assert (query["point"], query["gateway_id"]) == (["co2"], ["gw-1"])
    chart = page.page.locator("#chart")
    expect(chart).to_have_attribute("data-points", "1")
    expect(chart.locator("canvas")).to_have_count(1)
    page.screenshot("dashboard-school-chart-custom-range")
    page.assert_clean()


def test_a_device_whose_profile_this_hub_does_not_know_is_marked_on_its_school_page(
    hub: ServedHub, page: WatchedPage
) -> None:
    page.page.goto(f"{hub.url}/#/school/s-1")

    box = page.page.locator("tr.device[data-device=box-1]")
    expect(box.locator(".unknown-profile")).to_have_text("本 hub 不认识该型号")
    page.assert_clean()


def test_without_the_event_stream_the_page_polls_and_still_follows_changes(
    hub: ServedHub, page: WatchedPage
) -> None:
    """(The refused stream logs a console error, so this page is not checked for errors.)"""
    page.page.route("**/api/v1/stream", lambda route: route.abort())  # a proxy that drops SSE
    page.page.goto(f"{hub.url}/?poll=1#/alerts")
    expect(page.page.locator("#live")).to_have_attribute("data-mode", "poll")
    expect(page.page.locator("#live")).to_have_text("轮询 1 秒")
    gas = page.page.locator("tr.alert[data-device=gas-1]")
    expect(gas).to_have_attribute("data-state", "open")

    answer = page.page.request.post(
        f"{hub.url}/api/v1/alerts/{gas.get_attribute('data-alert')}/ack",
        headers=bearer(hub.token),
        data={"comment": "seen from the control room"},
    )

    assert answer.ok, answer.text()
    expect(gas).to_have_attribute("data-state", "acknowledged", timeout=10_000)
    page.page.unroute("**/api/v1/stream")
