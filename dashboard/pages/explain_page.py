"""Explain page: which prompt tokens or sentences drove each output token (``explain.attribute``).

Model picker, prompt (plain or chat), optional target, source granularity (tokens, words,
sentences, paragraphs), method picker with each method's note and its options (the ones the method
registered, with their registered defaults: ``explain.attribution.METHODS``), the cost estimate shown before the
run (and a run over the budget refused with the cheaper choice), run with a progress bar; then the
prompt and answer highlighted by attribution (over sentences: the prompt as written, each sentence
highlighted, the ranking beside it), the output x input heatmap, a per-output-token drill-down, an
optional side-by-side comparison with a second method, and a JSON download. Every run is saved to
History.

A context box takes a passage apart from the prompt (then the question): only the context is split
into sources and the question's own value is shown apart from the ranking. Over long prompts with
word, sentence or paragraph sources, ``top_k`` is the default ("Exact part: auto"): a screen ranks
every source and exact leave-one-out runs for the 5 best; estimated sources are marked (≈, grey).
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard.common import (
    escaped_text, json_download, md_escape, progress_bar, run_safely, save_run, show_html, take_reopen,
)
from dashboard.models import load_model, model_label, model_picker
from explain.attribution import METHODS, SCREENS, default_screen
from explain.budget import DEFAULT_MAX_SECONDS
from explain.errors import WhylmError
from explain.model import EMBEDDED_NAME

KIND = "explain"
STATE = "ex_state"
INPUT_KEYS = ("ex_model_choice", "ex_model_path", "ex_prompt", "ex_chat", "ex_target", "ex_method",
    "ex_compare", "ex_method2", "ex_max_new", "ex_token", "ex_sources", "ex_max_seconds", "ex_context",
    "ex_top_k", "ex_screen")
SOURCES = {
    "tokens": "Tokens: one feature per token (token ids replaced by a neutral baseline).",
    "words": "Words: one feature per word, removed when ablated.",
    "sentences": "Sentences: one feature per sentence, removed when ablated (best for long contexts).",
    "paragraphs": "Paragraphs: one feature per paragraph, removed when ablated.",
}
# The comparison's default second method: a faithful one (attention weights are a heuristic).
COMPARE_DEFAULT = "shapley"
# "Exact part" choices; "auto" = top_k=AUTO_TOP_K over sources when the text is longer than LONG_CHARS.
EXACT_CHOICES = ("auto", "all", "3", "5", "10", "20")
AUTO_TOP_K = 5
LONG_CHARS = 2000


def exact_top_k(choice: Any, method: str, sources: str, text_chars: int) -> int | None:
    """The ``top_k`` a run uses: ``None`` (every source exact) or an integer.

    Examples:
        >>> exact_top_k("auto", "ablation", "sentences", 9000), exact_top_k("auto", "ablation", "tokens", 9000)
        (5, None)
    """
    if method != "ablation" or choice == "all":
        return None
    if choice == "auto":
        return AUTO_TOP_K if sources != "tokens" and text_chars > LONG_CHARS else None
    return int(choice)


def method_notes() -> dict[str, str]:
    """Method name -> one-line note on cost and faithfulness, in the registry's order.

    Examples:
        >>> method_notes()["ablation"].startswith("n+1 sequences")
        True
    """
    return {name: " — ".join(x for x in (info.cost, info.note) if x) for name, info in METHODS.items()}


def option_key(method: str, name: str) -> str:
    """The widget key of one method option. Example: ``option_key("shapley", "n_samples")`` is
    ``'ex_opt_shapley_n_samples'``."""
    return f"ex_opt_{method}_{name}"


def method_options(container: Any, method: str) -> dict[str, Any]:
    """Widgets for the options ``method`` registered as shown, with its registered defaults.

    Returns:
        option name -> the value set (checked by ``attribute``/``estimate_cost``, not here).
    """
    info = METHODS[method]
    options: dict[str, Any] = {}
    for name in info.shown:
        key, default = option_key(method, name), info.defaults[name]
        st.session_state.setdefault(key, default)
        label = f"{name} ({method})"
        if name in info.choices:
            options[name] = container.selectbox(label, list(info.choices[name]), key=key)
        elif isinstance(default, bool):
            options[name] = container.toggle(label, key=key)
        elif isinstance(default, (int, float)):
            options[name] = container.number_input(label, step=1 if isinstance(default, int) else 0.1,
                                                   key=key)
        else:
            options[name] = container.text_input(label, key=key)
    return options


def _apply_reopen() -> None:
    """Fill the widgets and the shown result from a run the History page reopened."""
    run = take_reopen(KIND)
    if run is None:
        return
    inp = run.inputs
    st.session_state["ex_prompt"] = str(inp.get("prompt", ""))
    st.session_state["ex_chat"] = bool(inp.get("chat", False))
    st.session_state["ex_target"] = str(inp.get("target") or "")
    st.session_state["ex_max_new"] = int(inp.get("max_new_tokens", 32))
    st.session_state["ex_sources"] = str(inp.get("sources") or "tokens")
    st.session_state["ex_context"] = str(inp.get("context") or "")
    if inp.get("top_k") in EXACT_CHOICES:
        st.session_state["ex_top_k"] = inp.get("top_k")
    methods = list(inp.get("methods") or [run.method])
    if methods[0] in METHODS:
        st.session_state["ex_method"] = methods[0]
    st.session_state["ex_compare"] = len(methods) > 1
    if len(methods) > 1 and methods[1] in METHODS:
        st.session_state["ex_method2"] = methods[1]
    for method, options in (inp.get("options") or {}).items():
        for name, value in options.items():
            if method in METHODS and name in METHODS[method].shown:
                st.session_state[option_key(method, name)] = value
    model = inp.get("model")
    st.session_state["ex_model_choice"] = "Local folder" if model else "Embedded SmolLM2-135M-Instruct"
    st.session_state["ex_model_path"] = model or ""
    st.session_state[STATE] = {"inputs": inp, "results": run.result.get("results", []),
                               "run_id": run.id}
    st.info(f"Reopened run {run.id} from History ({run.when}).")


def _check_prompt(prompt: str) -> None:
    if not prompt.strip():
        raise WhylmError("prompt is empty: type a prompt to explain")


def estimate(spec: str | None, prompt: str, target: str | None, chat: bool, method: str, sources: str,
             max_new_tokens: int, options: dict[str, Any] | None = None,
             context: dict[str, Any] | None = None) -> Any:
    """The cost of one run before it starts (:func:`explain.estimate_cost`); ``context`` holds
    ``context``/``top_k``/``screen``. Returns: a ``Cost``."""
    from explain import estimate_cost

    _check_prompt(prompt)
    return estimate_cost(load_model(spec), prompt, target, method=method, sources=sources, chat=chat,
                         max_new_tokens=max_new_tokens, **_for(method, context), **(options or {}))


def _for(method: str, context: dict[str, Any] | None) -> dict[str, Any]:
    """The context/top_k/screen arguments that apply to ``method`` (top_k only to ablation)."""
    ctx = dict(context or {})
    if method != "ablation" or ctx.get("top_k") is None:
        ctx.pop("top_k", None)
        ctx.pop("screen", None)
    return ctx


def _run(spec: str | None, prompt: str, target: str | None, chat: bool, methods: list[str],
         max_new_tokens: int, sources: str = "tokens", max_seconds: float | None = None,
         options: dict[str, dict[str, Any]] | None = None,
         context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Load the model, state each method's estimated cost, refuse one over the budget, and compute
    one attribution per method (with its ``options[method]``), with a progress bar."""
    from explain import attribute, check_budget

    _check_prompt(prompt)
    options = options or {}
    with progress_bar(f"Loading {model_label(spec)}…") as bar:
        lm = load_model(spec)
        costs = [estimate(spec, prompt, target, chat, m, sources, max_new_tokens, options.get(m), context)
                 for m in methods]
        for cost in costs:
            st.info(md_escape(f"Estimate: {cost.summary()}"))
            check_budget(cost, max_seconds)
        results = []
        for i, method in enumerate(methods):
            bar.progress(0.1 + 0.9 * i / len(methods),
                         text=f"Running {method} ({i + 1}/{len(methods)}), estimated "
                              f"{costs[i].seconds:.0f} s…")
            res = attribute(lm, prompt, target=target, method=method, chat=chat,
                            max_new_tokens=max_new_tokens, progress=False, sources=sources,
                            max_seconds=max_seconds, **_for(method, context), **options.get(method, {}))
            results.append(res.to_dict())
    return results


