"""Hallucination signals: which tokens and sentences of an answer are likely made up.

:func:`signals` scores one answer — generated here, or given as text generated elsewhere — with

- token signals from the same forward pass that generated or scored the answer: log-probability,
  entropy of the next-token distribution, and margin (top-1 minus top-2 probability);
- with ``context`` (a passage the answer should rest on): the per-token *context contrast*
  ``log p(token | context, prompt) - log p(token | prompt)`` from one batched pass holding both
  rows, and the share of leave-one-out attribution that goes to the context;
- with ``samples`` (or ``sample_texts``): consistency of the answer with sampled answers
  (MiniLM embeddings, an optional entailment judge) and semantic entropy (see
  :mod:`explain.consistency`);

and rolls the token signals up into sentences. Every sequence score is oriented so that higher
means more likely hallucinated; :data:`SCORE_DOCS` gives each one's range and meaning.

Which score to read: with a context, ``ungrounded_max`` (the most negative token contrast: a
token the context argues against). On the HaluEval QA dev split with SmolLM2-135M it separates
right from hallucinated answers with AUROC 0.94 where mean log-prob is at chance (0.47); see
``benchmarks/hallucination.py`` for the test-split numbers beside length and probability baselines.
Without a context, token probabilities of a small model say little about truth; use samples.

Example:
    >>> from explain import LanguageModel, signals                               # doctest: +SKIP
    >>> lm = LanguageModel.load()                                                # doctest: +SKIP
    >>> rep = signals(lm, "Who wrote Hamlet?", context="Hamlet is a play by Shakespeare.",
    ...               response="Christopher Marlowe wrote it.")                  # doctest: +SKIP
    >>> rep.scores["ungrounded"] > 0                                             # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from explain.consistency import (
    JudgeError,
    call_judge,
    cluster,
    discrete_semantic_entropy,
    embed,
    semantic_entropy,
)
from explain.errors import ExplainError

CONTEXT_TEMPLATE = "{context}\n\n{prompt}"
"""How ``context`` and ``prompt`` are joined into the user's turn (the no-context row is the
prompt alone)."""

SCORE_DOCS: dict[str, str] = {
    "mean_neg_logprob": "[0, inf) nats: mean over tokens of -log p(token); length-normalised perplexity",
    "max_neg_logprob": "[0, inf) nats: the least likely token's -log p",
    "mean_entropy": "[0, log V] nats: mean entropy of the next-token distribution",
    "mean_one_minus_max_prob": "[0, 1]: 1 - mean top-1 probability (max-softmax-probability baseline)",
    "mean_one_minus_margin": "[0, 1]: 1 - mean (top-1 minus top-2 probability)",
    "ungrounded": "(-inf, inf) nats: minus the mean context contrast; > 0 means the context made the "
    "answer less likely, < 0 that it supports it",
    "ungrounded_max": "(-inf, inf) nats: minus the smallest token context contrast (the worst-grounded "
    "token; > 0 means the context argues against some token). The recommended grounding score: "
    "best on the HaluEval dev split, also on similar-length pairs",
    "ungrounded_fraction": "[0, 1]: fraction of tokens the context does not make more likely "
    "(contrast < 0.5 nats)",
    "context_unused": "[0, 1]: 1 - mean share of attribution that goes to the context",
    "inconsistency_embedding": "[0, 2], in practice [0, 1]: 1 - mean cosine similarity (MiniLM) "
    "between the answer and the sampled answers",
    "inconsistency_judge": "[0, 1]: 1 - mean probability that a sampled answer entails the answer",
    "semantic_entropy": "[0, log N] nats: entropy over meaning clusters of N samples, weighted by "
    "their length-normalised probability",
    "discrete_semantic_entropy": "[0, log N] nats: entropy of the fraction of samples per meaning cluster",
}
"""Range and meaning of every sequence score (higher = more likely hallucinated)."""

GROUNDED_NATS = 0.5
"""A token counts as supported by the context when the context raises its log-prob by this much."""

_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")


@dataclass
class SentenceSignals:
    """Token signals rolled up over one sentence of the answer.

    Attributes:
        text: the sentence as shown (tokens joined).
        start, end: the half-open token span in :attr:`SignalReport.tokens`.
        scores: the sentence's scores, same names and orientation as the report's ``scores``
            (the token-based ones, plus sample consistency per sentence where samples exist).
    """

    text: str
    start: int
    end: int
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict."""
        return {"text": self.text, "start": self.start, "end": self.end, "scores": _clean(self.scores)}


