"""Screenshots of a running hub's dashboard (e.g. during `make demo`) for docs/screenshots/.

    .venv/bin/python tools/dashboard_screenshots.py --token cit_... --school d1-s01

takes the city view, the school's page scrolled to its active alerts, its history chart, and the
city view on a tablet in English, with Debian's Chromium (the token is printed by `campus demo`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def wait_ready(page: Page, selector: str) -> None:
    page.wait_for_selector(selector, timeout=30_000)
    page.wait_for_timeout(1500)  # the chart draws after the page is laid out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="a bearer token (campus demo prints one)")
    parser.add_argument("--school", required=True, help="a school with an active alert")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--prefix", default="demo")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    def shot(page: Page, name: str, full_page: bool = False) -> None:
        page.screenshot(path=args.out / f"{args.prefix}-{name}.png", full_page=full_page)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        cookie = {"name": "campus_token", "value": args.token, "url": args.url}

        laptop = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        laptop.add_cookies([cookie])
        page = laptop.new_page()
        page.goto(f"{args.url}/")
        wait_ready(page, "main[data-page=city] .kpis table")
        shot(page, "city", full_page=True)

        page.goto(f"{args.url}/#/school/{args.school}")
        wait_ready(page, "main[data-page=school] tr.alert")
        shot(page, "school-alert")
        history = page.locator("section.history")
        history.scroll_into_view_if_needed()
        wait_ready(page, "#chart canvas")
        history.screenshot(path=args.out / f"{args.prefix}-school-chart.png")

        tablet = browser.new_context(viewport={"width": 820, "height": 1180}, locale="en")
        tablet.add_cookies([cookie])
        page = tablet.new_page()
        page.goto(f"{args.url}/")
        page.evaluate("localStorage.setItem('campus.lang', 'en')")
        page.reload()
        wait_ready(page, "main[data-page=city] #tree")
        shot(page, "city-tablet-en")
        browser.close()


if __name__ == "__main__":
    main()