def render() -> None:
    """Draw the Explain page."""
    st.title("Explain")
    st.caption("Which prompt tokens drove each token of the answer: attribution on a white-box model.")
    _apply_reopen()
    notes = method_notes()
    names = list(notes)

    saved = st.session_state.get(STATE, {}).get("inputs", {})
    spec = model_picker("ex", default=saved.get("model"))
    context_text = st.text_area("Context (optional)", key="ex_context", height=110,
                                placeholder="a retrieved passage; the prompt below is then the question",
                                help="Only the context is split into sources; the question stays one "
                                     "source, shown apart from the ranking.")
    prompt = st.text_area("Prompt" + (" (the question)" if context_text.strip() else ""), key="ex_prompt",
                          height=110, placeholder="The capital of France is")
    c1, c2 = st.columns([1, 3])
    chat = c1.toggle("Chat prompt", key="ex_chat",
                     help="Apply the model's chat template; only your text is attributed.")
    target = c2.text_input("Target (optional)", key="ex_target",
                           placeholder="leave empty to explain the model's own greedy answer")
    c5, c6 = st.columns([1, 1])
    if st.session_state.get("ex_sources") not in SOURCES:
        st.session_state["ex_sources"] = "tokens"
    sources = c5.selectbox("Attribute to", list(SOURCES), key="ex_sources",
                           help="Granularity of the features; long prompts: sentences.")
    c5.caption(SOURCES[sources])
    if st.session_state.get("ex_top_k") not in EXACT_CHOICES:
        st.session_state["ex_top_k"] = "auto"
    choice = c5.selectbox("Exact part", EXACT_CHOICES, key="ex_top_k",
                          help="auto: over long prompts with word/sentence/paragraph sources, a screen "
                               f"ranks every source and exact leave-one-out runs for the {AUTO_TOP_K} best; "
                               "all: every source exact. Only for the ablation method.")
    first = default_screen(spec or EMBEDDED_NAME)
    screens = [first, *(name for name in SCREENS if name != first)]  # the registry's, the model's default first
    screen = c5.selectbox("Screen", screens, key="ex_screen",
                          help="How the sources are ranked before the exact part (top_k runs).")
    st.session_state.setdefault("ex_max_seconds", int(DEFAULT_MAX_SECONDS))
    max_seconds = c6.number_input("Time budget (s)", min_value=1, max_value=24 * 3600, step=60,
                                  key="ex_max_seconds",
                                  help="A run estimated to take longer is refused, with a cheaper choice.")
    c3, c4 = st.columns(2)
    if st.session_state.get("ex_method") not in names:
        st.session_state.pop("ex_method", None)
    method = c3.selectbox("Method", names, key="ex_method")
    c3.caption(notes[method])
    options = {method: method_options(c3, method)}
    compare = c4.toggle("Compare with a second method", key="ex_compare")
    method2 = None
    if compare:
        if st.session_state.get("ex_method2") not in names:
            st.session_state["ex_method2"] = COMPARE_DEFAULT
        method2 = c4.selectbox("Second method", names, key="ex_method2")
        c4.caption(notes[method2])
        if method2 != method:
            options[method2] = method_options(c4, method2)
    context = {"context": context_text if context_text.strip() else None, "screen": screen,
               "top_k": exact_top_k(choice, method, sources, len(context_text) + len(prompt))}
    st.session_state.setdefault("ex_max_new", 32)
    max_new = st.slider("Max new tokens (when generating)", 1, 128, key="ex_max_new")

    b1, b2 = st.columns([1, 1])
    if b2.button("Estimate cost", key="ex_estimate"):
        cost = run_safely("Estimate", estimate, spec, prompt, target or None, chat, method, sources, max_new,
                          options[method], context)
        if cost is not None:
            over = cost.seconds > float(max_seconds)
            (st.warning if over else st.info)(md_escape(
                f"Estimate: {cost.summary()}" + (f" — over the budget: {cost.cheaper}" if over else "")))
    if b1.button("Explain", type="primary", key="ex_run"):
        methods = [method] + ([method2] if compare and method2 and method2 != method else [])
        options = {m: options[m] for m in methods}
        results = run_safely("Explain", _run, spec, prompt, target or None, chat, methods, max_new,
                             sources, float(max_seconds), options, context)
        if results is not None:
            inputs = {"model": spec, "prompt": prompt, "target": target or None, "chat": chat,
                      "methods": methods, "max_new_tokens": max_new, "sources": sources,
                      "options": options, "context": context["context"], "top_k": choice}
            run_id = save_run(KIND, inputs, {"results": results}, model=model_label(spec),
                              method=" vs ".join(methods), title=prompt)
            st.session_state[STATE] = {"inputs": inputs, "results": results, "run_id": run_id}

    state = st.session_state.get(STATE)
    if state and state.get("results"):
        run_safely("Showing the result", _show, state)


