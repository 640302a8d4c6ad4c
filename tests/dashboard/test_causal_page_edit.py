"""The Causal page as a workflow (issue 18): start from no arrows, edit the graph (add, remove,
reverse, undecided pair -> arrow, cycle refused and named), check and estimate the edited graph,
one verdict message, readable tables, and History keeps and reopens the edited graph."""

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

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 60
VARS = "smoking\ntar\ncancer"


def _csv(n: int = 500) -> bytes:
    """smoking -> tar -> cancer."""
    rng = np.random.default_rng(0)
    s = rng.normal(size=n)
    t = 0.9 * s + rng.normal(size=n)
    c = 0.7 * t + rng.normal(size=n)
    buf = io.StringIO()
    buf.write("smoking,tar,cancer\n")
    for row in zip(s, t, c):
        buf.write(",".join(f"{x:.5f}" for x in row) + "\n")
    return buf.getvalue().encode()


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/causal_page.py").run()
    return at


def open_graph(at: AppTest, inputs: dict, pg) -> None:
    """Put the proposed graph ``pg`` on the Causal page as if proposed from ``inputs``, and rerun."""
    at.session_state["cz_state"] = {"inputs": inputs, "graph": pg.to_json(), "run_id": None, "check": None,
                                     "check_dict": None, "effect_dict": None}
    at.run()


def check_csv(at: AppTest, csv: bytes) -> None:
    """Upload ``csv`` as the data and click Check."""
    at.file_uploader(key="cz_csv").set_value(("chain.csv", csv, "text/csv"))
    at.run()
    at.button(key="cz_check").click().run()


def _plain(text: str) -> str:
    """Shown Markdown without its escapes."""
    return text.replace("\\", "")


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _edit(at: AppTest, action: str, cause: str, effect: str) -> None:
    at.selectbox(key="cz_edit_action").set_value(action)
    at.selectbox(key="cz_edit_from").set_value(cause)
    at.selectbox(key="cz_edit_to").set_value(effect)
    at.button(key="cz_edit_apply").click().run()
    _ok(at)


def _stored_edges(data_dir: Path) -> set[tuple[str, str]]:
    run = AuditStore(data_dir / "audits.sqlite").list(kind="causal")[0]
    return {(e["source"], e["target"]) for e in run.result["graph"]["edges"]}


def _table_text(at: AppTest) -> str:
    return json.dumps([t.value.to_dict() for t in at.table], default=str)


def test_draw_edit_check_estimate_and_reopen(data_dir):
    at = _page()
    at.text_area(key="cz_vars").set_value(VARS)
    at.button(key="cz_empty").click().run()
    _ok(at)
    assert at.get("plotly_chart")
    assert _stored_edges(data_dir) == set()
    _edit(at, "add arrow", "smoking", "tar")
    _edit(at, "add arrow", "cancer", "tar")
    assert _stored_edges(data_dir) == {("smoking", "tar"), ("cancer", "tar")}
    _edit(at, "reverse arrow", "cancer", "tar")
    assert _stored_edges(data_dir) == {("smoking", "tar"), ("tar", "cancer")}
    assert not at.error
    # a cycle is refused, naming it; the graph stays as it was
    _edit(at, "add arrow", "cancer", "smoking")
    assert len(at.error) == 1 and "cycle: cancer -> smoking -> tar -> cancer" in _plain(at.error[0].value), \
        [e.value for e in at.error]
    assert _stored_edges(data_dir) == {("smoking", "tar"), ("tar", "cancer")}
    # the edges table says who drew each arrow, in words
    assert "user" in _table_text(at)

    # check the edited graph: it is the truth, so it is not rejected, and the verdict is said once
    check_csv(at, _csv())
    _ok(at)
    assert not at.error and len(at.success) == 1
    assert at.success[0].value.startswith("Graph not rejected")
    verdict = at.success[0].value[len("Graph "):]
    assert not any(verdict.replace("\\", "") in c.value for c in at.code)  # not repeated in the report
    at.selectbox(key="cz_treatment").set_value("smoking")
    at.selectbox(key="cz_outcome").set_value("cancer")
    at.run()
    at.button(key="cz_effect").click().run()
    _ok(at)
    (m,) = [m for m in at.metric if m.label == "effect of smoking on cancer"]
    # independent reference: the product of the two least-squares slopes of the chain
    import pandas as pd

    df = pd.read_csv(io.BytesIO(_csv()))
    slope = lambda y, x: np.polyfit(df[x], df[y], 1)[0]  # noqa: E731
    assert float(m.value) == pytest.approx(slope("tar", "smoking") * slope("cancer", "tar"), rel=0.05)
    # the sensitivity to an unobserved confounder in one sentence, said once
    sens = [i.value for i in at.info if "unobserved confounder" in i.value]
    assert len(sens) == 1 and sens[0].startswith("Sensitivity: an unobserved confounder would have to explain"), sens
    assert not any("unobserved confounder would have to" in c.value for c in at.code)
    runs = AuditStore(data_dir / "audits.sqlite").list(kind="causal")
    assert runs[0].method == "effect"
    assert {(e["source"], e["target"]) for e in runs[0].result["graph"]["edges"]} == {
        ("smoking", "tar"), ("tar", "cancer")}
    assert runs[0].inputs["edits"] == ["add smoking -> tar", "add cancer -> tar", "reverse cancer -> tar"]

    # a new session: History lists the edited graph and reopens it
    again = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    again.switch_page("pages/history_page.py").run()
    _ok(again)
    box = again.selectbox(key="hi_run")
    box.set_value([o for o in box.options if o.startswith(f"{runs[0].id} ")][0]).run()
    shown = [h.proto.body for h in again.get("html")]
    assert any("smoking -&gt; tar" in h and "tar -&gt; cancer" in h and "your edits" in h for h in shown), shown
    again.button(key="hi_reopen").click().run()
    _ok(again)
    assert again.title[0].value == "Causal"
    spec = json.loads(again.get("plotly_chart")[0].proto.spec)
    arrows = {a["hovertext"].split(":")[0] for a in spec["layout"]["annotations"] if a.get("showarrow")}
    assert arrows == {"smoking → tar", "tar → cancer"}


