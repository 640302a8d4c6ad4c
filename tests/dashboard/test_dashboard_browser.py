"""The dashboard in a real browser: ``whylm dashboard`` on a free port, driven by Playwright and
Debian's chromium (never ``playwright install``).

It runs an explanation on the embedded model with markup in the prompt, checks that the heatmap and
the highlighted tokens render, that the markup shows as text and no dialog fires, restarts the
server and finds the run in History. Screenshots of every page go to a temporary folder, to
``$WHYLM_ARTIFACTS/screenshots`` when that is set, and to ``docs/screenshots/`` only with
``WHYLM_UPDATE_SCREENSHOTS=1`` (a plain test run leaves the checkout clean).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
XSS = "<img src=x onerror=alert(1)>"
PROMPT = f"The capital of France is Paris. {XSS} What is the capital of France?"
SHOT_DIRS: list[Path] = []  # filled by the screenshot_folders fixture (conftest.py) that browser uses


def screenshot_dirs(tmp: Path, environ: dict[str, str]) -> list[Path]:
    """Where :func:`shot` saves: ``tmp``; ``$WHYLM_ARTIFACTS/screenshots`` when set; the docs only
    when ``WHYLM_UPDATE_SCREENSHOTS=1``."""
    dirs = [tmp]
    if environ.get("WHYLM_ARTIFACTS"):
        dirs.append(Path(environ["WHYLM_ARTIFACTS"]) / "screenshots")
    if environ.get("WHYLM_UPDATE_SCREENSHOTS") == "1":
        dirs.append(ROOT / "docs" / "screenshots")
    return dirs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``whylm dashboard`` in a subprocess (``python -m dashboard.cli``)."""

    def __init__(self, port: int, data_dir: Path, log: Path) -> None:
        self.port, self.data_dir, self.log = port, data_dir, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "dashboard", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited early: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"dashboard did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


def shot(page, name: str) -> None:
    """Save a screenshot of the whole page to every screenshot folder.

    Streamlit scrolls inside its main container, so the viewport is grown to the content's height.
    """
    size = page.viewport_size or {"width": 1300, "height": 900}
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, 600), 5000))})
    page.wait_for_timeout(800)
    for folder in SHOT_DIRS:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size(size)


def wait_idle(page, timeout: float = 180_000) -> None:
    """Wait until Streamlit has finished the current script run: the app's ``data-test-script-state``
    (what Streamlit's own browser tests wait on) reads notRunning, or, on a Streamlit without it, the
    status widget no longer says Running."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const state = app && app.getAttribute('data-test-script-state');
            if (state) return state === 'notRunning' || state === 'compilationError';
            const w = document.querySelector('[data-testid="stStatusWidget"]');
            return !w || !w.innerText.match(/Running|Stop/);
        }""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)


def enter_text(page, label: str, text: str, exact: bool = True, tries: int = 3) -> None:
    """Type ``text`` into the textbox labelled ``label``, commit it (Enter in a text input,
    Ctrl+Enter in a text area) and wait for the rerun; retried when a rerun still in flight from an
    earlier widget redrew the box and dropped the value (seen on a slow CI machine)."""
    box = page.get_by_role("textbox", name=label, exact=exact)
    for _ in range(tries):
        box.fill(text)
        is_area = box.evaluate("el => el.tagName") == "TEXTAREA"
        box.press("Control+Enter" if is_area else "Enter")
        wait_idle(page)
        if box.input_value() == text:
            return
    raise AssertionError(f"the {label!r} box did not keep its text after {tries} tries")


def open_page(browser, dialogs: list[str], width: int = 1300):
    """A fresh browser context and page (``width`` x 900) whose dialogs are dismissed and their
    messages collected in ``dialogs``. Returns: (context, page)."""
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return ctx, page


def goto(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-testid='stAppViewContainer']", timeout=60_000)
    page.get_by_role("heading", level=1).first.wait_for(timeout=60_000)
    wait_idle(page)
    assert page.get_by_text("Page not found").count() == 0


def nav(page, title: str) -> None:
    """Follow the sidebar link to a page and wait for it."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
    wait_idle(page)