def _from_dict(d: dict[str, Any]) -> Any:
    from explain.result import AttributionResult

    return AttributionResult.from_dict(d)


def _show(state: dict[str, Any]) -> None:
    """Show the stored result(s): highlights, heatmap, drill-down, comparison, download."""
    results = [_from_dict(d) for d in state["results"]]
    res = results[0]
    st.divider()
    run_id = state.get("run_id")
    st.subheader("Result" + (f" · run {run_id}" if run_id else ""))
    inp = state.get("inputs", {})
    kind = str(res.info.get("sources", "tokens"))
    took = res.info.get("seconds")
    estimated = res.info.get("estimated_seconds")
    timing = "" if took is None else f" · {float(took):.1f} s" + (
        "" if estimated is None else f" (estimated {float(estimated):.1f} s)")
    st.caption(f"Model: {md_escape(model_label(inp.get('model')))} · method: {md_escape(res.method)} · "
               f"{len(res.input_tokens)} prompt {md_escape(kind)} × {len(res.output_tokens)} answer tokens"
               + timing)
    exact = res.exact
    if exact is not None:
        st.caption(f"Exact leave-one-out for {int(exact.sum())} of {len(exact)} {md_escape(kind)} "
                   f"(the {md_escape(str(res.info.get('screen')))} screen's top {res.info.get('top_k')}); "
                   "the others hold the screen's estimate, marked ≈ and grey.")
    question = res.info.get("question")
    if isinstance(question, dict):
        st.caption(f"The question itself (kept apart from the ranking): {float(question['value']):+.3f} nats.")
    from explain.plots import highlight_html

    m = len(res.output_tokens)
    lp = [float(x) for x in res.target_logprobs]
    show_html(highlight_html(
        res.output_tokens, [0.0] * m, title="Answer",
        tooltips=[f"log-prob {x:.3f}" for x in lp],
    ))
    if kind != "tokens":
        # the prompt as written, each source highlighted, the ranking beside it (escaped by html())
        show_html(res.html())
    else:
        show_html(highlight_html(res.input_tokens, res.seq_attr,
                                 title="Prompt, coloured by attribution to the whole answer "
                                       "(red pushes the answer up, blue down)"))

    fig = clickable(res.figure())
    event = st.plotly_chart(fig, key="ex_heatmap", on_select="rerun", selection_mode="points",
                            width="stretch", config={"displaylogo": False})
    _drill_down(res, event)

    if len(results) > 1:
        _compare(results[0], results[1])

    payload = results[0].to_json() if len(results) == 1 else json.dumps(
        {"results": [r.to_dict() for r in results]}, ensure_ascii=False)
    json_download("Download result (JSON)", payload, "whylm-explain.json", key="ex_download")


