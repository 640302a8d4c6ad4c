"""Explain page: each method's option widgets come from the registry, with its registered defaults,
and the values set reach the run, its estimate and History."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")
from test_dashboard import errors, no_traceback, page, use_local_model  # noqa: E402

from dashboard.store import AuditStore  # noqa: E402
from explain.attribution import METHODS, register, unregister  # noqa: E402


def test_option_widgets_show_the_registered_defaults_and_reach_the_run(data_dir, models):
    at = page("explain_page").run()
    use_local_model(at, "ex", models)
    at.text_area(key="ex_prompt").set_value("The capital of France is")
    at.text_input(key="ex_target").set_value(" Paris")
    at.selectbox(key="ex_method").set_value("shapley").run()
    no_traceback(at)
    assert at.number_input(key="ex_opt_shapley_n_samples").value == METHODS["shapley"].defaults["n_samples"] == 5
    assert at.number_input(key="ex_opt_shapley_seed").value == 0
    assert not [w for w in at.number_input if w.key.startswith("ex_opt_ablation_")]  # ablation shows none
    at.number_input(key="ex_opt_shapley_n_samples").set_value(0).run()
    at.button(key="ex_estimate").click().run()
    # the registry's check, in one line (markdown-escaped on the page)
    assert errors(at) and errors(at)[0].replace("\\", "") == "n_samples must be an integer >= 1, got 0"
    at.number_input(key="ex_opt_shapley_n_samples").set_value(2).run()
    at.button(key="ex_run").click().run()
    no_traceback(at)
    assert not errors(at), errors(at)
    (run,) = AuditStore(data_dir / "audits.sqlite").list()
    assert run.result["results"][0]["info"]["n_samples"] == 2
    assert run.inputs["options"] == {"shapley": {"n_samples": 2, "seed": 0}}


def test_a_registered_method_gets_its_widgets_without_touching_the_page(data_dir):
    def toy(lm, inp, *, baseline, progress, width=3, style="plain", hidden=7):
        return np.zeros((inp.m, inp.n)), {}

    register("toy_page", family="perturbation", cost="1 pass", note="a toy", shown=("width", "style"),
             choices={"style": ("plain", "fancy")})(toy)
    try:
        at = page("explain_page").run()
        at.selectbox(key="ex_method").set_value("toy_page").run()
        no_traceback(at)
        assert at.number_input(key="ex_opt_toy_page_width").value == 3
        style = at.selectbox(key="ex_opt_toy_page_style")
        assert style.options == ["plain", "fancy"] and style.value == "plain"
        assert not [w for w in at.number_input if w.key == "ex_opt_toy_page_hidden"]
    finally:
        unregister("toy_page")
