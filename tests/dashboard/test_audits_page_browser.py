"""The Audits page in a real browser: a record's sentences, evidence and score table fit their column,
markup stays text, and "Open in Signals" lands on the Signals page with the record."""

from __future__ import annotations

import pytest

from test_audit_evidence import RECORDS  # noqa: F401  (the same records as the AppTest checks)
from test_dashboard_browser import Server, free_port, goto, nav, open_page, shot, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OVERFLOW = """(sel) => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]').getBoundingClientRect();
  return [...document.querySelectorAll(sel)].map(e => {
    const r = e.getBoundingClientRect();
    return {sel, right: r.right, limit: main.right, scroll: e.scrollWidth, client: e.clientWidth};
  });
}"""


def test_audit_record_fits_its_column_and_opens_in_signals(browser, tmp_path, tiny_lm):  # noqa: F811
    from explain.audit.api import audit

    data_dir = tmp_path / "data"
    audit(RECORDS, tiny_lm, out=data_dir / "runs" / "ev.parquet", progress=False)
    server = Server(free_port(), data_dir, tmp_path / "server.log")
    dialogs: list[str] = []
    server.start()
    try:
        ctx, page = open_page(browser, dialogs, width=1000)
        goto(page, server.url + "/")
        nav(page, "Audits")
        page.wait_for_selector(".whylm-sentences", timeout=60_000)
        page.wait_for_selector(".whylm-context", timeout=60_000)
        wait_idle(page)
        html = [b for sel in (".whylm-sentences", ".whylm-context", ".whylm-sentence-table", ".whylm-signals",
                              ".whylm-score-table") for b in page.evaluate(OVERFLOW, sel)]
        assert len(html) == 5, html
        for b in html + page.evaluate(OVERFLOW, "[data-testid='stDataFrame']"):
            assert b["right"] <= b["limit"] + 1, b  # nothing reaches past the page's column
        for b in html:  # the record's sentences, evidence, tables and tokens wrap instead of scrolling
            assert b["scroll"] <= b["client"] + 1, b
        assert page.locator("img[src='x']").count() == 0
        shot(page, "audits-record")
        page.get_by_role("button", name="Open in Signals").click()
        page.get_by_role("heading", name="Signals", exact=True).wait_for(timeout=60_000)
        page.wait_for_selector(".whylm-sentences", timeout=60_000)
        wait_idle(page)
        assert page.get_by_role("textbox", name="Prompt", exact=True).input_value() == RECORDS[0]["prompt"]
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("img[src='x']").count() == 0
        shot(page, "signals-from-audit")
        ctx.close()
    finally:
        server.stop()
    assert dialogs == []
