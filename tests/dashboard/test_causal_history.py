"""History reopens a causal check and an effect estimate completely: verdict, summary and the
graph's colours come back from the stored dict, with no data uploaded again."""

from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.store import AuditStore  # noqa: E402
from test_causal_page_edit import _page, check_csv, open_graph  # noqa: E402

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 60


def _csv() -> bytes:
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    b = 2 * a + rng.normal(size=400)
    c = -b + rng.normal(size=400)
    buf = io.StringIO()
    buf.write("a,b,c\n")
    for row in zip(a, b, c):
        buf.write(",".join(f"{x:.5f}" for x in row) + "\n")
    return buf.getvalue().encode()


def _arrows(at: AppTest) -> dict[str, str]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {a["hovertext"].split(":")[0]: a["arrowcolor"] for a in spec["layout"]["annotations"] if a.get("showarrow")}


def test_history_reopens_a_causal_check_with_colours_and_summary(data_dir):
    from causal.graph import ProposedGraph

    # the data are a chain a -> b -> c: the edge a -> c is not supported given b
    pg = ProposedGraph(graph=nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")]), strategy="pairwise", llm="replay")
    at = _page()
    open_graph(at, {"variables_text": "a\nb\nc", "variables": ["a", "b", "c"], "backend_choice": "OpenAI",
                    "strategy": "pairwise"}, pg)
    check_csv(at, _csv())
    assert not at.exception, [e.value for e in at.exception]
    first_verdict = at.success[0].value
    assert first_verdict.startswith("Graph not rejected, but not tested either")
    first_summary = at.code[-1].value
    first_arrows = _arrows(at)
    assert first_arrows == {"a → b": "seagreen", "b → c": "seagreen", "a → c": "crimson"}
    assert "remove edge a -> c" in first_summary
    (run,) = AuditStore(data_dir / "audits.sqlite").list(kind="causal")
    assert run.result["check"]["summary"].split("\n", 1)[1] == first_summary  # the verdict is the banner

    # a fresh session: History -> Reopen, no CSV uploaded
    again = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    again.switch_page("pages/history_page.py").run()
    box = again.selectbox(key="hi_run")
    box.set_value([o for o in box.options if o.startswith(f"{run.id} ")][0]).run()
    again.button(key="hi_reopen").click().run()
    assert not again.exception, [e.value for e in again.exception]
    assert again.title[0].value == "Causal"
    assert any(f"Reopened run {run.id}" in i.value for i in again.info)
    assert again.success[0].value == first_verdict
    assert any(c.value == first_summary for c in again.code)
    assert _arrows(again) == first_arrows
    assert again.metric[0].label == "violation rate"


def test_reopen_shows_a_stored_effect_and_tolerates_an_old_check_dict(data_dir):
    from causal.effect import EffectEstimate

    eff = EffectEstimate(2.0, "a", "b", "backdoor.linear_regression", "", [],
                         {"placebo": {"new_effect": 0.01, "p_value": float("nan"), "passed": True,
                                      "meaning": "the effect should vanish"}})
    graph = {"nodes": ["a", "b"], "edges": [{"source": "a", "target": "b"}]}
    store = AuditStore(data_dir / "audits.sqlite")
    old_check = {"falsified": False, "violation_rate": 0.0, "n_violations": 0, "n_tests": 0, "alpha": 0.05}
    rid = store.save("causal", {"variables": ["a", "b"]},
                     {"graph": graph, "effect": json.loads(eff.to_json()), "check": old_check},
                     model="replay", method="effect")
    from dashboard.common import REOPEN_KEY

    at = AppTest.from_string("from dashboard.pages import causal_page\ncausal_page.render()\n",
                             default_timeout=TIMEOUT)
    at.session_state[REOPEN_KEY] = {"kind": "causal", "id": rid}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.label == "effect of a on b" and m.value == "2" for m in at.metric)
    assert any(c.value == eff.summary() for c in at.code)
    assert at.success[0].value == "Graph not rejected by the data."  # an old dict: no verdict sentence


def test_history_details_show_the_saved_check_summary(data_dir):
    from causal.check import GraphCheck

    chk = GraphCheck(falsified=True, dowhy_falsified=None, falsifiable=None, violation_rate=1.0, n_tests=1,
                     n_violations=1, alpha=0.05, excess_p_value=0.05 ** 1, permutation_p_value=None,
                     strong_violations=1, nodes=["<i>a</i>", "b"], edges=[],
                     violations=[{"statement": "<i>a</i> _||_ b", "node": "<i>a</i>", "independent_of": "b",
                                  "given": [], "p_value": 1e-9, "statements": ["<i>a</i> _||_ b"]}])
    store = AuditStore(data_dir / "audits.sqlite")
    store.save("causal", {"variables": ["<i>a</i>", "b"]},
               {"graph": {"nodes": ["<i>a</i>", "b"], "edges": []}, "check": json.loads(chk.to_json())},
               model="replay", method="check (fisher_z)")
    at = AppTest.from_string("from dashboard.pages import history_page\nhistory_page.render()\n",
                             default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    body = "".join(h.proto.body for h in at.get("html"))
    assert "Saved check summary" in body and chk.verdict.split(":")[0] in body
    assert "violated: &lt;i&gt;a&lt;/i&gt; _||_ b" in body and "<i>a</i>" not in body