@dataclass
class SignalReport:
    """Hallucination signals for one answer: per token, per sentence and per answer.

    Attributes:
        prompt, context, response: the inputs (``response`` as scored, generated or given).
        generated: whether the response was generated here (greedy) or given.
        tokens: readable response tokens.
        token_ids: their ids.
        token_logprob: (m,) log p(token) from the generation or scoring pass (with the context).
        token_entropy: (m,) entropy (nats) of the next-token distribution at each token.
        token_margin: (m,) top-1 minus top-2 probability at each token.
        token_context_contrast: (m,) log p(token | context) - log p(token | no context), or None.
        token_context_share: (m,) share in [0, 1] of |attribution| going to the context, or None.
        scores: sequence scores, higher = more likely hallucinated; see :data:`SCORE_DOCS`.
        sentences: :class:`SentenceSignals`, one per sentence of the response.
        samples: sampled (or given) answers used for consistency.
        sample_clusters: a meaning-cluster label per sample.
        cost: ``seconds``, ``forward_passes`` of the model, ``embedded_texts``, ``judge_calls``.
        notes: fallbacks taken (e.g. a judge that failed), in words.
        model: the model's name.

    Example:
        >>> rep = signals(lm, "2 + 2 =", response=" 4")         # doctest: +SKIP
        >>> SignalReport.from_dict(rep.to_dict()).scores == rep.scores   # doctest: +SKIP
        True
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
    samples: list[str] = field(default_factory=list)
    sample_clusters: list[int] = field(default_factory=list)
    cost: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model: str = ""

    # ------------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict (arrays as lists, NaN as None); inverse of :meth:`from_dict`."""
        arrays = ("token_logprob", "token_entropy", "token_margin", "token_context_contrast",
                  "token_context_share")
        out: dict[str, Any] = {
            "prompt": self.prompt, "context": self.context, "response": self.response,
            "generated": self.generated, "model": self.model, "tokens": list(self.tokens),
            "token_ids": [int(i) for i in self.token_ids],
        }
        for name in arrays:
            value = getattr(self, name)
            out[name] = None if value is None else [_num(v) for v in np.asarray(value, dtype=float)]
        out.update(
            scores=_clean(self.scores), sentences=[s.to_dict() for s in self.sentences],
            samples=list(self.samples), sample_clusters=[int(c) for c in self.sample_clusters],
            cost=_clean(self.cost), notes=list(self.notes), score_docs={k: SCORE_DOCS[k] for k in self.scores if k in SCORE_DOCS},
        )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SignalReport":
        """Rebuild a report from :meth:`to_dict` output.

        Returns:
            a :class:`SignalReport`.

        Example:
            >>> SignalReport.from_dict(rep.to_dict()).tokens == rep.tokens   # doctest: +SKIP
            True
        """

        def arr(name: str) -> np.ndarray | None:
            value = d.get(name)
            if value is None:
                return None
            return np.array([np.nan if v is None else v for v in value], dtype=np.float32)

        def nums(x: dict[str, Any]) -> dict[str, float]:
            return {k: (math.nan if v is None else v) for k, v in (x or {}).items()}

        return cls(
            prompt=d["prompt"], context=d.get("context"), response=d["response"],
            generated=bool(d.get("generated", False)), model=d.get("model", ""),
            tokens=list(d["tokens"]), token_ids=[int(i) for i in d.get("token_ids", [])],
            token_logprob=arr("token_logprob"), token_entropy=arr("token_entropy"),
            token_margin=arr("token_margin"), token_context_contrast=arr("token_context_contrast"),
            token_context_share=arr("token_context_share"), scores=nums(d.get("scores")),
            sentences=[SentenceSignals(s["text"], int(s["start"]), int(s["end"]), nums(s.get("scores")))
                       for s in d.get("sentences", [])],
            samples=list(d.get("samples", [])), sample_clusters=[int(c) for c in d.get("sample_clusters", [])],
            cost=nums(d.get("cost")), notes=list(d.get("notes", [])),
        )

    def to_json(self, indent: int | None = 2) -> str:
        """Returns: :meth:`to_dict` as a strict JSON string (no NaN)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "SignalReport":
        """Returns: the report written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------------ viewing
    def token_risk(self) -> np.ndarray:
        """Per-token risk in [0, 1]: 1 - p(token) (with the context when one was given).

        Returns:
            float array (m,).
        """
        return 1.0 - np.exp(np.asarray(self.token_logprob, dtype=float))

    def figure(self) -> Any:
        """A plotly heatmap: one row per token signal, one column per response token.

        Each row is scaled to [0, 1] by its own range (risk direction: red = riskier); hovering
        shows the raw value.

        Returns:
            a ``plotly.graph_objects.Figure``.

        Example:
            >>> rep.figure().data[0].type     # doctest: +SKIP
            'heatmap'
        """
        import plotly.graph_objects as go

        from explain.plots import axis_labels, escape

        rows = [("-log p", -np.asarray(self.token_logprob, float)),
                ("entropy", np.asarray(self.token_entropy, float)),
                ("1 - margin", 1.0 - np.asarray(self.token_margin, float))]
        if self.token_context_contrast is not None:
            rows.append(("-context contrast", -np.asarray(self.token_context_contrast, float)))
        if self.token_context_share is not None:
            rows.append(("1 - context share", 1.0 - np.asarray(self.token_context_share, float)))
        raw = np.vstack([r for _, r in rows]) if self.tokens else np.zeros((len(rows), 0))
        z = np.zeros_like(raw)
        for i, r in enumerate(raw):
            lo, hi = np.nanmin(r) if r.size else 0.0, np.nanmax(r) if r.size else 0.0
            z[i] = (r - lo) / (hi - lo) if hi > lo else 0.0
        xs = axis_labels(self.tokens)
        names = [n for n, _ in rows]
        fig = go.Figure(go.Heatmap(
            z=z, x=list(range(len(xs))), y=names, colorscale="Reds", zmin=0, zmax=1,
            customdata=[[f"{xs[c]}<br>{names[r]} = {raw[r, c]:.3f}" for c in range(len(xs))]
                        for r in range(len(names))],
            hovertemplate="%{customdata}<extra></extra>", colorbar={"title": {"text": "risk (row-scaled)"}},
        ))
        top = ", ".join(f"{k}={v:.3g}" for k, v in list(self.scores.items())[:4])
        fig.update_layout(
            title={"text": escape(f"Hallucination signals — {top}")},
            xaxis={"tickmode": "array", "tickvals": list(range(len(xs))), "ticktext": xs, "tickangle": -45},
            yaxis={"autorange": "reversed"}, height=140 + 40 * len(rows),
            margin={"l": 10, "r": 10, "t": 50, "b": 10},
        )
        return fig

    def token_html(self, signal: str = "risk") -> str:
        """The answer's tokens highlighted by one signal, every signal in each token's tooltip.

        Args:
            signal: ``"risk"`` (1 - p(token), white to red), ``"entropy"``, or ``"contrast"``
                (minus the context contrast: red = the context made the token less likely).

        Returns:
            an escaped ``<div>`` string.

        Example:
            >>> "<b>" in rep.token_html("entropy")      # doctest: +SKIP
            False
        """
        from explain.plots import highlight_html

        tips = []
        for i in range(len(self.tokens)):
            parts = [f"log p = {self.token_logprob[i]:.3f}", f"entropy = {self.token_entropy[i]:.3f}",
                     f"margin = {self.token_margin[i]:.3f}"]
            if self.token_context_contrast is not None:
                parts.append(f"context contrast = {self.token_context_contrast[i]:+.3f}")
            if self.token_context_share is not None:
                parts.append(f"context share = {self.token_context_share[i]:.2f}")
            tips.append("; ".join(parts))
        if signal == "risk":
            return highlight_html(self.tokens, self.token_risk(), mode="risk", tooltips=tips, scale=1.0,
                                  title="1 - p(token)")
        if signal == "entropy":
            return highlight_html(self.tokens, self.token_entropy, mode="risk", tooltips=tips,
                                  title="next-token entropy (nats)")
        if signal == "contrast":
            if self.token_context_contrast is None:
                raise ExplainError("no context contrast in this report: call signals(..., context=...)")
            return highlight_html(self.tokens, -np.asarray(self.token_context_contrast), mode="diverging",
                                  tooltips=tips, title="minus context contrast (red = not supported)")
        raise ExplainError(f"unknown signal '{signal}': use risk, entropy or contrast")

    def html(self, signal: str = "risk") -> str:
        """An HTML fragment: the answer with risky tokens highlighted, then sentence and answer scores.

        Args:
            signal: ``"risk"`` (1 - p(token), white to red), ``"entropy"``, or ``"contrast"``
                (minus the context contrast: red = the context made the token less likely,
                blue = the context supports it).

        Returns:
            an escaped ``<div>`` string safe to embed in a page.

        Example:
            >>> "<script>" in rep.html()      # doctest: +SKIP
            False
        """
        from explain.plots import escape

        body = self.token_html(signal)
        rows = "".join(
            f"<tr><td>{escape(s.text)}</td>"
            + "".join(f"<td>{v:.3f}</td>" for v in s.scores.values()) + "</tr>"
            for s in self.sentences
        )
        head = "".join(f"<th>{escape(k)}</th>" for k in (self.sentences[0].scores if self.sentences else {}))
        table = f'<table class="whylm-sentences"><tr><th>sentence</th>{head}</tr>{rows}</table>'
        scores = "".join(f"<li>{escape(k)}: {v:.4g}</li>" for k, v in self.scores.items())
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (f'<div class="whylm-signals">{body}{table}<ul class="whylm-scores">{scores}</ul>'
                + (f'<ul class="whylm-notes">{notes}</ul>' if notes else "") + "</div>")