def test_rejected_graph_says_it_once_and_tables_are_readable(data_dir):
    from causal.graph import ProposedGraph

    # the fork smoking -> {tar, cancer} contradicts the chain data
    pg = ProposedGraph(graph=nx.DiGraph([("smoking", "tar"), ("smoking", "cancer")]), llm="replay")
    at = _page()
    open_graph(at, {"variables_text": VARS, "variables": VARS.split()}, pg)
    check_csv(at, _csv())
    _ok(at)
    rejected = [e.value for e in at.error] + [c.value for c in at.code] + [m.value for m in at.markdown]
    assert sum("REJECTED" in t for t in rejected) == 1, rejected
    text = _table_text(at)
    assert "[]" not in text and "{}" not in text and "'[" not in text
    assert "Holm" in " ".join(m.value for m in at.markdown)
    # the suggestion names no direction the data can't tell: with tar - cancer added, both ways
    # give a complete graph on three nodes (one equivalence class)
    report = "\n".join(c.value for c in at.code)
    assert ("suggestion: connect tar and cancer; the data alone can't tell the direction" in report
            or "suggestion: connect cancer and tar; the data alone can't tell the direction" in report), report


def test_undecided_pair_becomes_an_arrow(data_dir):
    from causal.graph import ProposedGraph

    pg = ProposedGraph(graph=nx.DiGraph([("smoking", "tar")]), undecided=[("tar", "cancer", {"p": 0.5, "p_raw": 0.6})],
                       llm="replay")
    at = _page()
    open_graph(at, {"variables_text": VARS, "variables": VARS.split()}, pg)
    _ok(at)
    box = at.selectbox(key="cz_edit_undecided")
    assert set(box.options) == {"tar → cancer", "cancer → tar"}
    box.set_value("tar → cancer")
    at.button(key="cz_edit_undecided_apply").click().run()
    _ok(at)
    assert _stored_edges(data_dir) == {("smoking", "tar"), ("tar", "cancer")}
    assert "cz_edit_undecided" not in [s.key for s in at.selectbox]  # no undecided pair left
    # removing an arrow that is not there is one clear line
    _edit(at, "remove arrow", "cancer", "smoking")
    assert len(at.error) == 1 and "no such edge" in _plain(at.error[0].value)


def test_readable_cells():
    from dashboard.pages.causal_page import readable, text_rows

    assert readable([]) == "none" and readable({}) == "none" and readable(None) == "none"
    rows = text_rows({"z": {"parents": ["x", "y"], "edge_p_values": {"x": 1e-9, "y": 0.25}, "ok": False}}, "node")
    assert rows == [{"node": "z", "parents": "x, y", "p of each parent edge": "x: 1e-09; y: 0.25", "ok": "no"}]
    # Markdown in names is shown as text
    assert text_rows({"<b>*a*</b>": {"p": "[x](y)"}}, "n") == [{"n": "\\<b\\>\\*a\\*\\</b\\>", "p": "\\[x\\](y)"}]
