"""The Signals page: verdict first with its thresholds, the registry drives the token views."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.pages.signals_page import verdict_html  # noqa: E402

SCRIPT = """
from explain import register_signal

@register_signal("shouting", doc="1 for upper-case tokens", label="shouting")
def shouting(ctx):
    return [float(t.strip().isupper()) for t in ctx.tokens]

from dashboard.pages import signals_page
signals_page.render()
"""


def test_custom_signal_is_a_view_and_verdict_comes_first(data_dir, tiny_dir, monkeypatch):
    from pathlib import Path

    from explain.signals import unregister_signal

    monkeypatch.setenv("WHYLM_MODEL_DIRS", tiny_dir)  # the dashboard started with --model-dir TINY
    monkeypatch.delenv("WHYLM_MODEL", raising=False)

    at = AppTest.from_string(SCRIPT, default_timeout=60).run()
    try:
        at.selectbox(key="sg_model_choice").set_value(str(Path(tiny_dir).resolve())).run()
        at.text_area(key="sg_prompt").set_value("What is <b>this</b>?")
        at.text_area(key="sg_response").set_value("IT IS <i>BLUE</i>.")
        at.run()
        at.button(key="sg_run").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        view = at.radio(key="sg_view")
        assert view.options[0] == "risk" and "shouting [shouting]" in view.options
        assert "model hesitation (entropy) [entropy]" in view.options
        bodies = [h.proto.body for h in at.get("html")]
        first = bodies.index(next(b for b in bodies if "whylm-verdict" in b))
        assert first < bodies.index(next(b for b in bodies if "whylm-highlight" in b))
        assert "No calibrated verdict" in bodies[first]  # the tiny model ships no calibration
        assert "<i>" not in "".join(bodies) and "<b>this" not in "".join(bodies)
        view.set_value("shouting").run()
        assert not at.exception
    finally:
        unregister_signal("shouting")


def test_verdict_html_shows_risk_and_thresholds_escaped():
    class Rep:
        risk, verdict, risk_note = 0.82, "likely hallucinated", "calibrated for <script>x</script>"

    page = verdict_html(Rep())
    assert "likely hallucinated" in page and "risk 0.82" in page
    assert "supported below 0.3" in page and "likely hallucinated from 0.7" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