# ---------------------------------------------------------------------------- public entry point
def signals(
    lm: Any,
    prompt: str,
    response: str | None = None,
    context: str | None = None,
    samples: int = 0,
    judge: Callable[[str, str], float] | None = None,
    max_new_tokens: int = 64,
    chat: bool = True,
    seed: int = 0,
    progress: bool = True,
    sample_texts: Sequence[str] | None = None,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    context_share: bool = True,
) -> SignalReport:
    """Score how likely an answer is made up: token, sentence and answer-level signals.

    Args:
        lm: an :class:`explain.LanguageModel`.
        prompt: the question or instruction (the user's turn).
        response: the answer to score as is; ``None`` generates one greedily and uses the
            generation pass's own scores.
        context: a passage the answer should be grounded in (RAG context, a document); it is
            put before the prompt (:data:`CONTEXT_TEMPLATE`) and contrasted with the prompt alone.
        samples: draw this many answers (sampled, seeded, batched) for consistency scores.
        judge: ``(premise, hypothesis) -> P(entailment)``, e.g. :class:`explain.consistency.LLMJudge`
            or a local NLI model; if it fails, embeddings are used instead and the report's
            ``notes`` say so.
        max_new_tokens: length limit of generated answers and samples.
        chat: use the tokenizer's chat template when it has one.
        seed: seed of the sampling.
        progress: show a progress bar.
        sample_texts: answers you already have (from any model or run); used instead of drawing.
        temperature, top_p: sampling settings for ``samples``.
        context_share: with ``context``, also compute the share of attribution that goes to the
            context (``explain.attribute`` with segments ``{"context", "question"}``,
            leave-one-segment-out, a few more forward passes).

    Returns:
        a :class:`SignalReport`.

    Raises:
        ExplainError: empty prompt or response, a response that does not fit the model's context
            window, a negative ``samples``, an empty generated answer.

    Example:
        >>> rep = signals(lm, "What is the capital of France?", response="Paris.")   # doctest: +SKIP
        >>> rep.tokens, rep.scores["mean_neg_logprob"]                              # doctest: +SKIP
        (['Paris', '.'], 0.41)
    """
    from tqdm.auto import tqdm

    start_time = time.perf_counter()
    _check_inputs(prompt, response, context, samples, sample_texts, max_new_tokens)
    use_chat = bool(chat and getattr(lm.tokenizer, "chat_template", None))
    counter = _ForwardCounter(lm.model)
    notes: list[str] = []
    cost: dict[str, float] = {}
    n_stages = 1 + (context is not None) + (samples > 0 or sample_texts is not None)
    bar = tqdm(total=n_stages, desc="signals", disable=not progress, leave=False)
    try:
        ids = prompt_ids(lm, prompt, context, use_chat)
        plain = prompt_ids(lm, prompt, None, use_chat) if context is not None else None
        # 1. token signals, from the generation pass or one teacher-forced pass (with and without
        #    the context in the same batch).
        contrast = None
        if response is None:
            lm.check_length(len(ids), max_new_tokens)
            gen = lm.generate(ids, max_new_tokens=max_new_tokens)
            resp_ids, full = gen.sequences[0], gen.logprobs[0]
            if not resp_ids:
                raise ExplainError("the model generated an empty answer: pass a response or change the prompt")
            tok_lp = full.gather(-1, torch.tensor(resp_ids)[:, None])[:, 0].numpy().astype(np.float32)
            response_text = lm.tokenizer.decode(resp_ids, skip_special_tokens=True)
            if plain is not None:
                contrast = tok_lp - lm.continuation_logprobs([plain], [resp_ids])[0]
        else:
            resp_ids = lm.encode(response, special=False)
            if not resp_ids:
                raise ExplainError("response is empty")
            _check_fits(lm, len(ids), len(resp_ids))
            rows = [ids] + ([plain] if plain is not None else [])
            out = lm.continuation_logprobs(rows, [resp_ids] * len(rows), full=True)
            tok_lp, full = out[0]
            if plain is not None:
                contrast = tok_lp - out[1][0]
            response_text = response
        entropy, margin, top1 = _distribution_stats(full)
        tokens = lm.tokens(resp_ids)
        scores = token_scores(tok_lp, entropy, margin, top1)
        bar.update(1)
        cost["seconds_tokens"] = time.perf_counter() - start_time

        # 2. context: contrast scores and attribution share.
        share = None
        if context is not None:
            scores.update(grounding_scores(contrast))
            if context_share:
                share = _context_share(lm, prompt, context, response_text, len(resp_ids), use_chat, notes)
                if share is not None:
                    scores["context_unused"] = float(1.0 - share.mean())
            bar.update(1)

        # 3. sample consistency.
        sample_list: list[str] = []
        labels: list[int] = []
        sentences = split_sentences(tokens)
        if samples > 0 or sample_texts is not None:
            t = time.perf_counter()
            if sample_texts is not None:
                sample_list = [str(s) for s in sample_texts]
                seq_lp = _score_texts(lm, ids, sample_list)
            else:
                sample_list, seq_lp = draw_samples(lm, ids, samples, max_new_tokens, seed, temperature, top_p)
            texts = ["".join(tokens[a:b]).strip() for a, b in sentences]
            cons, labels, sent_cons = consistency_scores(response_text, sample_list, seq_lp, judge, texts,
                                                         notes, cost)
            scores.update(cons)
            cost["seconds_samples"] = time.perf_counter() - t
            bar.update(1)
        else:
            sent_cons = [{} for _ in sentences]
    finally:
        counter.remove()
        bar.close()

    sent_objs = []
    for (s, e), extra in zip(sentences, sent_cons):
        sc = token_scores(tok_lp[s:e], entropy[s:e], margin[s:e], top1[s:e])
        if contrast is not None:
            sc.update(grounding_scores(contrast[s:e]))
        sc.update(extra)
        sent_objs.append(SentenceSignals("".join(tokens[s:e]).strip(), s, e, sc))
    cost.update(seconds=time.perf_counter() - start_time, forward_passes=counter.calls)
    cost.setdefault("embedded_texts", 0)
    cost.setdefault("judge_calls", 0)
    return SignalReport(
        prompt=prompt, context=context, response=response_text, generated=response is None,
        tokens=tokens, token_ids=list(resp_ids), token_logprob=tok_lp, token_entropy=entropy,
        token_margin=margin, token_context_contrast=None if contrast is None else contrast.astype(np.float32),
        token_context_share=share, scores=scores, sentences=sent_objs, samples=sample_list,
        sample_clusters=labels, cost=cost, notes=notes, model=getattr(lm, "name", ""),
    )


