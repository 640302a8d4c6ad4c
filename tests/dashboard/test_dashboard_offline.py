"""The dashboard works offline and leaks nothing: a real browser opens every page and every request
it makes goes to the dashboard itself (no font CDN, no favicon from fonts.gstatic.com, no telemetry)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from test_dashboard_browser import Server, free_port, goto, nav

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGES = ("Signals", "Causal", "Audits", "History")


def outside(url: str, port: int) -> bool:
    """True for a request that leaves the machine (anything but this dashboard, data: and blob:)."""
    u = urlparse(url)
    if u.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
        return False
    return not (u.hostname in ("127.0.0.1", "localhost") and u.port == port)


def test_every_page_requests_nothing_outside_the_dashboard(browser, tmp_path):  # noqa: F811
    server = Server(free_port(), tmp_path / "data", tmp_path / "server.log")
    server.start()
    requests: list[str] = []
    try:
        ctx = browser.new_context(viewport={"width": 1300, "height": 900})
        page = ctx.new_page()
        page.on("request", lambda r: requests.append(r.url))
        goto(page, server.url + "/")
        for title in PAGES:
            nav(page, title)
        page.wait_for_timeout(1500)  # a favicon is set after the run: give it time to be fetched
        icon = page.evaluate("() => (document.querySelector(\"link[rel='shortcut icon']\") || {}).href || ''")
        ctx.close()
    finally:
        server.stop()
    assert len(requests) > 5, requests  # the recorder saw the page load
    leaks = sorted({u for u in requests if outside(u, server.port)})
    assert not leaks, leaks
    assert not outside(icon, server.port), icon
