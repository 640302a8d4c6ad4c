"""Causal page: an LLM proposes a causal graph over named variables; data check it (``causal``).

Variables (optionally with descriptions), LLM backend (picked with :mod:`dashboard.llm_picker`:
the embedded model, a local folder, OpenAI when the server has a key, servers configured at start;
keys stay on the server and are never stored), propose;
the graph drawn with confidences; upload a CSV to check it (colours by the check), estimate an
effect with refutations; download GML/JSON. Every propose/check/estimate is saved to History.
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
INPUT_KEYS = ("cz_vars", *llm_picker.input_keys("cz"), "cz_strategy", "cz_judge", "cz_threshold", "cz_use_data", "cz_test",
    "cz_alpha", "cz_treatment", "cz_outcome")



def parse_variables(text: str) -> tuple[list[str], dict[str, str]]:
    """Variables one per line, each optionally ``name: description``.

    Returns:
        (names, {name: description}) for the lines that have a description.

    Example:
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
    if st.button("Propose graph", type="primary", key="cz_propose"):
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
                                           "check": None, "check_dict": None, "effect_dict": None}

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
    judge_words = pg.judge_in_words()
    judge_words = judge_words[0].upper() + judge_words[1:] + "."
    if pg.judge is None or pg.judge.is_guessing:
        st.warning(judge_words)
    else:
        st.info(judge_words)
    st.plotly_chart(pg.figure(check=check), key="cz_graph", width="stretch")
    edges = list(pg.graph.edges(data=True))
    if edges:
        st.dataframe(
            {"cause": [u for u, _, _ in edges], "effect": [v for _, v, _ in edges],
             "confidence": [float(d.get("confidence", float("nan"))) for _, _, d in edges],
             "evidence": [str(d.get("evidence", "")) for _, _, d in edges]},
            hide_index=True, width="stretch",
        )
    elif pg.undecided:
        st.info("No arrow committed: the judge could not orient any pair confidently enough "
                f"(calibrated probability {pg.threshold:.2f} needed). The dashed lines are pairs the "
                "model thinks are linked, direction unknown.")
    else:
        st.info("The LLM proposed no edges.")
    if pg.undecided:
        st.caption("Undecided pairs (dashed, no direction): P(first → second) after calibration "
                   "against the judge's measured accuracy, and the model's own answer.")
        st.dataframe(
            {"first": [a for a, _, _ in pg.undecided], "second": [b for _, b, _ in pg.undecided],
             "P(first → second)": [float(d.get("p", float("nan"))) for _, _, d in pg.undecided],
             "model's own P": [float(d.get("p_raw", float("nan"))) for _, _, d in pg.undecided]},
            hide_index=True, width="stretch",
        )
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
        (st.error if cd.get("falsified") else st.success)(f"Graph {md_escape(verdict)}")
        m1, m2, m3 = st.columns(3)
        m1.metric("violation rate", f"{float(cd.get('violation_rate', 0)):.1%}")
        m2.metric("violations / tests", f"{cd.get('n_violations', '?')} / {cd.get('n_tests', '?')}")
        m3.metric("alpha", f"{cd.get('alpha', '')}")
        if state.get("check") is not None:
            st.code(state["check"].summary(), language=None, wrap_lines=True)
        if cd.get("violations"):
            st.markdown("**Violated independences** (one row per pair of variables)")
            st.dataframe(_rows({str(i): v for i, v in enumerate(cd["violations"], 1)}, "#"),
                         hide_index=True, width="stretch",
                         column_config={"p_value": st.column_config.NumberColumn(format="%.2e")})
        if cd.get("per_node"):
            st.markdown("**Per node**")
            st.dataframe(_rows(cd["per_node"], "node"), hide_index=True, width="stretch")
        json_download("Download check (JSON)", json.dumps(cd, ensure_ascii=False),
                      "whylm-check.json", key="cz_dl_check")


def _rows(table: dict[str, dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows for ``st.dataframe`` from {name: {field: value}}; non-scalar values become text."""
    return [{key: name, **{k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in fields.items()}}
            for name, fields in table.items()]


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
        if state.get("effect_summary"):
            st.code(state["effect_summary"], language=None, wrap_lines=True)
        refs = ed.get("refutations") or {}
        if refs:
            st.dataframe(_rows(refs, "refuter"), hide_index=True, width="stretch")
        json_download("Download effect (JSON)", json.dumps(ed, ensure_ascii=False),
                      "whylm-effect.json", key="cz_dl_effect")


def _run_effect(pg: Any, uploaded: Any, treatment: str, outcome: str) -> Any:
    from causal.effect import estimate_effect

    df = read_csv(uploaded)
    with st.spinner("Identifying, estimating and refuting the effect (DoWhy)…"):
        return estimate_effect(pg.graph, df, treatment=treatment, outcome=outcome)


if __name__ == "__main__":
    render()