# ---------------------------------------------------------------------------- building blocks
def prompt_ids(lm: Any, prompt: str, context: str | None, chat: bool) -> list[int]:
    """Token ids of the prompt (with the context before it, if any), ready for the answer.

    Returns:
        a list of ids: the chat template's user turn plus the assistant header when ``chat``,
        else the plain text with the tokenizer's special prefix.

    Example:
        >>> prompt_ids(lm, "2 + 2 =", None, chat=False)     # doctest: +SKIP
        [1, 34, ...]
    """
    text = prompt if context is None else CONTEXT_TEMPLATE.format(context=context, prompt=prompt)
    return lm.prompt_ids(text, chat=chat)[0]


def token_scores(logprob: np.ndarray, entropy: np.ndarray, margin: np.ndarray, top1: np.ndarray) -> dict[str, float]:
    """Sequence scores from token signals (see :data:`SCORE_DOCS`).

    Returns:
        dict with ``mean_neg_logprob``, ``max_neg_logprob``, ``mean_entropy``,
        ``mean_one_minus_max_prob``, ``mean_one_minus_margin``.

    Example:
        >>> token_scores(np.log([0.5, 0.25]), np.zeros(2), np.ones(2), np.ones(2))["max_neg_logprob"]
        1.3862943611198906
    """
    lp = np.asarray(logprob, dtype=np.float64)
    return {
        "mean_neg_logprob": float(-lp.mean()),
        "max_neg_logprob": float(-lp.min()),
        "mean_entropy": float(np.mean(entropy)),
        "mean_one_minus_max_prob": float(1.0 - np.mean(top1)),
        "mean_one_minus_margin": float(1.0 - np.mean(margin)),
    }


