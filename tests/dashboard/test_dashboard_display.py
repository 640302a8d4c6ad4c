"""What a user sees on the dashboard (issue 20): every page in ``whylm --help``, the embedded model
not reported missing, History's saved summaries with their line breaks and one spelling per model."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.store import AuditStore  # noqa: E402

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
CHECK_SUMMARY = "REJECTED by the Fisher-z test: 2/3 violated\nviolation rate 66.7%\n  violated: a _||_ c"


def test_whylm_help_names_all_five_dashboard_pages(capsys):
    from dashboard import cli
    from dashboard.nav import PAGES

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the line
    line = text.split("open the Streamlit dashboard (", 1)[1].split(")", 1)[0]
    assert [title for _, title, _, _ in PAGES if title not in line] == [], line


def test_the_embedded_model_in_the_cache_is_not_reported_missing(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "models" / "SmolLM2-135M-Instruct").mkdir(parents=True)
    (cache / "models" / "SmolLM2-135M-Instruct" / "config.json").write_text("{}")
    monkeypatch.setenv("WHYLM_CACHE_DIR", str(cache))
    monkeypatch.delenv("WHYLM_MODEL_DIRS", raising=False)
    monkeypatch.delenv("WHYLM_MODEL", raising=False)
    monkeypatch.setenv("WHYLM_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_string("from dashboard.models import model_picker\nmodel_picker('x')\n",
                             default_timeout=60).run()
    assert not at.exception
    (caption,) = [c.value for c in at.caption]
    assert not caption.startswith("No model folders under"), caption
    assert "besides the embedded model" in caption and "is the 'Embedded SmolLM2-135M-Instruct' choice" in caption


def test_history_shows_saved_summaries_with_line_breaks_and_one_name_for_the_embedded_model(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("WHYLM_DATA_DIR", str(data))
    store = AuditStore(data / "audits.sqlite")
    store.save("causal", {"variables": ["a", "b", "c"]}, {"check": {"summary": CHECK_SUMMARY}},
               model="embedded SmolLM2-135M-Instruct", method="check (fisher_z)")
    store.save("explain", {"prompt": "hi"}, {}, model="Embedded SmolLM2-135M-Instruct", method="ablation")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/history_page.py").run()
    assert not at.exception
    assert set(at.dataframe[0].value["model"]) == {"Embedded SmolLM2-135M-Instruct"}
    box = at.selectbox(key="hi_run")
    box.set_value([o for o in box.options if "· causal ·" in o][0]).run()
    body = "".join(h.proto.body for h in at.get("html"))
    assert "Saved check summary" in body and "↵" not in body
    assert html.escape(CHECK_SUMMARY) in body  # the lines as saved (escaped), breaks kept, nothing added
