"""Explain page: a context box apart from the question, top_k runs with exact and estimated sources told apart."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from test_dashboard import errors, htmls, no_traceback, page, use_local_model  # noqa: E402,F401

CONTEXT = "Sky is <b>blue</b>. Grass is green. The sun is hot. Snow is white."


def test_context_box_and_top_k_mark_estimates(data_dir, models):
    at = page("explain_page").run()
    use_local_model(at, "ex", models)
    at.text_area(key="ex_context").set_value(CONTEXT)
    at.text_area(key="ex_prompt").set_value("What colour is the sky?")
    at.text_input(key="ex_target").set_value(" blue")
    at.selectbox(key="ex_sources").set_value("sentences")
    at.selectbox(key="ex_method").set_value("ablation")
    at.selectbox(key="ex_screen").set_value("attention")
    at.selectbox(key="ex_top_k").set_value("3").run()
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    assert any("attention screen + exact top 3" in i.value for i in at.info)  # the estimate, before the run
    captions = " ".join(c.value for c in at.caption)
    assert "Exact leave-one-out for 3 of 4 sentences" in captions and "question itself" in captions
    joined = "".join(htmls(at))
    assert "≈" in joined and "question (kept apart)" in joined
    assert "<b>blue" not in joined and "&lt;b&gt;blue" in joined


def test_auto_exact_part_is_top_k_only_for_long_source_runs() -> None:
    from dashboard.pages.explain_page import AUTO_TOP_K, exact_top_k

    assert exact_top_k("auto", "ablation", "sentences", 10_000) == AUTO_TOP_K
    assert exact_top_k("auto", "ablation", "sentences", 100) is None
    assert exact_top_k("auto", "shapley", "sentences", 10_000) is None
    assert exact_top_k("3", "ablation", "tokens", 10) == 3 and exact_top_k("all", "ablation", "words", 10**6) is None