def grounding_scores(contrast: np.ndarray) -> dict[str, float]:
    """Grounding scores from the per-token context contrast (higher = less grounded).

    Returns:
        dict with ``ungrounded`` (minus mean contrast), ``ungrounded_max`` (minus min contrast)
        and ``ungrounded_fraction`` (share of tokens with contrast < :data:`GROUNDED_NATS`).

    Example:
        >>> grounding_scores(np.array([2.0, 0.0]))["ungrounded"]
        -1.0
    """
    c = np.asarray(contrast, dtype=np.float64)
    return {
        "ungrounded": float(-c.mean()),
        "ungrounded_max": float(-c.min()),
        "ungrounded_fraction": float((c < GROUNDED_NATS).mean()),
    }


def split_sentences(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Half-open token spans of the sentences in a tokenised text.

    A sentence ends at a token ending in ``.``, ``!`` or ``?`` (optionally followed by quotes or
    brackets) when the next token starts with whitespace, or at a token holding a newline.

    Returns:
        list of (start, end) covering all tokens in order.

    Example:
        >>> split_sentences(["Paris", ".", " It", " is", " big", "."])
        [(0, 2), (2, 6)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        ends = "\n" in tok or (
            _SENTENCE_END.search(tok.rstrip()) is not None and (nxt is None or nxt[:1].isspace())
        )
        if ends and "".join(tokens[start:i + 1]).strip():
            spans.append((start, i + 1))
            start = i + 1
    if start < len(tokens):
        if spans and not "".join(tokens[start:]).strip():
            spans[-1] = (spans[-1][0], len(tokens))
        else:
            spans.append((start, len(tokens)))
    return spans


def draw_samples(
    lm: Any, ids: Sequence[int], n: int, max_new_tokens: int, seed: int, temperature: float = 1.0,
    top_p: float = 1.0, chunk: int | None = None,
) -> tuple[list[str], list[float]]:
    """Draw ``n`` answers in batched, seeded generation calls (chunks sized to stay in memory).

    Args:
        chunk: samples per generation call; default: as many as fit in about 512 MB of scores.

    Returns:
        (texts, mean token log-probabilities under the model at temperature 1).

    Example:
        >>> texts, lps = draw_samples(lm, lm.chat_ids("Hi")[0], 4, 16, seed=0)   # doctest: +SKIP
    """
    lm.check_length(len(ids), max_new_tokens)
    vocab = int(getattr(lm.model.config, "vocab_size", 50_000) or 50_000)
    # generate keeps (samples, steps, vocab) float32 scores: cap a chunk at about 512 MB.
    if chunk is None:
        chunk = int(max(1, min(32, 512e6 // (4 * vocab * max(1, max_new_tokens)))))
    chunk = max(1, int(chunk))
    texts: list[str] = []
    seq_lp: list[float] = []
    for k, at in enumerate(range(0, n, chunk)):
        size = min(chunk, n - at)
        gen = lm.generate(ids, max_new_tokens=max_new_tokens, samples=size, do_sample=True,
                          temperature=temperature, top_p=top_p, seed=seed + k)
        for seq, lp in zip(gen.sequences, gen.logprobs):
            texts.append(lm.tokenizer.decode(seq, skip_special_tokens=True))
            seq_lp.append(float(lp.gather(-1, torch.tensor(seq, dtype=torch.long)[:, None]).mean()) if seq else 0.0)
    return texts, seq_lp


def consistency_scores(
    answer: str,
    samples: Sequence[str],
    seq_logprobs: Sequence[float],
    judge: Callable[[str, str], float] | None = None,
    sentence_texts: Sequence[str] = (),
    notes: list[str] | None = None,
    cost: dict[str, float] | None = None,
) -> tuple[dict[str, float], list[int], list[dict[str, float]]]:
    """Consistency of ``answer`` with ``samples``, and semantic entropy of the samples.

    A judge that raises or returns a non-probability is dropped: embeddings are used instead and
    a line is added to ``notes`` (the documented fallback; never an exception).

    Args:
        answer: the main answer.
        samples: the sampled answers.
        seq_logprobs: each sample's mean token log-probability (for semantic entropy).
        judge: ``(premise, hypothesis) -> P(entailment)`` or None.
        sentence_texts: the answer's sentences, for per-sentence consistency (SelfCheckGPT-style).
        notes, cost: lists/dicts the function appends fallbacks and call counts to.

    Returns:
        (scores, a cluster label per sample, per-sentence scores).

    Example:
        >>> s, labels, _ = consistency_scores("Paris", ["Paris", "paris"], [-0.1, -0.2])  # doctest: +SKIP
        >>> labels, s["discrete_semantic_entropy"]                                         # doctest: +SKIP
        ([0, 0], 0.0)
    """
    notes = notes if notes is not None else []
    cost = cost if cost is not None else {}
    sent_texts = list(sentence_texts)
    if not samples:
        notes.append("no samples: consistency scores skipped")
        return {}, [], [{} for _ in sent_texts]
    vecs = embed([answer, *samples, *sent_texts])
    cost["embedded_texts"] = cost.get("embedded_texts", 0) + len(vecs)
    main, samp, sent = vecs[0], vecs[1:1 + len(samples)], vecs[1 + len(samples):]
    scores = {"inconsistency_embedding": float(1.0 - (samp @ main).mean())}
    per_sentence = [{"inconsistency_embedding": float(1.0 - (samp @ v).mean())} for v in sent]
    labels = None
    if judge is not None:
        calls = [0]

        def counted(premise: str, hypothesis: str) -> float:
            calls[0] += 1
            return judge(premise, hypothesis)

        try:
            scores["inconsistency_judge"] = 1.0 - float(np.mean([call_judge(counted, s, answer) for s in samples]))
            for k, text in enumerate(sent_texts):
                if len(sent_texts) == 1:
                    per_sentence[k]["inconsistency_judge"] = scores["inconsistency_judge"]
                    continue
                per_sentence[k]["inconsistency_judge"] = 1.0 - float(
                    np.mean([call_judge(counted, s, text) for s in samples]))
            labels = cluster(samples, judge=counted)
        except JudgeError as exc:
            notes.append(f"{exc}: fell back to embedding similarity for consistency and clustering")
            scores.pop("inconsistency_judge", None)
            for d in per_sentence:
                d.pop("inconsistency_judge", None)
        cost["judge_calls"] = cost.get("judge_calls", 0) + calls[0]
    if labels is None:
        labels = cluster(samples, embeddings=samp)
    scores["semantic_entropy"] = semantic_entropy(labels, seq_logprobs)
    scores["discrete_semantic_entropy"] = discrete_semantic_entropy(labels)
    return scores, labels, per_sentence


# ---------------------------------------------------------------------------- private helpers
def _check_inputs(prompt: Any, response: Any, context: Any, samples: Any, sample_texts: Any,
                  max_new_tokens: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ExplainError("prompt is empty: give the question or instruction the answer responds to")
    if response is not None and (not isinstance(response, str) or not response.strip()):
        raise ExplainError("response is empty: give the answer to score, or response=None to generate one")
    if context is not None and (not isinstance(context, str) or not context.strip()):
        raise ExplainError("context is empty: give the passage, or context=None")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ExplainError(f"samples must be a whole number >= 0, got {samples!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ExplainError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    if sample_texts is not None:
        if isinstance(sample_texts, str) or not all(isinstance(s, str) for s in sample_texts):
            raise ExplainError("sample_texts must be a list of strings")
        if not any(s.strip() for s in sample_texts):
            raise ExplainError("sample_texts holds no non-empty answer")


def _check_fits(lm: Any, n_prompt: int, n_response: int) -> None:
    if n_prompt + n_response > lm.max_length:
        raise ExplainError(
            f"prompt ({n_prompt} tokens) + response ({n_response} tokens) is longer than the model's "
            f"context window of {lm.max_length} tokens: shorten the context or the response"
        )
    lm.check_length(n_prompt, n_response)


def _distribution_stats(full: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entropy, top-1 minus top-2 probability, and top-1 probability of each log-softmax row."""
    logp = full.float()
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    top = p.topk(min(2, p.shape[-1]), dim=-1).values
    second = top[:, 1] if top.shape[-1] > 1 else torch.zeros_like(top[:, 0])
    as_np = lambda t: t.cpu().numpy().astype(np.float32)  # noqa: E731
    return as_np(entropy.clamp(min=0)), as_np(top[:, 0] - second), as_np(top[:, 0])


def _context_share(lm: Any, prompt: str, context: str, response: str, m: int, chat: bool,
                   notes: list[str]) -> np.ndarray | None:
    """Per-token share of |attribution| going to the context segment (leave-one-segment-out)."""
    try:
        from explain import attribute
    except ImportError:
        notes.append("context share skipped: explain.attribute is not available")
        return None
    try:
        res = attribute(lm, {"context": context, "question": prompt}, target=response,
                        method="ablation", chat=chat, progress=False)
    except ExplainError as exc:
        notes.append(f"context share skipped: {exc}")
        return None
    attr = np.abs(np.asarray(res.token_attr, dtype=np.float64))
    if attr.ndim != 2 or attr.shape[0] != m or attr.shape[1] < 2:
        notes.append(f"context share skipped: attribution shape {attr.shape} does not match {m} tokens")
        return None
    total = attr.sum(axis=1)
    share = np.where(total > 0, attr[:, 0] / np.where(total > 0, total, 1.0), 0.5)
    return share.astype(np.float32)


def _score_texts(lm: Any, ids: Sequence[int], texts: Sequence[str]) -> list[float]:
    """Mean token log-probability of each given sample after the prompt (batched passes)."""
    conts = [lm.encode(t, special=False) for t in texts]
    keep = [k for k, c in enumerate(conts) if c and len(ids) + len(c) <= lm.max_length]
    out = [0.0] * len(texts)
    if keep:
        lps = lm.continuation_logprobs([ids] * len(keep), [conts[k] for k in keep])
        for k, lp in zip(keep, lps):
            out[k] = float(np.mean(lp))
    return out


class _ForwardCounter:
    """Counts forward calls of a torch module while alive (a forward hook)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1

    def remove(self) -> None:
        self._handle.remove()


def _num(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    return f if math.isfinite(f) else None


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _num(v) for k, v in d.items()}
