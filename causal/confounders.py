"""Which candidates confound a treatment and an outcome, asked of the judge with its measured skill.

:func:`suggest_confounders` asks, for every candidate ``c``, the forced-choice question
:func:`causal.propose_graph` asks ("A. changing c causes a change in X. B. ... C. neither directly
causes the other"), in both orders, once against the treatment and once against the outcome. The
directions are calibrated by the judge's measured accuracy (:meth:`causal.judge.JudgeResult.calibrate`);
``c`` is suggested as a confounder when the calibrated probability that it causes both reaches
``threshold``. A judge at chance suggests nothing and the result says why; a candidate the judge
confidently places after the treatment is named as a mediator or collider (adjusting for it would
bias the estimate).

Examples:
    >>> from causal.ask import pair_prompt
    >>> from causal.llm import ReplayBackend
    >>> causes = lambda x, y: {pair_prompt(x, y, none_option=True): "A", pair_prompt(y, x, none_option=True): "B"}
    >>> llm = ReplayBackend({**causes("genes", "smoking"), **causes("genes", "cancer")})
    >>> strong = JudgeResult(llm="replay:dict", accuracy=0.97, ci_low=0.95, ci_high=0.99, n=106)
    >>> s = suggest_confounders("smoking", "cancer", ["genes"], llm=llm, judge=strong)
    >>> [(c["name"], round(c["confidence"], 2)) for c in s.confounders]
    [('genes', 0.9)]
    >>> coin = JudgeResult(llm="replay:dict", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=106)
    >>> print(suggest_confounders("smoking", "cancer", ["genes"], llm=llm, judge=coin).summary())
    confounders of smoking -> cancer (replay:dict, 4 LLM questions):
      none suggested: the judge is at chance (this model orients 53% [43, 62] of benchmark pairs right (Tübingen, both orders asked): its arrows are guesses; connect a stronger model or add data)
      undecided genes: P(causes smoking) 0.50, P(causes cancer) 0.50 after calibration
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from causal.ask import Asker
from causal.errors import CausalError, did_you_mean
from causal.judge import JudgeResult, judge_cost, measure_judge, resolve_judge, seconds_per_question
from causal.llm import backend_label, get_backend
from explain.budget import Cost, check_budget
from explain.progress import bar, want_progress
from explain.serialize import Result, jsonable

COMMIT_THRESHOLD = 0.75  # the same bar as propose_graph's arrows


def linked(p: np.ndarray) -> bool:
    """Whether the model names a direct link in a 3-option pair answer (the model's own answer:
    the judge's record measures directions, not links)."""
    return int(np.argmax(p)) != 2


def direction(p: np.ndarray) -> float:
    """P(first -> second) given a link, from ``[P(first->second), P(second->first), P(none)]``."""
    total = float(p[0] + p[1])
    return float(p[0]) / total if total > 0 else 0.5


@dataclass(kw_only=True)
class JudgedResult(Result):
    """The fields and plumbing every result of judged questions shares (:class:`ConfounderSuggestions`,
    :class:`causal.critique.GraphCritique`): the judge used, why nothing was reported, and the run's
    questions, backend, bar and wall time.

    Examples:
        >>> r = JudgedResult(reason="the judge is at chance", queries=4, llm="replay:dict")
        >>> r._head("a -> b")
        ['a -> b (replay:dict, 4 LLM questions):', "  (uncalibrated: the judge's accuracy was not measured; these are the model's own probabilities)"]
    """

    judge: Any = None
    reason: str = ""
    queries: int = 0
    llm: str = ""
    threshold: float = COMMIT_THRESHOLD
    seconds: float = 0.0

    def _head(self, title: str) -> list[str]:
        """The summary's first lines: ``title`` with the run's size, then a note when uncalibrated."""
        lines = [f"{title} ({self.llm}, {self.queries} LLM questions):"]
        if self.judge is None:
            lines.append("  (uncalibrated: the judge's accuracy was not measured; these are the model's own probabilities)")
        return lines

    def _judged_dict(self) -> dict[str, Any]:
        """The shared fields for ``to_dict`` (the judge as its own dict)."""
        return {"judge": self.judge.to_dict() if self.judge is not None else None, "reason": self.reason,
                "queries": self.queries, "llm": self.llm, "threshold": self.threshold, "seconds": self.seconds}

    @classmethod
    def _rebuild(cls, d: Mapping[str, Any], what: str, own: Callable[[], dict[str, Any]]) -> Any:
        """``cls`` from a ``to_dict`` output: ``own()`` gives the subclass's fields; a malformed dict
        raises a one-line :class:`causal.errors.CausalError` naming ``what`` it is not."""
        try:
            return cls(
                **own(), judge=JudgeResult.from_dict(d["judge"]) if d.get("judge") else None,
                reason=str(d.get("reason", "")), queries=int(d.get("queries", 0)), llm=str(d.get("llm", "")),
                threshold=float(d.get("threshold") or COMMIT_THRESHOLD), seconds=float(d.get("seconds") or 0.0),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CausalError(f"not a {what} dict: {type(exc).__name__} {exc}") from None


@dataclass
class ConfounderSuggestions(JudgedResult):
    """What :func:`suggest_confounders` found.

    Attributes:
        treatment, outcome: the pair asked about.
        confounders: ``{"name", "confidence", "p_causes_treatment", "p_causes_outcome",
            "evidence"}`` per suggested confounder, most confident first; ``confidence`` is the
            calibrated probability that it causes both (the two directions taken as independent).
        undecided: candidates the model links to both but the judge cannot orient confidently,
            ``{"name", "p_causes_treatment", "p_causes_outcome"}`` (calibrated).
        others: the remaining candidates with ``{"name", "role", "confidence"}``; ``role`` is
            ``"mediator"`` or ``"collider"`` (do not adjust for it) when the judge is confident,
            ``"not linked to both"`` when the model names no direct link to one of them (its own,
            uncalibrated answer).
        judge: the judge's record used (:class:`causal.judge.JudgeResult`), None when uncalibrated.
        reason: why nothing was suggested, in one sentence ("" when something was).
        queries, llm, threshold, seconds: questions asked, backend label, bar, wall time.
    """

    treatment: str
    outcome: str
    confounders: list[dict] = field(default_factory=list)
    undecided: list[dict] = field(default_factory=list)
    others: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """Plain lines: the suggestions, or why there are none; then the undecided and the others.

        Returns:
            text.
        """
        lines = self._head(f"confounders of {self.treatment} -> {self.outcome}")
        for c in self.confounders:
            lines.append(f"  {c['name']}: causes both, calibrated P {c['confidence']:.2f} -> adjust for it")
        if not self.confounders:
            lines.append(f"  none suggested: {self.reason}")
        for c in self.undecided:
            lines.append(f"  undecided {c['name']}: P(causes {self.treatment}) {c['p_causes_treatment']:.2f}, "
                         f"P(causes {self.outcome}) {c['p_causes_outcome']:.2f} after calibration")
        for c in self.others:
            advice = " (do not adjust for it)" if c["role"] in ("mediator", "collider") else ""
            lines.append(f"  {c['name']}: {c['role']}{advice}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (the judge without its per-pair answers). Returns: a dict."""
        return jsonable({
            "treatment": self.treatment, "outcome": self.outcome, "confounders": self.confounders,
            "undecided": self.undecided, "others": self.others, **self._judged_dict(),
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConfounderSuggestions":
        """Rebuild from :meth:`to_dict` output. Returns: the result."""
        return cls._rebuild(d, "confounder-suggestions", lambda: dict(
            treatment=str(d["treatment"]), outcome=str(d["outcome"]),
            confounders=[dict(c) for c in d.get("confounders") or []],
            undecided=[dict(c) for c in d.get("undecided") or []],
            others=[dict(c) for c in d.get("others") or []],
        ))


def abstention_reason(judge: JudgeResult | None) -> str:
    """Why a judge's answers commit nothing, or "" when they can.

    Returns:
        one sentence: the judge's figure when it is at chance, else "".

    Examples:
        >>> abstention_reason(JudgeResult(llm="x", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=106))[:40]
        'the judge is at chance (this model orien'
    """
    if judge is not None and judge.is_guessing:
        return f"the judge is at chance ({judge.in_words()})"
    return ""


def check_threshold(threshold: Any) -> None:
    """Refuse a bar that is not a probability in (0.5, 1] (a bool too), in one line.

    Examples:
        >>> check_threshold(0.4)
        Traceback (most recent call last):
        causal.errors.CausalError: threshold must be a probability in (0.5, 1], got 0.4
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.5 < threshold <= 1:
        raise CausalError(f"threshold must be a probability in (0.5, 1], got {threshold!r}")


@dataclass
class JudgedRun:
    """One run of judged questions: the backend, the judge's record (measured now when needed),
    the calibration it gives and the :class:`causal.ask.Asker` that counts the questions.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> run = JudgedRun.start(ReplayBackend({}), False, None, lambda b, jq: confounder_cost(1, b, jq))
        >>> run.record is None, run.calibrate(0.8), run.result_fields("", 0.75)["llm"]
        (True, 0.8, 'replay:dict')
    """

    backend: Any
    record: JudgeResult | None
    show: bool
    asker: Asker
    t0: float

    @classmethod
    def start(cls, llm: Any, judge: Any, descriptions: Mapping[str, str] | None,
              cost_of: Callable[[Any, int], Cost], max_seconds: float | None = None,
              on_estimate: Callable[[Cost], Any] | None = None, progress: bool | None = None,
              t0: float | None = None) -> "JudgedRun":
        """Resolve the backend and judge, refuse or announce the predicted cost (``cost_of(backend,
        judge questions)``), then measure the judge when it has no record.

        Returns:
            the run, ready to ask.
        """
        backend = get_backend(llm)
        record, measure = resolve_judge(backend, judge)
        cost = check_budget(cost_of(backend, judge_cost(backend).passes if measure else 0), max_seconds)
        if on_estimate is not None:
            on_estimate(cost)
        show = want_progress(progress, cost.seconds)
        if measure:
            record = measure_judge(backend, show, max_seconds)
        return cls(backend, record, show, Asker(backend, descriptions), time.perf_counter() if t0 is None else t0)

    def calibrate(self, p: float) -> float:
        """``p`` calibrated by the judge's record (unchanged when uncalibrated). Returns: a probability."""
        return self.record.calibrate(p) if self.record is not None else float(p)

    def result_fields(self, reason: str, threshold: float) -> dict[str, Any]:
        """The :class:`JudgedResult` fields of this run, to pass to the result's constructor."""
        return dict(judge=replace(self.record, answers=[]) if self.record is not None else None, reason=reason,
                    queries=self.asker.queries, llm=backend_label(self.backend), threshold=float(threshold),
                    seconds=time.perf_counter() - self.t0)


def names(values: Any, what: str) -> list[str]:
    """Distinct, non-empty variable names from a list (a lone string is refused).

    Returns:
        the names as strings.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise CausalError(f"{what} must be a list of names, got {type(values).__name__}")
    out = [str(v) for v in values]
    if any(not v.strip() for v in out):
        raise CausalError(f"{what}: a name is empty")
    dup = sorted({v for v in out if out.count(v) > 1})
    if dup:
        raise CausalError(f"{what}: named twice: {dup}")
    return out


def _candidates(treatment: str, outcome: str, candidates: Any, descriptions: Mapping[str, str] | None) -> list[str]:
    if candidates is None:
        if not descriptions:
            raise CausalError("name the candidate confounders (candidates=[...] or --candidates): the LLM backends "
                              "answer multiple-choice questions and do not invent variable names")
        candidates = list(descriptions)
        cands = [c for c in names(candidates, "candidates") if c not in (treatment, outcome)]
    else:
        cands = names(candidates, "candidates")
        for c in cands:
            if c in (treatment, outcome):
                raise CausalError(f"candidate '{c}' is the {'treatment' if c == treatment else 'outcome'}")
    if not cands:
        raise CausalError("no candidate confounder to ask about")
    if descriptions:
        unknown = [k for k in descriptions if k not in (*cands, treatment, outcome)]
        if unknown:
            raise CausalError(f"description given for unknown variable '{unknown[0]}'"
                              f"{did_you_mean(unknown[0], [*cands, treatment, outcome])}")
    return cands


def confounder_cost(n_candidates: int, llm: Any = None, judge_questions: int = 0) -> Cost:
    """The predicted cost of :func:`suggest_confounders`: four questions per candidate.

    Returns:
        a :class:`explain.budget.Cost` (``passes`` counts questions).

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> confounder_cost(5, ReplayBackend({})).passes
        20
    """
    backend = get_backend(llm)
    q = 4 * n_candidates + judge_questions
    what = f"asking about {n_candidates} candidate confounders"
    what += " (plus measuring the judge on Tübingen pairs)" if judge_questions else ""
    return Cost(what, seconds=q * seconds_per_question(backend), passes=q, unit="questions",
                cheaper="give fewer candidates")


def suggest_confounders(
    treatment: str,
    outcome: str,
    candidates: Sequence[str] | None = None,
    llm: Any = None,
    descriptions: Mapping[str, str] | None = None,
    judge: Any = None,
    threshold: float = COMMIT_THRESHOLD,
    max_seconds: float | None = None,
    on_estimate: Callable[[Cost], Any] | None = None,
    progress: bool | None = None,
) -> ConfounderSuggestions:
    """Which candidates cause both ``treatment`` and ``outcome``, by the judge, with its measured skill.

    Args:
        treatment, outcome: the two variables.
        candidates: the variables to ask about (``None``: the other variables of ``descriptions``).
        llm: ``None`` (embedded model), a backend spec string or a backend object.
        descriptions: optional ``{variable: description}`` added to every prompt.
        judge: ``None`` (the backend's known record, measured now when none exists), a
            :class:`causal.judge.JudgeResult`, or ``False`` (uncalibrated: the result says so).
        threshold: calibrated probability a suggestion needs (default 0.75, as for arrows).
        max_seconds: refuse, in one line and before any question, a run predicted to take longer.
        on_estimate: called with the predicted :class:`explain.budget.Cost` before any question.
        progress: a progress bar (``None``: when interactive and long).

    Returns:
        a :class:`ConfounderSuggestions`: ``.confounders`` (empty, with ``.reason``, when the judge
        is at chance), ``.undecided``, ``.others`` and ``.judge``.

    Examples:
        >>> s = suggest_confounders("smoking", "lung cancer", ["genes", "age"])   # doctest: +SKIP
        >>> s.confounders, s.reason                                              # doctest: +SKIP
        ([], 'the judge is at chance (this model orients 53% [43, 62] ...)')
    """
    t0 = time.perf_counter()
    treatment, outcome = str(treatment), str(outcome)
    if treatment == outcome:
        raise CausalError("treatment and outcome must differ")
    cands = _candidates(treatment, outcome, candidates, descriptions)
    check_threshold(threshold)
    run = JudgedRun.start(llm, judge, descriptions, lambda b, jq: confounder_cost(len(cands), b, jq),
                          max_seconds, on_estimate, progress, t0)
    calibrate, asker = run.calibrate, run.asker
    found, undecided, others = [], [], []
    with bar(len(cands), "candidates", run.show) as pbar:
        for c in cands:
            p_t, p_o = asker.pair(c, treatment, none_option=True), asker.pair(c, outcome, none_option=True)
            pbar.update(1)
            if not (linked(p_t) and linked(p_o)):
                others.append({"name": c, "role": "not linked to both", "confidence": float("nan")})
                continue
            q_t, q_o = calibrate(direction(p_t)), calibrate(direction(p_o))
            evidence = (f"llm: P({c}->{treatment})={direction(p_t):.2f}, P({c}->{outcome})={direction(p_o):.2f} "
                        "given a link (model's own)")
            if q_t * q_o >= threshold:
                found.append({"name": c, "confidence": q_t * q_o, "p_causes_treatment": q_t,
                              "p_causes_outcome": q_o, "evidence": evidence})
            elif (1 - q_t) * q_o >= threshold:
                others.append({"name": c, "role": "mediator", "confidence": (1 - q_t) * q_o})
            elif (1 - q_t) * (1 - q_o) >= threshold:
                others.append({"name": c, "role": "collider", "confidence": (1 - q_t) * (1 - q_o)})
            else:
                undecided.append({"name": c, "p_causes_treatment": q_t, "p_causes_outcome": q_o})
    found.sort(key=lambda c: -c["confidence"])
    reason = ""
    if not found:
        reason = abstention_reason(run.record) or (
            f"no candidate is linked to both {treatment} and {outcome} by the model" if not undecided else
            f"the judge is not confident that any candidate causes both {treatment} and {outcome}")
    return ConfounderSuggestions(treatment=treatment, outcome=outcome, confounders=found, undecided=undecided,
                                 others=others, **run.result_fields(reason, threshold))
