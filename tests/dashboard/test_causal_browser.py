"""The Causal page as a workflow in a real browser (issue 18's done-when): from a graph with no
arrows, add two arrows and reverse one with the editor under the drawing, check the edited graph
against a CSV, estimate an effect, restart the server and find the edited graph in History.

Same set-up as ``test_dashboard_browser.py``: ``whylm dashboard`` on a free port, Debian's chromium
driven by Playwright with the flags in ARCHITECTURE.md. No model is loaded (the graph is drawn by
hand), so the test takes about a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_dashboard_browser import Server, enter_text, free_port, goto, nav, open_page, shot, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

VARIABLES = "smoking\ntar deposits\nlung cancer"


def _write_csv(path: Path, n: int = 400) -> tuple[float, float]:
    """smoking -> tar deposits -> lung cancer; returns the two least-squares slopes."""
    import numpy as np

    rng = np.random.default_rng(0)
    smoking = rng.normal(size=n)
    tar = 1.5 * smoking + rng.normal(size=n)
    cancer = 0.8 * tar + rng.normal(size=n)
    with open(path, "w") as f:
        f.write("smoking,tar deposits,lung cancer\n")
        for row in zip(smoking, tar, cancer):
            f.write(",".join(f"{x:.5f}" for x in row) + "\n")
    return float(np.polyfit(smoking, tar, 1)[0]), float(np.polyfit(tar, cancer, 1)[0])


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    for attempt in range(4):  # a click during a script rerun can land before the list opens
        wait_idle(page)
        page.get_by_role("combobox", name=label, exact=True).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except Exception:
            if attempt == 3:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)


def _edit(page, action: str, cause: str, effect: str) -> None:
    _pick(page, "Edit", action)
    _pick(page, "From (cause)", cause)
    _pick(page, "To (effect)", effect)
    page.get_by_role("button", name="Apply", exact=True).click()
    wait_idle(page)


def _arrows(page) -> set[str]:
    """The arrows drawn in the graph figure, as ``"a → b"`` from their hover texts."""
    texts = page.evaluate(
        "() => { const p = document.querySelector('.js-plotly-plot');"
        " return (p && p.layout && p.layout.annotations || []).filter(a => a.showarrow)"
        ".map(a => a.hovertext || ''); }"
    )
    return {t.split(":")[0] for t in texts}


def _expect_arrows(page, expected: set[str], timeout_ms: int = 20_000) -> None:
    """Wait for the figure to show exactly ``expected`` (plotly redraws after the script run)."""
    waited = 0
    while _arrows(page) != expected and waited < timeout_ms:
        page.wait_for_timeout(250)
        waited += 250
    assert _arrows(page) == expected, (_arrows(page), page.locator("[data-testid='stMain']").inner_text()[-3000:])


def test_causal_workflow_in_browser(browser, tmp_path):
    data_dir = tmp_path / "data"
    server = Server(free_port(), data_dir, tmp_path / "server.log")
    csv = tmp_path / "smoking.csv"
    slope_tar, slope_cancer = _write_csv(csv)
    dialogs: list[str] = []
    server.start()
    try:
        ctx, page = open_page(browser, dialogs)
        goto(page, server.url + "/")
        nav(page, "Causal")
        enter_text(page, "Variables, one per line", VARIABLES, exact=False)
        page.get_by_role("button", name="Start with no arrows (draw it yourself)").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        wait_idle(page)
        _expect_arrows(page, set())

        _edit(page, "add arrow", "smoking", "tar deposits")
        _edit(page, "add arrow", "lung cancer", "tar deposits")
        _expect_arrows(page, {"smoking → tar deposits", "lung cancer → tar deposits"})
        _edit(page, "reverse arrow", "lung cancer", "tar deposits")
        _expect_arrows(page, {"smoking → tar deposits", "tar deposits → lung cancer"})
        # a cycle is refused and named
        _edit(page, "add arrow", "lung cancer", "smoking")
        alert = page.locator("[data-testid='stAlert']").filter(has_text="cycle").inner_text()
        alert = alert.replace("→", "->")  # Streamlit's Markdown draws "->" as an arrow
        assert "lung cancer -> smoking -> tar deposits -> lung cancer" in alert, alert
        _expect_arrows(page, {"smoking → tar deposits", "tar deposits → lung cancer"})

        # check the edited graph, then estimate the effect of smoking on lung cancer
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(csv))
        wait_idle(page)
        page.get_by_role("button", name="Check graph").click()
        page.get_by_text("violation rate").first.wait_for(timeout=120_000)
        wait_idle(page)
        body = page.locator("[data-testid='stMain']").inner_text()
        assert body.count("not rejected") == 1 and "REJECTED" not in body, body
        _pick(page, "Treatment", "smoking")
        _pick(page, "Outcome", "lung cancer")
        page.get_by_role("button", name="Estimate effect").click()
        page.get_by_text("effect of smoking on lung cancer").first.wait_for(timeout=180_000)
        wait_idle(page)
        metric = page.locator("[data-testid='stMetric']").filter(has_text="effect of smoking on lung cancer")
        value = float(metric.locator("[data-testid='stMetricValue']").inner_text())
        assert value == pytest.approx(slope_tar * slope_cancer, rel=0.05)
        body = page.locator("[data-testid='stMain']").inner_text()
        assert body.count("Sensitivity: an unobserved confounder would have to explain") == 1, body
        assert page.locator("[data-testid='stException']").count() == 0
        shot(page, "causal-edited")

        # restart the server: History holds the edited graph and reopens it
        ctx.close()
        server.stop()
        server.start()
        ctx, page = open_page(browser, dialogs)
        goto(page, server.url + "/")
        nav(page, "History")
        page.get_by_role("button", name="Reopen in its page").wait_for(timeout=30_000)
        wait_idle(page)
        body = page.locator("[data-testid='stMain']").inner_text()
        assert "smoking -> tar deposits" in body and "tar deposits -> lung cancer" in body, body
        assert "your edits: add smoking -> tar deposits; add lung cancer -> tar deposits; " \
               "reverse lung cancer -> tar deposits" in body, body
        page.get_by_role("button", name="Reopen in its page").click()
        page.get_by_role("heading", name="Causal", exact=True).wait_for(timeout=60_000)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        wait_idle(page)
        _expect_arrows(page, {"smoking → tar deposits", "tar deposits → lung cancer"})
        assert page.get_by_text("effect of smoking on lung cancer").count() >= 1
        ctx.close()
    finally:
        server.stop()
    assert dialogs == []
