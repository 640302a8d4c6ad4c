"""`AttributionResult`: what every attribution method returns, and its converters.

Layout follows captum: ``token_attr`` is (m, n), one row per output (target) token, one column
per input feature (a prompt token, or a named segment). ``seq_attr`` (n,) attributes the whole
target's log-probability.

Examples:
    >>> r = AttributionResult(["a", "b"], ["c"], np.array([[0.5, -0.1]]), np.array([0.5, -0.1]),
    ...                       np.array([-1.2]), method="ablation")
    >>> AttributionResult.from_json(r.to_json()).token_attr.tolist()
    [[0.5, -0.1]]
"""

from __future__ import annotations

import html as _html
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from explain.plots import heatmap, highlight_html
from explain.serialize import Result, from_jsonable_array, jsonable


@dataclass
class AttributionResult(Result):
    """Attributions of ``output_tokens`` to ``input_tokens``.

    Attributes:
        input_tokens: readable strings, one per input feature (a token, or a source's text or name).
        output_tokens: readable strings of the explained (target or generated) tokens.
        token_attr: float array (m, n): output token x input feature.
        seq_attr: float array (n,): attribution to the log-probability of the whole target.
        target_logprobs: float array (m,): log-probability of each target token, unperturbed.
        method: the method name (see :data:`explain.attribution.METHODS`).
        model: the model's name.
        prompt: the prompt as given (a string, or a dict of named segments).
        target: the explained text.
        info: method settings and cost (seconds, forward passes, token positions computed).
    """

    input_tokens: list[str]
    output_tokens: list[str]
    token_attr: np.ndarray
    seq_attr: np.ndarray
    target_logprobs: np.ndarray
    method: str = ""
    model: str = ""
    prompt: Any = ""
    target: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.token_attr = np.asarray(self.token_attr, dtype=np.float64)
        self.seq_attr = np.asarray(self.seq_attr, dtype=np.float64)
        self.target_logprobs = np.asarray(self.target_logprobs, dtype=np.float64)
        m, n = len(self.output_tokens), len(self.input_tokens)
        if self.token_attr.shape != (m, n):
            raise ValueError(f"token_attr has shape {self.token_attr.shape}, expected ({m}, {n})")
        if self.seq_attr.shape != (n,):
            raise ValueError(f"seq_attr has shape {self.seq_attr.shape}, expected ({n},)")

    # ------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become None, through :func:`explain.serialize.jsonable`).

        Returns:
            the dict; :meth:`from_dict` rebuilds an equal result.

        Examples:
            >>> sorted(AttributionResult(["a"], ["b"], [[1.0]], [1.0], [0.0]).to_dict())[:3]
            ['info', 'input_tokens', 'method']
        """
        return jsonable({
            "input_tokens": list(self.input_tokens),
            "output_tokens": list(self.output_tokens),
            "token_attr": self.token_attr,
            "seq_attr": self.seq_attr,
            "target_logprobs": self.target_logprobs,
            "method": self.method,
            "model": self.model,
            "prompt": self.prompt,
            "target": self.target,
            "info": self.info,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AttributionResult":
        """Rebuild a result from :meth:`to_dict` output. Returns: an :class:`AttributionResult`.

        Examples:
            >>> r = AttributionResult(["a"], ["b"], [[float("nan")]], [1.0], [0.0])
            >>> AttributionResult.from_dict(r.to_dict()).token_attr.tolist()
            [[nan]]
        """
        n = len(d["input_tokens"])
        return cls(
            input_tokens=list(d["input_tokens"]),
            output_tokens=list(d["output_tokens"]),
            token_attr=from_jsonable_array(d["token_attr"]).reshape(len(d["output_tokens"]), n),
            seq_attr=from_jsonable_array(d["seq_attr"]),
            target_logprobs=from_jsonable_array(d["target_logprobs"]),
            method=d.get("method", ""),
            model=d.get("model", ""),
            prompt=d.get("prompt", ""),
            target=d.get("target", ""),
            info=dict(d.get("info", {})),
        )

    def summary(self, k: int = 3) -> str:
        """A few lines: method, model, sizes, cost, and the top ``k`` features for the whole target.

        Returns:
            the text.

        Examples:
            >>> print(AttributionResult(["a", "b"], ["c"], [[0.5, -0.1]], [0.5, -0.1], [-1.2],
            ...                         method="ablation", model="m").summary(k=1))
            ablation attribution on m: 1 output token(s) x 2 input feature(s)
            target log-prob -1.200; top features: 'a' +0.500
        """
        kind = self.info.get("sources", "tokens")
        what = "input feature(s)" if kind == "tokens" else f"{kind}"
        head = f"{self.method} attribution on {self.model}: {len(self.output_tokens)} output token(s) x " \
               f"{len(self.input_tokens)} {what}"
        if "seconds" in self.info:
            head += f", {self.info['seconds']:.2f} s"
        exact = self.exact
        values = np.nan_to_num(self.seq_attr, nan=-np.inf)
        order = np.argsort(-values)[:k]
        tops = ", ".join(f"{self.input_tokens[i]!r} {self.seq_attr[i]:+.3f}"
                         + ("" if exact is None or exact[i] else " (estimated)") for i in order)
        text = f"{head}\ntarget log-prob {float(np.sum(self.target_logprobs)):.3f}; top features: {tops}"
        if exact is not None:
            text += (f"\nexact leave-one-out for {int(exact.sum())} of {len(exact)} {what} "
                     f"(the {self.info.get('screen', 'screen')} screen's top {self.info.get('top_k', '?')}); "
                     "the others hold the screen's estimate")
        question = self.info.get("question")
        if isinstance(question, Mapping):
            text += f"\nquestion (kept apart from the ranking): {float(question.get('value', np.nan)):+.3f}"
        return text

    @property
    def exact(self) -> np.ndarray | None:
        """Bool (n,): which features hold exact leave-one-out (``top_k`` runs), else ``None``.

        Examples:
            >>> AttributionResult(["a", "b"], ["c"], [[1.0, 0.1]], [1.0, 0.1], [0.0],
            ...                   info={"exact": [True, False]}).exact.tolist()
            [True, False]
        """
        flags = self.info.get("exact")
        return None if flags is None else np.asarray(flags, dtype=bool)

    # ------------------------------------------------------------ converters
    def to_captum(self):
        """A ``captum.attr.LLMAttributionResult`` with the same numbers (torch tensors).

        Examples:
            >>> r = AttributionResult(["a"], ["b"], [[1.0]], [1.0], [0.0])
            >>> float(r.to_captum().seq_attr[0])
            1.0
        """
        import torch
        from captum.attr import LLMAttributionResult

        return LLMAttributionResult(
            seq_attr=torch.tensor(self.seq_attr, dtype=torch.float32),
            token_attr=torch.tensor(self.token_attr, dtype=torch.float32),
            input_tokens=list(self.input_tokens),
            output_tokens=list(self.output_tokens),
        )

    def to_shap(self):
        """A ``shap.Explanation`` in shap's teacher-forcing layout: values (n inputs, m outputs).

        Examples:
            >>> AttributionResult(["a", "b"], ["c"], [[1.0, 2.0]], [1.0, 2.0], [0.0]).to_shap().values.shape
            (2, 1)
        """
        import shap

        return shap.Explanation(
            values=self.token_attr.T.copy(),
            data=np.array(self.input_tokens, dtype=object),
            feature_names=list(self.input_tokens),
            output_names=list(self.output_tokens),
        )

    def to_inseq_dict(self) -> dict[str, Any]:
        """A plain dict in inseq's decoder-only layout (not an inseq object: inseq is not a
        dependency). ``target_attributions`` is (n + m, m), transposed relative to ours, with rows
        for the prompt then the generated tokens (None where a token comes after the step, or is
        not attributed by this method).

        Returns:
            ``{"source": [...], "target": [...], "target_attributions": [[...]], "step_scores": {...}}``.

        Examples:
            >>> AttributionResult(["a"], ["b"], [[1.0]], [1.0], [0.0]).to_inseq_dict()["target_attributions"]
            [[1.0], [None]]
        """
        n, m = len(self.input_tokens), len(self.output_tokens)
        mat = np.full((n + m, m), np.nan)
        mat[:n, :] = self.token_attr.T
        return jsonable({
            "source": list(self.input_tokens),
            "target": list(self.input_tokens) + list(self.output_tokens),
            "target_attributions": mat,
            "step_scores": {"probability": np.exp(self.target_logprobs)},
            "attribution_method": self.method,
        })

    # ------------------------------------------------------------- showing
    def figure(self, title: str | None = None):
        """A plotly heatmap, output tokens (rows) x input features (columns).

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        exact = self.exact
        names = list(self.input_tokens)
        default = f"{self.method} attribution: output token x input token"
        if exact is not None:  # estimated features are marked, on the axis and in the title
            names = [t if e else f"≈ {t}" for t, e in zip(names, exact)]
            default += " (≈: the screen's estimate, not exact)"
        return heatmap(self.token_attr, names, self.output_tokens, title=title or default)

    def html(self, row: int | None = None) -> str:
        """Input features highlighted by attribution (``row=None``: to the whole target), escaped.

        Over sources (sentences, ...) the prompt is shown as written, each source highlighted,
        with the ranking of the sources beside it.

        Returns:
            an HTML fragment.

        Examples:
            >>> r = AttributionResult(["<b>"], ["x"], [[1.0]], [1.0], [0.0])
            >>> "&lt;b&gt;" in r.html() and "<b>" not in r.html()
            True
        """
        values = self.seq_attr if row is None else self.token_attr[row]
        what = "the whole target" if row is None else f"output token {row}: {self.output_tokens[row]!r}"
        spans = self.info.get("source_spans") or []
        text = self.info.get("context") if isinstance(self.info.get("context"), str) else self.prompt
        if isinstance(text, str) and len(spans) == len(self.input_tokens):
            return self._sources_html(values, spans, f"Attribution to {what}", text)
        return highlight_html(self.input_tokens, values, title=f"Attribution to {what}")

    def _sources_html(self, values: np.ndarray, spans: list, title: str, text: str) -> str:
        exact = self.exact
        est = (lambda i: exact is not None and not exact[i])  # noqa: E731
        pieces, tips, shown, at = [], [], [], []
        pos = 0
        for i, (a, b) in enumerate(spans):
            if a > pos:  # text between sources (fixed context) is shown uncoloured
                pieces.append(text[pos:a])
                shown.append(np.nan)
                tips.append("not a source")
            rank = int((np.nan_to_num(values, nan=-np.inf) > values[i]).sum()) + 1
            pieces.append(text[a:b])
            shown.append(values[i])
            tips.append(f"#{rank}: {values[i]:+.4f}" + (" (screen estimate)" if est(i) else " (exact)" if exact is not None else ""))
            at.append(i)
            pos = b
        if pos < len(text):
            pieces.append(text[pos:])
            shown.append(np.nan)
            tips.append("not a source")
        body = highlight_html(pieces, np.nan_to_num(shown, nan=0.0), title=title, tooltips=tips)
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf))[:min(10, len(self.input_tokens))]
        rows = "".join(
            f"<tr style='{'color:#888;font-style:italic' if est(i) else ''}'><td>{k + 1}</td>"
            f"<td style='text-align:right'>{'≈' if est(i) else ''}{values[i]:+.3f}</td>"
            f"<td>{_html.escape(self.input_tokens[i])}</td></tr>" for k, i in enumerate(order))
        question = self.info.get("question")
        if isinstance(question, Mapping):
            rows += ("<tr style='border-top:1px solid #ccc'><td>Q</td><td style='text-align:right'>"
                     f"{float(question.get('value', np.nan)):+.3f}</td><td>question (kept apart): "
                     f"{_html.escape(str(question.get('text', '')))}</td></tr>")
        note = ("" if exact is None else "<div style='font-size:85%;color:#666'>exact leave-one-out for "
                f"{int(exact.sum())} of {len(exact)}; ≈ grey italics: the screen's estimate</div>")
        ranking = (
            "<table class='whylm-ranking' style='font-size:90%;border-collapse:collapse'>"
            "<tr><th>#</th><th>attribution</th><th>source</th></tr>" + rows + "</table>" + note
        )
        return ("<div style='display:flex;gap:16px;align-items:flex-start'>"
                f"<div style='flex:3'>{body}</div><div style='flex:2'>{ranking}</div></div>")

    def _repr_html_(self) -> str:
        return f"<pre class='whylm-summary'>{_html.escape(self.summary())}</pre>" + self.html()

    def top_features(self, k: int = 5, row: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` input features with the largest attribution (to ``row``, or the whole target).

        Returns:
            a list of (token, value), largest first.
        """
        values = self.seq_attr if row is None else self.token_attr[row]
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf))[:k]
        return [(self.input_tokens[i], float(values[i])) for i in order]
