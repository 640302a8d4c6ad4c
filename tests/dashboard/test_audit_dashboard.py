"""The dashboard's Audits page (Streamlit AppTest): open, filter, histogram, a record's report, CSV export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.pages.audits_page import csv_safe, find_audits, inside  # noqa: E402
from explain.audit.api import audit  # noqa: E402

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def audited(tmp_path, monkeypatch, tiny_lm) -> Path:
    """A data folder holding one real audit of three records (one fails, one carries markup)."""
    data = tmp_path / "data"
    monkeypatch.setenv("WHYLM_DATA_DIR", str(data))
    recs = [{"id": "paris", "prompt": f"The capital of France is {XSS}", "response": " Paris"},
            {"id": "fox", "prompt": "The quick brown fox", "response": " jumps."},
            {"id": "broken", "prompt": 3}]
    audit(recs, tiny_lm, out=data / "runs" / "first.parquet", progress=False)
    return data


def test_audits_page_filters_shows_a_record_and_exports(audited):
    at = AppTest.from_string("from dashboard.pages import audits_page\naudits_page.render()\n",
                             default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="au_audit").value == "runs/first.parquet"
    assert sorted(at.dataframe[0].value["id"]) == ["broken", "fox", "paris"]
    assert at.get("plotly_chart")
    at.checkbox(key="au_errors").check().run()
    assert at.dataframe[0].value["id"].tolist() == ["broken"]
    assert "record's 'prompt' is a int" in at.error[0].value
    at.checkbox(key="au_errors").uncheck().run()
    at.selectbox(key="au_score").set_value("score.mean_neg_logprob").run()
    at.number_input(key="au_score_min").set_value(-1.0).run()
    assert len(at.dataframe[0].value) == 2  # the failed row has no score
    at.selectbox(key="au_record").set_value("paris").run()
    assert not at.exception
    bodies = "".join(h.proto.body for h in at.get("html"))
    assert "whylm-signals" in bodies and "&lt;img" in bodies and XSS not in bodies
    (button,) = at.get("download_button")
    assert "2 rows" in button.proto.label


def test_audits_page_shows_progress_of_an_unfinished_audit(audited):
    man_path = audited / "runs" / "first.parquet" / "_manifest.json"
    man = json.loads(man_path.read_text())
    man_path.write_text(json.dumps({**man, "total": 6}))  # as if 3 of 6 records were committed so far
    at = AppTest.from_string("from dashboard.pages import audits_page\naudits_page.render()\n",
                             default_timeout=60).run()
    assert not at.exception
    assert "3 of 6 records committed" in at.get("progress")[0].proto.text


def test_only_audits_under_the_data_folder_open(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "_manifest.json").write_text("{}")
    assert find_audits(tmp_path) == [Path("a/b")]
    assert inside(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()
    for bad in ("../x", "/etc", "a/../../x"):
        with pytest.raises(ValueError, match="outside"):
            inside(tmp_path, bad)
    assert csv_safe(__import__("pandas").DataFrame({"p": ["@SUM(A1)", "+1", "fine"]})).splitlines()[1:] == [
        "'@SUM(A1)", "'+1", "fine"]



def render_audits() -> AppTest:
    return AppTest.from_string("from dashboard.pages import audits_page\naudits_page.render()\n",
                               default_timeout=60).run()


def test_a_linked_part_shows_one_line_and_never_its_outside_rows(audited, tmp_path):
    import pandas as pd

    secret = tmp_path / "secret.parquet"
    pd.DataFrame({"id": ["SECRET"], "prompt": ["outside"], "error": [None]}).to_parquet(secret)
    (audited / "runs" / "first.parquet" / "part-999999-x.parquet").symlink_to(secret)
    at = render_audits()
    assert not at.exception
    assert not at.dataframe or "SECRET" not in at.dataframe[0].value["id"].tolist()
    (err,) = [e.value for e in at.error]
    assert "part-999999-x.parquet is not a regular file inside the folder" in err and "internal" not in err


def test_a_linked_audit_folder_outside_the_data_folder_is_one_line_not_an_internal_error(
        tmp_path, monkeypatch, tiny_lm):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("WHYLM_DATA_DIR", str(data))
    audit([{"id": "o", "prompt": "The quick brown fox", "response": " jumps."}], tiny_lm,
          out=tmp_path / "elsewhere", progress=False)
    (data / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    at = render_audits()
    assert not at.exception and at.selectbox(key="au_audit").value == "linked"
    (err,) = [e.value for e in at.error]
    assert "only audits under the data folder can be opened: 'linked' is outside it" in err
    assert "internal" not in err and not at.dataframe