def test_dashboard_in_browser(browser, tmp_path):
    data_dir = tmp_path / "data"
    server = Server(free_port(), data_dir, tmp_path / "server.log")
    dialogs: list[str] = []
    server.start()
    try:
        ctx, page = open_page(browser, dialogs)
        goto(page, server.url + "/")
        enter_text(page, "Prompt", PROMPT)
        enter_text(page, "Target (optional)", " The capital of France is Paris.")
        page.get_by_role("button", name="Explain", exact=True).click()
        page.wait_for_selector(".js-plotly-plot .heatmaplayer, .js-plotly-plot .hm", timeout=300_000)
        wait_idle(page)
        # the highlighted tokens render, with the markup as text
        highlights = page.locator(".whylm-highlight")
        assert highlights.count() >= 3
        texts = [highlights.nth(i).inner_text() for i in range(highlights.count())]
        assert any(XSS in t for t in texts), texts  # the markup is shown verbatim, as text
        assert page.locator("img[src='x']").count() == 0
        assert page.locator(".whylm-tok").count() > 10
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator(".js-plotly-plot").count() >= 1
        shot(page, "explain")

        # Signals page
        nav(page, "Signals")
        enter_text(page, "Prompt", "What is the capital of France, and its river?")
        enter_text(page, "Context (optional)",
                   "Paris is the capital and largest city of France. The Seine flows through Paris.")
        enter_text(page, "Response to check (optional)",
                   " The capital of France is Marseille. The Seine flows through it.")
        page.get_by_role("button", name="Check", exact=True).click()
        page.get_by_text("Answer-level scores").wait_for(timeout=400_000)
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("No context was given").count() == 0  # the answer was checked against it
        shot(page, "signals")

        # Causal page (embedded model proposes; a CSV checks the graph)
        nav(page, "Causal")
        page.get_by_role("button", name="Propose graph").click()
        page.wait_for_selector(".js-plotly-plot", timeout=300_000)
        wait_idle(page)
        csv = tmp_path / "smoking.csv"
        _write_smoking_csv(csv)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(csv))
        wait_idle(page)
        page.get_by_role("button", name="Check graph").click()
        page.get_by_text("violation rate").first.wait_for(timeout=120_000)
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0
        shot(page, "causal")

        # restart the server: the runs are still in History
        ctx.close()
        server.stop()
        server.start()
        ctx, page = open_page(browser, dialogs)
        # a fresh server knows its pages only after a first run: open / then follow the link
        goto(page, server.url + "/")
        nav(page, "History")
        page.get_by_text("run(s), newest first").wait_for(timeout=30_000)
        page.get_by_role("button", name="Reopen in its page").wait_for(timeout=30_000)
        wait_idle(page)
        body = page.locator("[data-testid='stMain']").inner_text()
        assert "4 run(s), newest first" in body, body  # explain, signals, propose, check
        assert "· causal ·" in body
        assert page.locator("img[src='x']").count() == 0
        shot(page, "history")
        # find the explanation by searching, and reopen it in the Explain page
        enter_text(page, "Search", "onerror")
        page.get_by_role("button", name="Reopen in its page").click()
        page.get_by_role("heading", name="Explain", exact=True).wait_for(timeout=60_000)
        page.wait_for_selector(".whylm-highlight", timeout=60_000)
        wait_idle(page)
        assert page.get_by_role("textbox", name="Prompt", exact=True).input_value() == PROMPT
        assert page.locator("img[src='x']").count() == 0
        ctx.close()
    finally:
        server.stop()
    assert dialogs == []


def _write_smoking_csv(path: Path, n: int = 400) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    smoking = rng.normal(size=n)
    tar = 1.5 * smoking + rng.normal(size=n)
    cancer = 0.8 * tar + rng.normal(size=n)
    with open(path, "w") as f:
        f.write("smoking,tar deposits,lung cancer\n")
        for row in zip(smoking, tar, cancer):
            f.write(",".join(f"{x:.5f}" for x in row) + "\n")
