"""Signals page: which tokens of an answer look unreliable (``explain.signals``).

Prompt, optional context and given response, number of samples; then the answer with risky tokens
highlighted, per-token signals, sequence-level and sentence-level scores, consistency across
samples, and a JSON download. Every run is saved to History.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.common import (
    escaped_text, json_download, progress_bar, run_safely, save_run, show_html, take_reopen,
)
from dashboard.models import load_model, model_label, model_picker
from explain.errors import WhylmError

KIND = "signals"
STATE = "sg_state"
VIEW_LABELS = {"risk": "risk (1 - p)", "entropy": "entropy", "contrast": "context contrast"}
INPUT_KEYS = ("sg_model_choice", "sg_model_path", "sg_prompt", "sg_context", "sg_response",
    "sg_chat", "sg_samples", "sg_view")



def _score_docs() -> dict[str, str]:
    try:
        from explain.signals import SCORE_DOCS
    except ImportError:
        return {}
    return dict(SCORE_DOCS)


def answer_html(rep: Any, view: str) -> str:
    """The answer's tokens highlighted by one signal (``risk``, ``entropy`` or ``contrast``)."""
    if view == "contrast" and rep.token_context_contrast is None:
        view = "risk"
    return rep.token_html(view)


def _apply_reopen() -> None:
    """Fill the widgets and the shown result from a run the History page reopened."""
    run = take_reopen(KIND)
    if run is None:
        return
    inp = run.inputs
    st.session_state["sg_prompt"] = str(inp.get("prompt", ""))
    st.session_state["sg_context"] = str(inp.get("context") or "")
    st.session_state["sg_response"] = str(inp.get("response") or "")
    st.session_state["sg_samples"] = int(inp.get("samples", 0))
    st.session_state["sg_chat"] = bool(inp.get("chat", True))
    model = inp.get("model")
    st.session_state["sg_model_choice"] = "Local folder" if model else "Embedded SmolLM2-135M-Instruct"
    st.session_state["sg_model_path"] = model or ""
    st.session_state[STATE] = {"inputs": inp, "result": run.result, "run_id": run.id}
    st.info(f"Reopened run {run.id} from History ({run.when}).")


def _run(spec: str | None, prompt: str, context: str | None, response: str | None,
         samples: int, chat: bool) -> dict[str, Any]:
    from explain import signals

    if not prompt.strip():
        raise WhylmError("prompt is empty: type the question the answer responds to")
    with progress_bar(f"Loading {model_label(spec)}…") as bar:
        lm = load_model(spec)
        bar.progress(0.3, text="Scoring the answer" + (f" and {samples} samples…" if samples else "…"))
        rep = signals(lm, prompt, response=response, context=context, samples=samples, chat=chat,
                      progress=False)
    return rep.to_dict()


def render() -> None:
    """Draw the Signals page."""
    st.title("Signals")
    st.caption("Does the answer look made up? Token log-probabilities, entropy, margin, grounding "
               "in the context, and consistency across samples. Higher scores = more suspicious.")
    _apply_reopen()
    saved = st.session_state.get(STATE, {}).get("inputs", {})
    spec = model_picker("sg", default=saved.get("model"))
    prompt = st.text_area("Prompt", key="sg_prompt", height=90,
                          placeholder="Who wrote the novel 'The Master and Margarita'?")
    context = st.text_area("Context (optional)", key="sg_context", height=80,
                           help="Retrieved passages the answer should be grounded in.")
    response = st.text_area("Response to check (optional)", key="sg_response", height=80,
                            help="Leave empty to let the model answer (greedy) and check that.")
    st.session_state.setdefault("sg_chat", True)
    chat = st.toggle("Chat prompt", key="sg_chat",
                     help="Apply the model's chat template to the prompt (and context).")
    st.session_state.setdefault("sg_samples", 0)
    samples = st.slider("Samples for consistency (0 = off; each costs one generation)", 0, 10,
                        key="sg_samples")
    if st.button("Check", type="primary", key="sg_run"):
        result = run_safely("Signals", _run, spec, prompt, context or None, response or None,
                             samples, chat)
        if result is not None:
            inputs = {"model": spec, "prompt": prompt, "context": context or None,
                      "response": response or None, "samples": samples, "chat": chat}
            run_id = save_run(KIND, inputs, result, model=model_label(spec),
                              method=f"signals, {samples} samples", title=prompt)
            st.session_state[STATE] = {"inputs": inputs, "result": result, "run_id": run_id}
    state = st.session_state.get(STATE)
    if state and state.get("result"):
        run_safely("Showing the result", _show, state)


def _from_dict(d: dict[str, Any]) -> Any:
    from explain.signals import SignalReport

    return SignalReport.from_dict(d)


def _show(state: dict[str, Any]) -> None:
    """Show a stored signal report."""
    d = state["result"]
    rep = _from_dict(d)
    st.divider()
    run_id = state.get("run_id")
    st.subheader("Result" + (f" · run {run_id}" if run_id else ""))
    views = ["risk", "entropy"] + (["contrast"] if rep.token_context_contrast is not None else [])
    view = st.radio("Highlight tokens by", views, horizontal=True, key="sg_view",
                    format_func=VIEW_LABELS.get)
    show_html(answer_html(rep, view))
    scores = dict(rep.scores or {})
    if scores:
        st.markdown("**Answer-level scores** (higher = more likely hallucinated; hover ? for the range)")
        docs = _score_docs()
        cols = st.columns(min(4, len(scores)))
        for k, (name, value) in enumerate(scores.items()):
            cols[k % len(cols)].metric(name, _fmt(value), help=docs.get(name))
    if rep.sentences:
        st.markdown("**Sentences**")
        st.dataframe(
            [{"sentence": s.text, **{k: float(v) for k, v in s.scores.items()}} for s in rep.sentences],
            hide_index=True, width="stretch",
            column_config={"sentence": st.column_config.TextColumn(width="large")},
        )
    for note in rep.notes or []:
        st.caption(note)
    st.plotly_chart(rep.figure(), key="sg_figure", width="stretch")
    if rep.samples:
        clusters = list(rep.sample_clusters or [])
        with st.expander(f"Consistency: {len(rep.samples)} sampled answers, "
                         f"{len(set(clusters)) if clusters else '?'} distinct meanings", expanded=True):
            for k, text in enumerate(rep.samples):
                tag = f" · meaning {clusters[k]}" if k < len(clusters) else ""
                escaped_text(str(text), label=f"Sample {k + 1}{tag}")
    json_download("Download report (JSON)", rep.to_json(), "whylm-signals.json", key="sg_download")


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)



if __name__ == "__main__":
    render()