def clickable(fig: Any) -> Any:
    """Overlay the heatmap with invisible, hoverable markers (one per cell) so that a click selects
    a cell: Streamlit reports clicks on scatter points, not on heatmap cells."""
    import plotly.graph_objects as go

    heat = fig.data[0]
    z = heat.z
    rows, cols = len(z), len(z[0]) if len(z) else 0
    xs = [c for r in range(rows) for c in range(cols)]
    ys = [r for r in range(rows) for c in range(cols)]
    custom = [heat.customdata[r][c] for r, c in zip(ys, xs)]
    values = [float(z[r][c]) for r, c in zip(ys, xs)]
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", showlegend=False, customdata=custom, text=values,
        marker={"size": 18, "opacity": 0.0, "symbol": "square"},
        hovertemplate="%{customdata}<br>%{text:.4f}<extra></extra>",
        selected={"marker": {"opacity": 0.0}}, unselected={"marker": {"opacity": 0.0}},
    ))
    fig.update_layout(clickmode="event+select", dragmode=False)
    return fig


def _drill_down(res: Any, event: Any) -> None:
    """Select an output token (from the list or a click on the heatmap) and show its row."""
    from explain.plots import highlight_html

    m = len(res.output_tokens)
    labels = [f"{i}: {t!r}" for i, t in enumerate(res.output_tokens)]
    clicked = _clicked_row(event, m)
    if clicked is not None and st.session_state.get("_ex_last_click") != clicked:
        st.session_state["_ex_last_click"] = clicked
        st.session_state["ex_token"] = labels[clicked]
    if st.session_state.get("ex_token") not in labels:
        st.session_state["ex_token"] = labels[0]
    label = st.selectbox("Drill down: output token (or click a heatmap row)", labels, key="ex_token")
    i = labels.index(label)
    row = [float(x) for x in res.token_attr[i]]
    if res.info.get("sources", "tokens") != "tokens":
        show_html(res.html(row=i))
    else:
        show_html(highlight_html(
            res.input_tokens, row,
            title=f"Prompt, coloured by attribution to answer token {i}",
        ))
    show_html(highlight_html(res.output_tokens, [1.0 if k == i else 0.0 for k in range(m)],
                             mode="risk", title="Selected answer token",
                             tooltips=[f"log-prob {float(x):.3f}" for x in res.target_logprobs]))
    top = sorted(range(len(row)), key=lambda k: -abs(row[k]))[:10]
    st.dataframe(
        {"position": top, "prompt token": [repr(res.input_tokens[k]) for k in top],
         "attribution": [row[k] for k in top]},
        hide_index=True, width="stretch",
    )


def _clicked_row(event: Any, m: int) -> int | None:
    """The output-token row of a click on the heatmap, if any."""
    try:
        points = event["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    for p in points or []:
        y = p.get("y") if isinstance(p, dict) else None
        if isinstance(y, (int, float)) and 0 <= int(y) < m:
            return int(y)
        idx = p.get("point_index") if isinstance(p, dict) else None
        if isinstance(idx, (list, tuple)) and idx and 0 <= int(idx[0]) < m:
            return int(idx[0])
    return None


def _compare(a: Any, b: Any) -> None:
    """Two methods side by side: prompt highlights and heatmaps."""
    from explain.plots import highlight_html

    st.subheader("Comparison")
    cols = st.columns(2)
    for k, (col, res) in enumerate(zip(cols, (a, b))):
        with col:
            escaped_text(res.method, label="Method")
            show_html(highlight_html(res.input_tokens, res.seq_attr,
                                     title="Attribution to the whole answer"))
            st.plotly_chart(res.figure(), key=f"ex_cmp_{k}", width="stretch")


if __name__ == "__main__":
    render()
