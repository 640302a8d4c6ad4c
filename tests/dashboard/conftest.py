"""Fixtures the dashboard tests share: a fresh audit store, the tiny model as the started model
folder, and a headless Debian chromium (with the folders :func:`test_dashboard_browser.shot` saves to).

Plain helpers (``page``, ``errors``, ``Server``, ``shot`` ...) stay in ``test_dashboard.py`` and
``test_dashboard_browser.py`` and are imported from there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh audit store folder per test (not created: the dashboard makes it)."""
    monkeypatch.setenv("WHYLM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def models(tiny_dir, monkeypatch) -> str:
    """The dashboard started with ``--model-dir TINY``: the tiny model's resolved folder."""
    monkeypatch.setenv("WHYLM_MODEL_DIRS", tiny_dir)
    monkeypatch.delenv("WHYLM_MODEL", raising=False)
    return str(Path(tiny_dir).resolve())


@pytest.fixture(scope="module")
def screenshot_folders(tmp_path_factory) -> Iterator[list[Path]]:
    """Where ``shot()`` saves during one test module (see ``test_dashboard_browser.screenshot_dirs``)."""
    from test_dashboard_browser import SHOT_DIRS, screenshot_dirs

    SHOT_DIRS[:] = screenshot_dirs(tmp_path_factory.mktemp("screenshots"), dict(os.environ))
    yield SHOT_DIRS
    SHOT_DIRS.clear()


@pytest.fixture
def browser(screenshot_folders) -> Iterator[object]:
    """Debian's chromium, headless, through Playwright (skips when either is missing)."""
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()
