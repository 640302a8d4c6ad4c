"""Causal page: an LLM proposes a causal graph over named variables; data check it (``causal``).

Variables (optionally with descriptions), LLM backend (picked with :mod:`dashboard.llm_picker`:
the embedded model, a local folder, OpenAI when the server has a key, servers configured at start;
keys stay on the server and are never stored), propose;
the graph drawn with confidences, or start with no arrows and draw it yourself; edit it under the
drawing (add, remove, reverse an arrow, turn an undecided pair into one; a cycle is refused and
named); upload a CSV to check it (colours by the check), estimate an effect with refutations and
its sensitivity; download GML/JSON. Every propose/edit/check/estimate is saved to History with
the graph as edited, and reopens from there.
"""

from __future__ import annotations

import io
import json
from typing import Any

import streamlit as st

from dashboard import llm_picker
from dashboard.common import json_download, md_escape, progress_bar, run_safely, save_run, take_reopen
from explain.errors import WhylmError

KIND = "causal"
STATE = "cz_state"
STRATEGIES = ("auto", "pairwise", "ordering", "hybrid")
JUDGE_CHOICES = ("measured accuracy (recommended)", "none: the model's own probabilities")
TESTS = ("auto", "fisher_z", "chi2", "mixed", "kernel")
EXAMPLE = "smoking: cigarettes per day\ntar deposits: tar in the lungs\nlung cancer"
EDIT_ACTIONS = ("add arrow", "remove arrow", "reverse arrow")
COLUMN_NAMES = {  # the check's field names, as a table header says them
    "lmc_tests": "independences tested", "lmc_violations": "violated (p <= alpha)",
    "violated_with": "depends on", "edge_p_values": "p of each parent edge", "p_value": "p",
    "p_holm": "p after Holm", "significant": "significant after Holm", "given": "given",
}
INPUT_KEYS = ("cz_vars", *llm_picker.input_keys("cz"), "cz_strategy", "cz_judge", "cz_threshold", "cz_use_data", "cz_test",
    "cz_alpha", "cz_treatment", "cz_outcome")



