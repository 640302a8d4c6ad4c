"""The result of :func:`explain.signals`: :class:`SignalReport`, with its sentences.

Examples:
    >>> import numpy as np
    >>> rep = SignalReport(prompt="Q?", response="A.", tokens=["A", "."], token_ids=[5, 6],
    ...                    token_logprob=np.log(np.array([0.5, 0.9], dtype=np.float32)),
    ...                    token_entropy=np.ones(2, np.float32), token_margin=np.ones(2, np.float32),
    ...                    scores={"mean_neg_logprob": 0.4}, sentences=[SentenceSignals("A.", 0, 2)],
    ...                    token_signals={"neg_logprob": np.array([0.69, 0.1])})
    >>> SignalReport.from_json(rep.to_json()).to_dict() == rep.to_dict()
    True
    >>> "&lt;b&gt;" in SignalReport.from_dict({**rep.to_dict(), "tokens": ["<b>", "."]}).html()
    True
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from explain.errors import ExplainError
from explain.plots import axis_labels, escape, highlight_html
from explain.serialize import Result, from_jsonable_array, jsonable
from explain.signals.calibration import DECISION_THRESHOLD, VERDICT_THRESHOLDS
from explain.signals.evidence import SCORE_DOCS as EVIDENCE_DOCS
from explain.signals.evidence import Evidence, words_note
from explain.signals.registry import SIGNALS, score_docs

@dataclass
class SentenceSignals:
    """Token signals rolled up over one sentence of the answer.

    Attributes:
        text: the sentence as shown (tokens joined).
        start, end: the half-open token span in :attr:`SignalReport.tokens`.
        scores: the sentence's scores, same names and orientation as the report's ``scores``.
        risk: calibrated risk of the sentence (the answer's calibration applied to its scores), or None.
        verdict: the verdict of ``risk``, or None.
        evidence: the context sentences that support it, best first (:class:`Evidence`); empty when
            nothing in the context supports it or no evidence was computed
            (``SignalReport.context_sentences`` is then empty too).
        conflicts: the context sentence that says the same with other names or numbers (an
            :class:`Evidence` with ``basis="conflict"`` and the sentence's differing words in
            ``differs``), or empty.
    """

    text: str
    start: int
    end: int
    scores: dict[str, float] = field(default_factory=dict)
    risk: float | None = None
    verdict: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    conflicts: list[Evidence] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict."""
        return jsonable({"text": self.text, "start": self.start, "end": self.end, "scores": self.scores,
                         "risk": self.risk, "verdict": self.verdict,
                         "evidence": [e.to_dict() for e in self.evidence],
                         "conflicts": [e.to_dict() for e in self.conflicts]})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SentenceSignals":
        """Returns: the sentence written by :meth:`to_dict`."""
        return cls(str(d["text"]), int(d["start"]), int(d["end"]), _nums(d.get("scores")),
                   d.get("risk"), d.get("verdict"), [Evidence.from_dict(e) for e in d.get("evidence") or []],
                   [Evidence.from_dict(e) for e in d.get("conflicts") or []])

    def evidence_text(self) -> str:
        """The sentence's best evidence in words: a conflict first, support read with the verdict.

        A sentence judged likely hallucinated never reads as supported: its closest evidence is
        called related, not support.

        Returns:
            one line.

        Examples:
            >>> SentenceSignals("A.", 0, 2, evidence=[Evidence(1, "A is so.", 5, 14, 2.5)]).evidence_text()
            'best evidence: context sentence 2, "A is so." (2.50 nats)'
            >>> SentenceSignals("B.", 0, 2).evidence_text()
            'nothing in the context supports this'
            >>> SentenceSignals("Paris.", 0, 2, evidence=[Evidence(0, "Paris is the capital.", 0, 21, 0.1, "words")]).evidence_text()
            'best evidence: context sentence 1, "Paris is the capital." (states it in the same words; removing it changes the answer little (0.10 nats): the model may know it already)'
            >>> SentenceSignals("In 1847.", 0, 2, conflicts=[Evidence(0, "Built in 1874.", 0, 14, 1.0, "conflict", ["1847"])]).evidence_text()
            'conflicts with context sentence 1, "Built in 1874." (it does not say 1847)'
            >>> SentenceSignals("X.", 0, 2, verdict="likely hallucinated", evidence=[Evidence(1, "A is so.", 5, 14, 0.6)]).evidence_text()
            'not supported by the context (closest: context sentence 2, "A is so.", 0.60 nats)'
        """
        if self.conflicts:
            c = self.conflicts[0]
            return (f'conflicts with context sentence {c.source + 1}, "{c.text}" (it does not say '
                    f'{", ".join(c.differs) or "the same"})')
        if not self.evidence:
            return "nothing in the context supports this"
        best = self.evidence[0]
        if self.verdict == "likely hallucinated":
            return (f'not supported by the context (closest: context sentence {best.source + 1}, '
                    f'"{best.text}", {best.score:.2f} nats)')
        if best.basis == "words":
            return f'best evidence: context sentence {best.source + 1}, "{best.text}" ({words_note(best.score)})'
        return f'best evidence: context sentence {best.source + 1}, "{best.text}" ({best.score:.2f} nats)'


@dataclass
class SignalReport(Result):
    """Hallucination signals for one answer: per token, per sentence and per answer.

    Attributes:
        prompt, context, response: the inputs (``response`` as scored, generated or given).
        generated: whether the response was generated here (greedy) or given.
        tokens, token_ids: readable response tokens and their ids.
        token_logprob: (m,) log p(token) from the generation or scoring pass (with the context).
        token_entropy: (m,) entropy (nats) of the next-token distribution at each token.
        token_margin: (m,) top-1 minus top-2 probability at each token.
        token_context_contrast: (m,) log p(token | context) - log p(token | no context), or None.
        token_context_share: (m,) share in [0, 1] of |attribution| going to the context, or None.
        token_signals: every registered token-level signal that applied, name -> (m,) values
            (higher = more suspicious; see ``explain.signals.SIGNALS``).
        scores: sequence scores, higher = more likely hallucinated; see :data:`SCORE_DOCS`.
        risk: calibrated probability in [0, 1] that the answer is not supported, or None.
        verdict: ``"supported"`` / ``"uncertain"`` / ``"likely hallucinated"`` (thresholds
            :data:`~explain.signals.calibration.VERDICT_THRESHOLDS`), or None.
        risk_note: why ``risk`` is None, or which calibration produced it.
        token_risk_calibrated: (m,) the calibration applied to each token alone, or None.
        sentences: :class:`SentenceSignals`, one per sentence of the response, each with its evidence.
        context_sentences: the context split into sentences as ``attribute(sources="sentences")``
            splits it (``Evidence.source`` indexes it); empty without a context or with ``evidence=False``.
        token_evidence: (context sentences, m) nats: ``log p(token | context) - log p(token | context
            without that sentence)``, exact leave-one-out per answer token, or None.
        samples, sample_clusters: sampled (or given) answers and a meaning-cluster label per sample.
        cost: ``seconds``, ``forward_passes``, ``embedded_texts``, ``judge_calls``.
        notes: fallbacks taken, in words.
        model: the model's name.
    """

    prompt: str
    response: str
    tokens: list[str]
    token_ids: list[int]
    token_logprob: np.ndarray
    token_entropy: np.ndarray
    token_margin: np.ndarray
    scores: dict[str, float]
    sentences: list[SentenceSignals]
    context: str | None = None
    generated: bool = False
    token_context_contrast: np.ndarray | None = None
    token_context_share: np.ndarray | None = None
    token_signals: dict[str, np.ndarray] = field(default_factory=dict)
    risk: float | None = None
    verdict: str | None = None
    risk_note: str = ""
    token_risk_calibrated: np.ndarray | None = None
    samples: list[str] = field(default_factory=list)
    sample_clusters: list[int] = field(default_factory=list)
    cost: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model: str = ""
    context_sentences: list[str] = field(default_factory=list)
    token_evidence: np.ndarray | None = None

    _F32 = ("token_logprob", "token_entropy", "token_margin", "token_context_contrast", "token_context_share")

    # ------------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict (arrays as lists, NaN as None); inverse of :meth:`from_dict`.

        Examples:
            >>> _demo().to_dict()["token_signals"]
            {'neg_logprob': [0.69, 0.1]}
        """
        docs = {**score_docs(), **EVIDENCE_DOCS}
        out: dict[str, Any] = {
            "prompt": self.prompt, "context": self.context, "response": self.response,
            "generated": self.generated, "model": self.model, "context_sentences": list(self.context_sentences),
            "tokens": list(self.tokens),
            "token_ids": [int(i) for i in self.token_ids],
        }
        for name in self._F32 + ("token_risk_calibrated", "token_evidence"):
            out[name] = getattr(self, name)
        out.update(
            token_signals=self.token_signals, scores=self.scores, risk=self.risk, verdict=self.verdict,
            risk_note=self.risk_note, sentences=[s.to_dict() for s in self.sentences], samples=list(self.samples),
            sample_clusters=[int(c) for c in self.sample_clusters], cost=self.cost, notes=list(self.notes),
            score_docs={k: docs[k] for k in self.scores if k in docs},
            signal_docs={k: SIGNALS[k].doc for k in self.token_signals if k in SIGNALS},
        )
        return jsonable(out)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SignalReport":
        """Rebuild a report from :meth:`to_dict` output (signals need not be registered here).

        Returns:
            a :class:`SignalReport`.

        Examples:
            >>> SignalReport.from_dict(_demo().to_dict()).risk
            0.8
        """

        def arr(name: str, dtype: Any = np.float32) -> np.ndarray | None:
            value = d.get(name)
            return None if value is None else from_jsonable_array(value).astype(dtype)

        risk = d.get("risk")
        return cls(
            prompt=d["prompt"], context=d.get("context"), response=d["response"],
            generated=bool(d.get("generated", False)), model=d.get("model", ""),
            tokens=list(d["tokens"]), token_ids=[int(i) for i in d.get("token_ids", [])],
            token_logprob=arr("token_logprob"), token_entropy=arr("token_entropy"),
            token_margin=arr("token_margin"), token_context_contrast=arr("token_context_contrast"),
            token_context_share=arr("token_context_share"),
            token_signals={k: from_jsonable_array(v) for k, v in (d.get("token_signals") or {}).items()},
            scores=_nums(d.get("scores")), risk=None if risk is None else float(risk), verdict=d.get("verdict"),
            risk_note=str(d.get("risk_note", "")), token_risk_calibrated=arr("token_risk_calibrated", np.float64),
            sentences=[SentenceSignals.from_dict(s) for s in d.get("sentences", [])],
            samples=list(d.get("samples", [])), sample_clusters=[int(c) for c in d.get("sample_clusters", [])],
            cost=_nums(d.get("cost")), notes=list(d.get("notes", [])),
            context_sentences=[str(c) for c in d.get("context_sentences") or []],
            token_evidence=arr("token_evidence", np.float64),
        )

    def to_json(self, indent: int | None = 2) -> str:
        """Returns: :meth:`to_dict` as strict JSON text (no NaN)."""
        return super().to_json(indent=indent)

    # ------------------------------------------------------------------ reading
    def summary(self) -> str:
        """A few plain sentences for a report: the verdict and risk, the riskiest sentence, the scores.

        Returns:
            the text.

        Examples:
            >>> _demo().summary().splitlines()[0]
            'Verdict: likely hallucinated (risk 0.80 that the answer is not supported; supported below 0.3, likely hallucinated from 0.7).'
        """
        lo, hi = VERDICT_THRESHOLDS
        if self.risk is None:
            head = f"No calibrated verdict: {self.risk_note or 'no calibration'}."
        else:
            head = (f"Verdict: {self.verdict} (risk {self.risk:.2f} that the answer is not supported; "
                    f"supported below {lo}, likely hallucinated from {hi}).")
        lines = [head]
        risky = [s for s in self.sentences if s.risk is not None]
        if len(risky) > 1:
            worst = max(risky, key=lambda s: s.risk)
            lines.append(f"Riskiest sentence ({worst.risk:.2f}): \"{worst.text}\".")
        if self.context_sentences:
            for k, s in enumerate(self.sentences, 1):
                judged = "" if s.risk is None else f" ({s.verdict}, risk {s.risk:.2f})"
                lines.append(f"Sentence {k}{judged} \"{s.text}\": {s.evidence_text()}.")
        if self.scores:
            lines.append("Scores (higher = more suspicious): "
                         + ", ".join(f"{k} {v:.3g}" for k, v in self.scores.items()) + ".")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def token_risk(self) -> np.ndarray:
        """Per-token risk in [0, 1] on an absolute scale.

        Returns:
            the calibration applied to each token alone when the report is calibrated, else
            1 - p(token) (with the context when one was given); float array (m,).

        Examples:
            >>> _demo().token_risk().round(2).tolist()
            [0.5, 0.1]
        """
        if self.token_risk_calibrated is not None:
            return np.asarray(self.token_risk_calibrated, dtype=float)
        return 1.0 - np.exp(np.asarray(self.token_logprob, dtype=float))

    def views(self) -> list[str]:
        """Returns: the names :meth:`html` accepts for this report: ``"risk"`` then every token signal.

        Examples:
            >>> _demo().views()
            ['risk', 'neg_logprob']
        """
        return ["risk", *self.token_signals]

    def _tooltips(self) -> list[str]:
        tips = []
        risk = self.token_risk()
        for i in range(len(self.tokens)):
            parts = [f"risk = {risk[i]:.2f}" + ("" if self.token_risk_calibrated is not None else " (1 - p)")]
            parts += [f"{_label(k)} [{k}] = {v[i]:.3f}" for k, v in self.token_signals.items()]
            tips.append("; ".join(parts))
        return tips

    def token_html(self, signal: str = "risk") -> str:
        """The answer's tokens highlighted by one signal, every signal in each token's tooltip.

        Args:
            signal: ``"risk"`` (calibrated per-token risk, or 1 - p(token) without calibration, on
                the absolute scale [0, 1]) or any name in :attr:`token_signals` (drawn on the
                signal's registered absolute scale; ``"contrast"`` is an alias of ``"ungrounded"``).

        Returns:
            an escaped ``<div>`` string.

        Examples:
            >>> _demo().token_html("neg_logprob").count("whylm-tok")
            2
        """
        tips = self._tooltips()
        if signal == "risk":
            title = "risk per token (calibrated)" if self.token_risk_calibrated is not None else "1 - p(token)"
            return highlight_html(self.tokens, self.token_risk(), mode="risk", tooltips=tips, scale=1.0, title=title)
        if signal not in self.token_signals:
            if signal == "ungrounded":
                raise ExplainError("no context contrast in this report: call signals(..., context=...)")
            raise ExplainError(f"unknown signal '{signal}': use {', '.join(self.views())}")
        values = np.asarray(self.token_signals[signal], dtype=float)
        spec = SIGNALS.get(signal)
        diverging = bool(np.nanmin(values, initial=0.0) < 0) if values.size else False
        return highlight_html(self.tokens, values, mode="diverging" if diverging else "risk", tooltips=tips,
                              scale=spec.scale if spec else None, title=f"{_label(signal)} [{signal}]")

    def html(self, signal: str = "risk") -> str:
        """An HTML fragment: verdict, the answer highlighted by ``signal``, sentence table, scores.

        Args:
            signal: see :meth:`token_html`.

        Returns:
            an escaped ``<div>`` string safe to embed in a page.

        Examples:
            >>> "likely hallucinated</b>: risk 0.80" in _demo().html()
            True
        """
        body = self.token_html(signal)
        if self.risk is None:
            head = f"<p class='whylm-verdict'>No calibrated verdict: {escape(self.risk_note)}</p>"
        else:
            lo, hi = VERDICT_THRESHOLDS
            head = (f"<p class='whylm-verdict'><b>{escape(str(self.verdict))}</b>: risk {self.risk:.2f} "
                    f"(supported &lt; {lo}, likely hallucinated &ge; {hi})</p>")
        names = list(self.sentences[0].scores) if self.sentences else []
        with_evidence = bool(self.context_sentences)
        rows = "".join(
            f"<tr><td>{escape(s.text)}</td><td>{_fmt(s.risk)}</td><td>{escape(str(s.verdict or '—'))}</td>"
            + (f"<td>{escape(s.evidence_text())}</td>" if with_evidence else "")
            + "".join(f"<td>{_fmt(s.scores.get(k))}</td>" for k in names) + "</tr>"
            for s in self.sentences
        )
        th = ("<th>evidence</th>" if with_evidence else "") + "".join(f"<th>{escape(k)}</th>" for k in names)
        table = f'<table class="whylm-sentences"><tr><th>sentence</th><th>risk</th><th>verdict</th>{th}</tr>{rows}</table>'
        scores = "".join(f"<li>{escape(k)}: {_fmt(v)}</li>" for k, v in self.scores.items())
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (f'<div class="whylm-signals">{head}{body}{table}<ul class="whylm-scores">{scores}</ul>'
                + (f'<ul class="whylm-notes">{notes}</ul>' if notes else "") + "</div>")

    def figure(self) -> Any:
        """A plotly heatmap: one row per token signal (and the risk), one column per response token.

        Each row is drawn on its signal's absolute scale (:attr:`SignalSpec.scale`; the risk on
        [0, 1]), so the same value has the same colour in every answer; hovering shows the raw value.

        Returns:
            a ``plotly.graph_objects.Figure``.

        Examples:
            >>> _demo().figure().data[0].y
            ('risk', 'surprise (-log p)')
        """
        import plotly.graph_objects as go

        rows = [("risk", self.token_risk(), 1.0)]
        for name, values in self.token_signals.items():
            spec = SIGNALS.get(name)
            values = np.asarray(values, dtype=float)
            scale = spec.scale if spec and spec.scale else (float(np.nanmax(np.abs(values))) if values.size else 1.0)
            rows.append((name, values, scale or 1.0))
        raw = np.vstack([r for _, r, _ in rows]) if self.tokens else np.zeros((len(rows), 0))
        z = np.vstack([np.clip(r / s, 0.0, 1.0) for _, r, s in rows]) if self.tokens else raw
        xs = axis_labels(self.tokens)
        names = [escape(_label(n)) for n, _, _ in rows]
        fig = go.Figure(go.Heatmap(
            z=z, x=list(range(len(xs))), y=names, colorscale="Reds", zmin=0, zmax=1,
            customdata=[[f"{xs[c]}<br>{names[r]} = {raw[r, c]:.3f}" for c in range(len(xs))]
                        for r in range(len(names))],
            hovertemplate="%{customdata}<extra></extra>", colorbar={"title": {"text": "share of full scale"}},
        ))
        title = ("Hallucination signals" if self.risk is None
                 else f"Hallucination signals: {self.verdict} (risk {self.risk:.2f})")
        fig.update_layout(
            title={"text": escape(title)},
            xaxis={"tickmode": "array", "tickvals": list(range(len(xs))), "ticktext": xs, "tickangle": -45},
            yaxis={"autorange": "reversed"}, height=140 + 34 * len(rows),
            margin={"l": 10, "r": 10, "t": 50, "b": 10},
        )
        return fig

    def _repr_html_(self) -> str:
        return self.html()


def _demo() -> SignalReport:
    """A two-token report for the docstring examples."""
    return SignalReport(prompt="Q?", response="A.", tokens=["A", "."], token_ids=[5, 6],
                        token_logprob=np.log(np.array([0.5, 0.9], dtype=np.float32)),
                        token_entropy=np.ones(2, np.float32), token_margin=np.ones(2, np.float32),
                        scores={"mean_neg_logprob": 0.4}, sentences=[SentenceSignals("A.", 0, 2, risk=0.8,
                                                                                     verdict="likely hallucinated")],
                        token_signals={"neg_logprob": np.array([0.69, 0.1])}, risk=0.8, verdict="likely hallucinated")


def _label(name: str) -> str:
    if name == "risk":
        return "risk"
    spec = SIGNALS.get(name)
    return spec.label if spec else name.replace("_", " ")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return _html.escape(str(value))
    return f"{f:.3f}" if math.isfinite(f) else "—"


def _nums(x: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: (math.nan if v is None else v) for k, v in (x or {}).items()}


__all__ = ["DECISION_THRESHOLD", "SentenceSignals", "SignalReport"]
