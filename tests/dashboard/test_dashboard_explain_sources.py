"""Explain page: source granularity, the estimate before the run, sentence results (escaped)."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from test_dashboard import errors, htmls, no_traceback, page, use_local_model  # noqa: E402,F401

PROMPT = "Sky is <b>blue</b>. Grass is green. The sun is hot."


def test_sentence_sources_show_the_estimate_and_ranked_sentences(data_dir, models):
    at = page("explain_page").run()
    use_local_model(at, "ex", models)
    at.text_area(key="ex_prompt").set_value(PROMPT)
    at.text_input(key="ex_target").set_value(" blue")
    at.selectbox(key="ex_sources").set_value("sentences").run()
    at.button(key="ex_estimate").click().run()
    no_traceback(at)
    assert any("Estimate: sentence-level ablation" in i.value and "(3 sources)" in i.value for i in at.info)
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    assert any("Estimate: sentence-level ablation" in i.value for i in at.info)  # stated before running
    joined = "".join(htmls(at))
    assert "whylm-ranking" in joined and "Grass is green." in joined
    assert "<b>blue" not in joined and "&lt;b&gt;blue" in joined


def test_over_budget_run_is_refused_with_the_cheaper_choice(data_dir, models, monkeypatch):
    at = page("explain_page").run()
    use_local_model(at, "ex", models)
    at.text_area(key="ex_prompt").set_value("the sky " * 40)
    at.text_input(key="ex_target").set_value(" blue")
    at.number_input(key="ex_max_seconds").set_value(1).run()
    from explain import budget
    from explain.attribution import cost as cost_module

    # a machine where a position costs 1 s: the token-level run is over a 1 s budget
    monkeypatch.setattr(cost_module, "speed", lambda lm: budget.Speed(1.0, 0.0, 0.0))
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert errors(at) and 'sources="sentences"' in errors(at)[0] and "would take about" in errors(at)[0]