def parse_variables(text: str) -> tuple[list[str], dict[str, str]]:
    """Variables one per line, each optionally ``name: description``.

    Returns:
        (names, {name: description}) for the lines that have a description.

    Examples:
        >>> parse_variables("a: first\\nb\\n\\n")
        (['a', 'b'], {'a': 'first'})
    """
    names, descriptions = [], {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, desc = line.partition(":")
        name = name.strip()
        names.append(name)
        if sep and desc.strip():
            descriptions[name] = desc.strip()
    return names, descriptions


def readable(value: Any) -> str:
    """A table cell as plain text: lists joined by commas, dicts as ``key: value`` pairs, numbers
    short, nothing as "none" (never a raw ``[]`` or ``{}``).

    Returns:
        the text.

    Examples:
        >>> readable([]), readable(["a", "b"]), readable({"x": 0.000123456, "y": 0.5}), readable(True)
        ('none', 'a, b', 'x: 0.000123; y: 0.5', 'yes')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {readable(v)}" for k, v in value.items()) if value else "none"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(readable(v) for v in value) if value else "none"
    return "none" if value is None else str(value)


def text_rows(table: dict[str, dict[str, Any]], key: str, skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Rows of readable, Markdown-escaped text from ``{name: {field: value}}`` (for ``st.table``,
    which wraps long cells instead of clipping them, and reads cells as Markdown).

    Returns:
        one dict per row.

    Examples:
        >>> text_rows({"c": {"parents": [], "edge_p_values": {}}}, "node")
        [{'node': 'c', 'parents': 'none', 'p of each parent edge': 'none'}]
    """
    return [{key: md_escape(name), **{COLUMN_NAMES.get(k, k.replace("_", " ")): md_escape(readable(v))
                                      for k, v in fields.items() if k not in skip}}
            for name, fields in table.items()]


def empty_proposal(names: list[str]) -> Any:
    """A graph over ``names`` with no arrows, for the user to draw (no LLM asked).

    Returns:
        a :class:`causal.graph.ProposedGraph`.

    Examples:
        >>> sorted(empty_proposal(["a", "b"]).graph.nodes)
        ['a', 'b']
    """
    import networkx as nx

    from causal.graph import ProposedGraph

    if len(names) < 2:
        raise WhylmError("enter at least two variables, one per line")
    if len(set(names)) < len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise WhylmError(f"variable {dup[0]!r} is listed twice")
    g = nx.DiGraph()
    g.add_nodes_from(names)
    return ProposedGraph(graph=g, strategy="drawn by hand", llm="none")


def apply_edit(graph_json: str, action: str, cause: str, effect: str) -> tuple[str, str]:
    """One edit of a stored graph: ``action`` is one of :data:`EDIT_ACTIONS`.

    Returns:
        (the edited graph as JSON, the edit in words such as ``"add a -> b"``).

    Raises:
        CausalError: the edit is impossible (no such edge, or a cycle, named).

    Examples:
        >>> g, what = apply_edit(empty_proposal(["a", "b"]).to_json(), "add arrow", "a", "b")
        >>> what, json.loads(g)["edges"][0]["origin"]
        ('add a -> b', 'user')
    """
    from causal.graph import ProposedGraph

    if action not in EDIT_ACTIONS:
        raise WhylmError(f"unknown edit {action!r}: use one of {', '.join(EDIT_ACTIONS)}")
    if cause == effect:
        raise WhylmError(f"pick two different variables (both are {cause!r})")
    verb = action.split()[0]
    pg = ProposedGraph.from_json(graph_json).with_edges(**{verb: [(cause, effect)]})
    return pg.to_json(), f"{verb} {cause} -> {effect}"


def read_csv(uploaded: Any) -> Any:
    """A DataFrame from an uploaded CSV file; a one-line ``WhylmError`` when it is not a table."""
    import pandas as pd

    if uploaded is None:
        raise WhylmError("upload a CSV file with one column per variable first")
    try:
        df = pd.read_csv(io.BytesIO(uploaded.getvalue()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WhylmError(f"cannot read {uploaded.name} as CSV: {str(exc).splitlines()[0]}") from None
    if df.shape[1] < 2 or df.shape[0] < 1:
        raise WhylmError(f"{uploaded.name} has {df.shape[1]} column(s) and {df.shape[0]} row(s): "
                         "need one column per variable and rows of observations")
    return df


def _apply_reopen() -> None:
    run = take_reopen(KIND)
    if run is None:
        return
    inp = run.inputs
    st.session_state["cz_vars"] = str(inp.get("variables_text") or "\n".join(inp.get("variables", [])))
    llm_picker.restore(inp, "cz")
    if inp.get("strategy") in STRATEGIES:
        st.session_state["cz_strategy"] = inp["strategy"]
    if inp.get("judge") in JUDGE_CHOICES:
        st.session_state["cz_judge"] = inp["judge"]
    if isinstance(inp.get("threshold"), (int, float)):
        st.session_state["cz_threshold"] = float(inp["threshold"])
    check_dict, effect_dict = run.result.get("check") or None, run.result.get("effect") or None
    st.session_state[STATE] = {
        "inputs": inp, "graph": json.dumps(run.result.get("graph", {})), "run_id": run.id,
        "check": _stored(check_dict, "check"), "check_dict": check_dict, "effect_dict": effect_dict,
        "edits": list(inp.get("edits") or []),
    }
    effect = _stored(effect_dict, "effect")
    if effect is not None:
        st.session_state[STATE]["effect_summary"] = effect.summary()
    again = " Upload the data again to re-run a check or an estimate." if (check_dict or effect_dict) else ""
    st.info(f"Reopened run {run.id} from History ({run.when}).{again}")


def _stored(d: dict[str, Any] | None, kind: str) -> Any:
    """The :class:`GraphCheck` or :class:`EffectEstimate` rebuilt from a stored dict (``None`` when
    there is none, or it was saved in a form this version cannot read)."""
    if not d:
        return None
    from causal.check import GraphCheck
    from causal.effect import EffectEstimate
    from causal.errors import CausalError

    try:
        return (GraphCheck if kind == "check" else EffectEstimate).from_dict(d)
    except CausalError:
        return None


def _propose(inputs: dict[str, Any], df: Any) -> dict[str, Any]:
    from causal.propose import propose_graph

    names, descriptions = parse_variables(inputs["variables_text"])
    if len(names) < 2:
        raise WhylmError("enter at least two variables, one per line")
    with progress_bar("Preparing the LLM…") as bar:
        llm, label = llm_picker.make_llm(inputs)
        bar.progress(0.2, text=f"Asking {label} about {len(names)} variables…")
        graph = propose_graph(names, llm=llm, descriptions=descriptions or None, data=df,
                              strategy=inputs["strategy"], progress=False,
                              judge=None if inputs.get("judge", JUDGE_CHOICES[0]) == JUDGE_CHOICES[0] else False,
                              threshold=float(inputs.get("threshold", 0.75)),
                              on_estimate=lambda cost: bar.progress(0.3, text=f"{cost.summary()}…"))
    return {"graph": graph.to_json(), "label": label, "variables": names}


def render() -> None:
    """Draw the Causal page."""
    st.title("Causal")
    st.caption("An LLM proposes which variables cause which; your data then test the graph "
               "(DoWhy) and estimate an effect with refutations.")
    _apply_reopen()
    st.session_state.setdefault("cz_vars", EXAMPLE)
    text = st.text_area("Variables, one per line (optionally `name: description`)", key="cz_vars",
                        height=120)
    c1, c2 = st.columns(2)
    strategy = c2.selectbox("Strategy", STRATEGIES, key="cz_strategy",
                            help="auto: pairwise questions up to 12 variables, else a causal order; "
                                 "hybrid (needs data): skeleton from data, directions from the LLM.")
    picked = llm_picker.pick_llm(c1, c2, "cz")
    judge = c2.selectbox("Calibrate against", JUDGE_CHOICES, key="cz_judge",
                         help="Arrows are committed only where the model's answer, shrunk by its measured "
                              "accuracy on 106 Tübingen cause-effect pairs, is confident; the rest are drawn "
                              "as dashed undecided pairs. A model not measured before is measured once "
                              "(about 200 questions, then cached); the embedded model's figure ships with whylm.")
    st.session_state.setdefault("cz_threshold", 0.75)
    threshold = c2.number_input("Commit an arrow at (calibrated probability)", min_value=0.51, max_value=1.0,
                                step=0.05, key="cz_threshold")

    uploaded = st.file_uploader("Data (CSV, one column per variable) — to check the graph and "
                                "estimate effects", type=["csv"], key="cz_csv")
    use_data = st.checkbox("Use the data when proposing (drops edges the data call independent)",
                           key="cz_use_data")
    b1, b2 = st.columns([1, 2])
    if b2.button("Start with no arrows (draw it yourself)", key="cz_empty",
                 help="No LLM is asked: the variables are drawn without edges and you add the arrows below."):
        names = parse_variables(text)[0]
        pg = run_safely("Start a graph", empty_proposal, names)
        if pg is not None:
            inputs = {"variables_text": text, "variables": names, "strategy": "drawn by hand",
                      "backend": "none", "edits": []}
            run_id = save_run(KIND, inputs, {"graph": json.loads(pg.to_json())}, model="none",
                              method="draw", title=", ".join(names))
            st.session_state[STATE] = {"inputs": inputs, "graph": pg.to_json(), "run_id": run_id,
                                       "check": None, "check_dict": None, "effect_dict": None, "edits": []}
    if b1.button("Propose graph", type="primary", key="cz_propose"):
        inputs = {"variables_text": text, "variables": parse_variables(text)[0], **picked,
                  "strategy": strategy, "judge": judge, "threshold": float(threshold)}
        df = run_safely("Reading the CSV", read_csv, uploaded) if use_data else None
        if df is not None or not use_data:
            out = run_safely("Propose", _propose, inputs, df)
            if out is not None:
                inputs["backend"] = out["label"]
                graph_dict = json.loads(out["graph"])
                run_id = save_run(KIND, inputs, {"graph": graph_dict}, model=out["label"],
                                  method=f"propose ({strategy})", title=", ".join(out["variables"]))
                st.session_state[STATE] = {"inputs": inputs, "graph": out["graph"], "run_id": run_id,
                                           "check": None, "check_dict": None, "effect_dict": None,
                                           "edits": []}

    state = st.session_state.get(STATE)
    if state and state.get("graph"):
        run_safely("Showing the graph", _show, state, uploaded)


def _proposed(state: dict[str, Any]) -> Any:
    from causal.graph import ProposedGraph

    return ProposedGraph.from_json(state["graph"])


def _show(state: dict[str, Any], uploaded: Any) -> None:
    """The proposed graph, its check and effect sections, and downloads."""
    pg = _proposed(state)
    st.divider()
    run_id = state.get("run_id")
    st.subheader("Proposed graph" + (f" · run {run_id}" if run_id else ""))
    check = state.get("check")
    if pg.strategy == "drawn by hand":
        st.caption("Drawn by hand: no LLM was asked. Add arrows under the drawing.")
    else:
        judge_words = pg.judge_in_words()
        judge_words = judge_words[0].upper() + judge_words[1:] + "."
        (st.warning if pg.judge is None or pg.judge.is_guessing else st.info)(md_escape(judge_words))
    if state.get("edits"):
        st.caption(md_escape(f"Edited by you ({len(state['edits'])}): " + "; ".join(state["edits"])))
    if pg.strategy == "drawn by hand":  # no judge to describe: no "(none)" title, no accuracy note
        from causal.plot import graph_figure

        fig = graph_figure(pg.graph, check=check, title="your graph", undecided=pg.undecided)
    else:
        fig = pg.figure(check=check)
    st.plotly_chart(fig, key="cz_graph", width="stretch")
    edges = list(pg.graph.edges(data=True))
    if edges:
        st.table(text_rows({f"{u} → {v}": {"origin": d.get("origin", ""), "confidence": d.get("confidence", "—"),
                                          "evidence": d.get("evidence", "")} for u, v, d in edges}, "arrow"),
                 hide_index=True)
    elif pg.undecided:
        st.info("No arrow committed: the judge could not orient any pair confidently enough "
                f"(calibrated probability {pg.threshold:.2f} needed). The dashed lines are pairs the "
                "model thinks are linked, direction unknown: turn one into an arrow below.")
    elif pg.strategy != "drawn by hand":
        st.info("The LLM proposed no edges.")
    if pg.undecided:
        st.caption("Undecided pairs (dashed, no direction): P(first → second) after calibration "
                   "against the judge's measured accuracy, the model's own answer, and what the data say.")
        by_pair = {frozenset((a, b)): d for a, b, d in pg.data_orientation}
        st.table(text_rows({f"{a} – {b}": {
            "P(first → second)": d.get("p"), "model's own P": d.get("p_raw"),
            "data": _data_words(a, b, by_pair.get(frozenset((a, b))))} for a, b, d in pg.undecided}, "pair"),
            hide_index=True)
    _edit_section(state, pg)
    with st.expander("Summary (dropped and flagged edges)"):
        st.code(pg.summary(), language=None, wrap_lines=True)
    d1, d2 = st.columns(2)
    with d1:
        st.download_button("Download GML", pg.to_gml(), "whylm-graph.gml", mime="text/plain",
                           key="cz_dl_gml")
    with d2:
        json_download("Download JSON", pg.to_json(), "whylm-graph.json", key="cz_dl_json")

    _check_section(state, pg, uploaded)
    _effect_section(state, pg, uploaded)


def _data_words(a: str, b: str, d: dict[str, Any] | None) -> str:
    """What the data say about an undecided pair, in words."""
    if not d:
        return "no data used"
    kind = d.get("data", "")
    if kind == "oriented" and d.get("cause"):
        effect = d.get("effect") or (b if d["cause"] == a else a)
        return f"the data orient it: {d['cause']} → {effect}"
    if kind == "not adjacent":
        return "the data find no direct link"
    return "the data alone can't tell the direction"


def _edit_section(state: dict[str, Any], pg: Any) -> None:
    """Add, remove or reverse an arrow, or turn an undecided pair into one; a cycle is refused."""
    st.markdown("**Edit the graph**")
    nodes = sorted({*pg.graph.nodes, *(n for a, b, _ in pg.undecided for n in (a, b))})
    c1, c2, c3, c4 = st.columns([1.1, 1, 1, 0.6], vertical_alignment="bottom")
    action = c1.selectbox("Edit", EDIT_ACTIONS, key="cz_edit_action")
    cause = c2.selectbox("From (cause)", nodes, key="cz_edit_from")
    effect = c3.selectbox("To (effect)", nodes, index=min(1, len(nodes) - 1), key="cz_edit_to")
    if c4.button("Apply", key="cz_edit_apply"):
        _edit(state, pg, action, cause, effect)
    if pg.undecided:
        arrows = [f"{a} → {b}" for a, b, _ in pg.undecided] + [f"{b} → {a}" for a, b, _ in pg.undecided]
        u1, u2 = st.columns([3, 1], vertical_alignment="bottom")
        pick = u1.selectbox("Turn an undecided pair into an arrow", arrows, key="cz_edit_undecided")
        if u2.button("Make it an arrow", key="cz_edit_undecided_apply"):
            a, b = pick.split(" → ", 1)
            _edit(state, pg, "add arrow", a, b)


def _edit(state: dict[str, Any], pg: Any, action: str, cause: str, effect: str) -> None:
    out = run_safely("Edit", apply_edit, state["graph"], action, cause, effect)
    if out is None:
        return
    graph_json, what = out
    edits = [*state.get("edits", []), what]
    inputs = dict(state["inputs"], edits=edits)
    run_id = save_run(KIND, inputs, {"graph": json.loads(graph_json)},
                      model=str(state["inputs"].get("backend", "")), method=f"edit ({what})",
                      title=", ".join(pg.graph.nodes))
    # the check and the estimate were of the graph before this edit
    st.session_state[STATE] = {**state, "inputs": inputs, "graph": graph_json, "edits": edits,
                               "run_id": run_id or state.get("run_id"), "check": None, "check_dict": None,
                               "effect_dict": None, "effect_summary": None}
    st.rerun()


def _check_section(state: dict[str, Any], pg: Any, uploaded: Any) -> None:
    st.subheader("Check against data")
    c1, c2 = st.columns(2)
    test = c1.selectbox("Independence test", TESTS, key="cz_test",
                        help="auto: fisher_z when every column is continuous, chi2 when every column is "
                             "categorical, mixed otherwise; mixed: regression tests for continuous and "
                             "categorical columns together; kernel: nonlinear, slow.")
    st.session_state.setdefault("cz_alpha", 0.05)
    alpha = c2.number_input("alpha", min_value=0.001, max_value=0.5, step=0.01, key="cz_alpha")
    if st.button("Check graph", key="cz_check"):
        chk = run_safely("Check", _run_check, pg, uploaded, test, float(alpha))
        if chk is not None:
            state["check"], state["check_dict"] = chk, json.loads(chk.to_json())
            inputs = dict(state["inputs"], data=uploaded.name, test=test, alpha=float(alpha))
            state["run_id"] = save_run(
                KIND, inputs, {"graph": json.loads(pg.to_json()), "check": state["check_dict"]},
                model=str(state["inputs"].get("backend", "")), method=f"check ({chk.test})",
                title=", ".join(pg.graph.nodes),
            ) or state.get("run_id")
            st.session_state[STATE] = state
            st.rerun()
    cd = state.get("check_dict")
    if cd:
        chk = state.get("check")
        verdict = chk.verdict if chk is not None else (
            "REJECTED by the data." if cd.get("falsified") else "not rejected by the data.")
        (st.error if cd.get("falsified") else st.success)(f"Graph {md_escape(verdict)}")  # said once
        m1, m2, m3 = st.columns(3)
        m1.metric("violation rate", f"{float(cd.get('violation_rate', 0)):.1%}")
        m2.metric("violations / tests", f"{cd.get('n_violations', '?')} / {cd.get('n_tests', '?')}")
        m3.metric("alpha", f"{cd.get('alpha', '')}")
        if state.get("check") is not None:  # the verdict is the banner above: the rest of the report
            rest = state["check"].summary().split("\n", 1)[1:]
            if rest:
                st.code(rest[0], language=None, wrap_lines=True)
        if cd.get("violations"):
            st.markdown("**Violated independences** (one row per pair of variables; p before and after "
                        "Holm's correction)")
            st.table(text_rows({str(i): v for i, v in enumerate(cd["violations"], 1)}, "#",
                               skip=("node", "independent_of")), hide_index=True)
        if cd.get("per_node"):
            st.markdown("**Per node**")
            st.table(text_rows(cd["per_node"], "node"), hide_index=True)
        json_download("Download check (JSON)", json.dumps(cd, ensure_ascii=False),
                      "whylm-check.json", key="cz_dl_check")


def _run_check(pg: Any, uploaded: Any, test: str, alpha: float) -> Any:
    from causal.check import check_graph

    df = read_csv(uploaded)
    with st.spinner("Testing the graph's independences against the data…"):
        return check_graph(pg.graph, df, test=test, alpha=alpha)


def _effect_section(state: dict[str, Any], pg: Any, uploaded: Any) -> None:
    st.subheader("Effect estimate")
    nodes = list(pg.graph.nodes)
    if len(nodes) < 2:
        return
    c1, c2 = st.columns(2)
    if st.session_state.get("cz_treatment") not in nodes:
        st.session_state["cz_treatment"] = nodes[0]
    treatment = c1.selectbox("Treatment", nodes, key="cz_treatment")
    if st.session_state.get("cz_outcome") not in nodes:
        st.session_state["cz_outcome"] = nodes[-1]
    outcome = c2.selectbox("Outcome", nodes, key="cz_outcome")
    if st.button("Estimate effect", key="cz_effect"):
        eff = run_safely("Effect estimate", _run_effect, pg, uploaded, treatment, outcome)
        if eff is not None:
            state["effect_dict"] = json.loads(eff.to_json())
            state["effect_summary"] = eff.summary()
            inputs = dict(state["inputs"], data=uploaded.name, treatment=treatment, outcome=outcome)
            state["run_id"] = save_run(
                KIND, inputs, {"graph": json.loads(pg.to_json()), "effect": state["effect_dict"],
                               "check": state.get("check_dict")},
                model=str(state["inputs"].get("backend", "")), method="effect",
                title=f"{treatment} -> {outcome}",
            ) or state.get("run_id")
            st.session_state[STATE] = state
    ed = state.get("effect_dict")
    if ed:
        value = ed.get("value")
        st.metric(f"effect of {ed.get('treatment')} on {ed.get('outcome')}",
                  "n/a" if value is None else f"{float(value):.4g}")
        sensitivity = getattr(_stored(ed, "effect"), "sensitivity_text", "")
        if sensitivity:  # how strong an unobserved confounder would have to be, in one sentence
            st.info(md_escape(sensitivity))
        if state.get("effect_summary"):  # the rest of the report (the sentence above said once)
            rest = [line for line in state["effect_summary"].splitlines() if line.strip() != sensitivity.strip()]
            st.code("\n".join(rest), language=None, wrap_lines=True)
        refs = ed.get("refutations") or {}
        if refs:
            st.table(text_rows(refs, "refuter"), hide_index=True)
        json_download("Download effect (JSON)", json.dumps(ed, ensure_ascii=False),
                      "whylm-effect.json", key="cz_dl_effect")


def _run_effect(pg: Any, uploaded: Any, treatment: str, outcome: str) -> Any:
    from causal.effect import estimate_effect

    df = read_csv(uploaded)
    with st.spinner("Identifying, estimating and refuting the effect (DoWhy)…"):
        return estimate_effect(pg.graph, df, treatment=treatment, outcome=outcome)


if __name__ == "__main__":
    render()
