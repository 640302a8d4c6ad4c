"""Signals page: is the answer likely made up, which sentences, and what in the context supports them.

Prompt, optional context and given response, number of samples, calibration; then, first and
large, the calibrated verdict and risk with its thresholds (or why there is none); the answer's
sentences coloured by risk: choosing one highlights its evidence in the context, or says that
nothing in the context supports it; the answer's tokens highlighted on an absolute scale by any
registered signal (the registry is iterated: a custom signal appears here too); every score by its
plain name with its range (the key in the tooltip); consistency across samples; a JSON download.
Every run is saved to History; an audit record can be opened here from the Audits page; all model
and user text is escaped.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.calibrations import calibration_label, calibration_picker, check_calibration_spec, picker_value
from dashboard.common import (
    escaped_text, json_download, md_escape, progress_bar, run_safely, save_run, show_html, take_open, take_reopen,
)
from dashboard.models import load_model, model_label, model_picker
from explain.errors import ExplainError
from explain.evidence_view import (
    VERDICT_COLOURS, context_html, has_evidence, scores_html, sentence_option, sentence_table_html,
    sentences_html,
)
from explain.plots import escape
from explain.signals import SIGNALS, VERDICT_THRESHOLDS, SignalReport

KIND = "signals"
STATE = "sg_state"
INPUT_KEYS = ("sg_model_choice", "sg_model_path", "sg_prompt", "sg_context", "sg_response",
    "sg_chat", "sg_samples", "sg_calibration", "sg_view", "sg_sentence")


def view_label(name: str) -> str:
    """A plain-language name for a highlighting view (a registered signal's label, with its key).

    Examples:
        >>> view_label("entropy")
        'model hesitation (entropy) [entropy]'
    """
    if name == "risk":
        return "risk"
    spec = SIGNALS.get(name)
    return f"{spec.label} [{name}]" if spec else name


def answer_html(rep: Any, view: str) -> str:
    """The answer's tokens highlighted by ``view`` (``risk`` or a signal in ``rep.token_signals``)."""
    if view not in rep.views():
        view = "risk"
    return rep.token_html(view)


def verdict_html(rep: Any) -> str:
    """The verdict and the risk, large, with the thresholds; or why there is none (escaped)."""
    lo, hi = VERDICT_THRESHOLDS
    if rep.risk is None:
        return ("<div class='whylm-verdict' style='font-size:1.3rem'>No calibrated verdict</div>"
                f"<div style='color:#555'>{escape(rep.risk_note)}</div>")
    colour = VERDICT_COLOURS.get(rep.verdict, "#333")
    return (f"<div class='whylm-verdict' style='font-size:2rem;font-weight:700;color:{colour}'>"
            f"{escape(str(rep.verdict))}</div>"
            f"<div style='font-size:1.2rem'>risk {rep.risk:.2f} that the answer is not supported "
            f"&middot; supported below {lo}, likely hallucinated from {hi}</div>"
            f"<div style='color:#555'>{escape(rep.risk_note)}</div>")


def _fill_inputs(inp: dict[str, Any]) -> None:
    """Fill the input widgets from a run's inputs (a reopened run, or an audit record)."""
    st.session_state["sg_prompt"] = str(inp.get("prompt", ""))
    st.session_state["sg_context"] = str(inp.get("context") or "")
    st.session_state["sg_response"] = str(inp.get("response") or "")
    st.session_state["sg_samples"] = int(inp.get("n_samples", inp.get("samples", 0)) or 0)
    st.session_state["sg_chat"] = bool(inp.get("chat", True))
    st.session_state["sg_calibration"] = picker_value(inp.get("calibration"))  # a file no longer offered: dropped
    model = inp.get("model")
    st.session_state["sg_model_choice"] = "Local folder" if model else "Embedded SmolLM2-135M-Instruct"
    st.session_state["sg_model_path"] = model or ""
    st.session_state.pop("sg_sentence", None)


def _apply_reopen() -> None:
    """Fill the widgets and the shown result from a run the History page reopened, or from an audit
    record the Audits page opened here."""
    run = take_reopen(KIND)
    if run is not None:
        _fill_inputs(run.inputs)
        st.session_state[STATE] = {"inputs": run.inputs, "result": run.result, "run_id": run.id}
        st.info(f"Reopened run {run.id} from History ({run.when}).")
        return
    req = take_open(KIND)
    if req is not None:
        _fill_inputs(req["inputs"])
        st.session_state[STATE] = {"inputs": req["inputs"], "result": req["result"], "run_id": None,
                                   "source": req["source"]}


def _run(spec: str | None, prompt: str, context: str | None, response: str | None,
         samples: int, chat: bool, calibration: Any = None) -> dict[str, Any]:
    from explain import signals

    if not prompt.strip():
        raise ExplainError("prompt is empty: type the question the answer responds to")
    calibration = check_calibration_spec(calibration)
    with progress_bar(f"Loading {model_label(spec)}…") as bar:
        lm = load_model(spec)
        bar.progress(0.3, text="Scoring the answer" + (f" and {samples} samples…" if samples else "…"))
        rep = signals(lm, prompt, response=response, context=context, n_samples=samples, chat=chat,
                      calibration=calibration, progress=False)
    return rep.to_dict()


def render() -> None:
    """Draw the Signals page."""
    st.title("Signals")
    st.caption("Does the answer look made up? A calibrated risk and verdict first, then which sentences "
               "and tokens drive it: token surprise, hesitation, grounding in the context, consistency "
               "across samples. Higher scores = more suspicious.")
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
    calibration = calibration_picker("sg_calibration")
    if st.button("Check", type="primary", key="sg_run"):
        result = run_safely("Signals", _run, spec, prompt, context or None, response or None,
                             samples, chat, calibration)
        if result is not None:
            inputs = {"model": spec, "prompt": prompt, "context": context or None,
                      "response": response or None, "n_samples": samples, "chat": chat,
                      "calibration": calibration}
            run_id = save_run(KIND, inputs, result, model=model_label(spec),
                              method=f"signals, {samples} samples", title=prompt)
            st.session_state[STATE] = {"inputs": inputs, "result": result, "run_id": run_id}
            st.session_state.pop("sg_sentence", None)
    state = st.session_state.get(STATE)
    if state and state.get("result"):
        run_safely("Showing the result", _show, state)


def _show(state: dict[str, Any]) -> None:
    """Show a stored signal report: verdict first, then sentences and evidence, tokens, scores, samples."""
    rep = SignalReport.from_dict(state["result"])
    st.divider()
    run_id = state.get("run_id")
    st.subheader("Result" + (f" · run {run_id}" if run_id else ""))
    if state.get("source"):
        st.caption(md_escape(state["source"]))
    cal = (state.get("inputs") or {}).get("calibration", None)
    if cal is not None:
        st.caption(md_escape(f"Calibration: {calibration_label(cal)}"))
    show_html(verdict_html(rep))
    if rep.sentences:
        show_sentences(rep, key="sg_sentence")
    views = rep.views()
    view = st.radio("Highlight tokens by", views, horizontal=True, key="sg_view", format_func=view_label,
                    help="Absolute scales: the same value has the same colour in every answer. "
                         "risk = the calibration applied to each token alone (1 - p without a calibration).")
    show_html(answer_html(rep, view))
    show_scores(rep.scores)
    for note in rep.notes or []:
        st.caption(md_escape(note))
    st.plotly_chart(rep.figure(), key="sg_figure", width="stretch")
    if rep.samples:
        clusters = list(rep.sample_clusters or [])
        with st.expander(f"Consistency: {len(rep.samples)} sampled answers, "
                         f"{len(set(clusters)) if clusters else '?'} distinct meanings", expanded=True):
            for k, text in enumerate(rep.samples):
                tag = f" · meaning {clusters[k]}" if k < len(clusters) else ""
                escaped_text(str(text), label=f"Sample {k + 1}{tag}")
    json_download("Download report (JSON)", rep.to_json(), "whylm-signals.json", key="sg_download")


def show_sentences(rep: Any, key: str) -> None:
    """The answer's sentences coloured by risk, a picker, and the picked sentence's evidence in the
    context (or that nothing in the context supports it). Shared with the Audits page.

    Args:
        rep: a :class:`SignalReport` with at least one sentence.
        key: the picker's widget key (unique per page).
    """
    n = len(rep.sentences)
    if st.session_state.get(key) not in range(n):
        st.session_state.pop(key, None)
    evidence = has_evidence(rep)
    st.markdown("**The answer, sentence by sentence** (coloured by risk"
                + ("; pick a sentence to see what in the context supports it)" if evidence else ")"))
    picked = st.selectbox("Sentence", list(range(n)), key=key, format_func=lambda k: sentence_option(rep, k))
    show_html(sentences_html(rep, selected=picked))
    if evidence:
        show_html(context_html(rep, picked))
    elif rep.context is not None:
        st.caption("This report holds no evidence (it was made with evidence=False).")
    else:
        st.caption("No context was given: add one to see which of its sentences support each answer sentence.")
    show_html(sentence_table_html(rep))


def show_scores(scores: dict[str, Any]) -> None:
    """Answer-level scores by plain name, each with its range, in a table that wraps to the page
    (the key and meaning in each row's tooltip)."""
    html = scores_html(dict(scores or {}))
    if html:
        st.markdown("**Answer-level scores** (higher = more suspicious; hover a row for its meaning)")
        show_html(html)


if __name__ == "__main__":
    render()
