"""How well does a backend orient cause and effect? Its measured accuracy on the Tübingen pairs.

:func:`evaluate_judge` asks a backend the same forced-choice question :func:`causal.propose_graph`
asks (Kıcıman et al.'s prompt, variable names only), in both orders, on the Tübingen cause-effect
pairs shipped with whylm (MIT, see ``causal/data_files/LICENSE-tuebingen``). 80 of the 106 usable pairs
have their cause named first, so a judge that always answers "A" scores 75% when asked once; asking
both orders and averaging (position-balanced) puts that judge at 50%, which is what we report.

The result (:class:`JudgeResult`) carries the accuracy with a 95% Wilson interval and every pair's
answer; it is cached on disk per backend, model and decoding settings (next to the backend's
answer cache), and the figure for the embedded model ships with the package, so proposals can
calibrate their confidences without re-measuring. :meth:`JudgeResult.calibrate` shrinks a pair
probability toward 0.5 by the judge's *lower* confidence bound on skill: a coin-flip judge always
gives 0.5, and no judge's calibrated confidence exceeds the lower bound of its measured accuracy.

Names (one per idea): *the judge* is an LLM backend in its role of answering "which causes
which"; :func:`evaluate_judge` measures it and its record is a :class:`JudgeResult` (the ``judge=``
argument and the ``.judge`` field of every causal result hold one); :meth:`JudgeResult.calibrate`
turns the judge's answer into a calibrated probability; an edge it drew has ``origin="judge"``.

Examples:
    >>> j = JudgeResult(llm="fake:coin", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=108)
    >>> j.skill, j.calibrate(0.99)
    (0.0, 0.5)
    >>> strong = JudgeResult(llm="fake:strong", accuracy=0.95, ci_low=0.9, ci_high=0.98, n=108)
    >>> round(strong.calibrate(1.0), 3), round(strong.calibrate(0.0), 3)
    (0.9, 0.1)
    >>> strong.in_words()
    'this model orients 95% [90, 98] of benchmark pairs right (Tübingen, both orders asked): only its confident arrows are drawn, the rest are left undecided'
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from causal.ask import Asker  # the proposal's own asker: the figure is for the same questions
from causal.errors import CausalError
from causal.llm import backend_label, get_backend
from explain.budget import Cost, check_budget
from explain.progress import bar, want_progress
from explain.rng import generator
from explain.serialize import Result, dumps, jsonable

PROMPT_VERSION = "kiciman-forced-choice-v1"  # bump when pair_prompt changes: cached figures go stale
SHIPPED_FIGURES = "judge_figures.json"
ASSUMED_SECONDS_PER_QUESTION = 1.0  # HTTP backends: a stated assumption, not a measurement


@dataclass
class JudgeResult(Result):
    """A backend's orientation accuracy on Tübingen cause-effect pairs.

    Attributes:
        llm: the backend's ``name:model`` label.
        accuracy: position-balanced accuracy (both orders asked, answers averaged; a tie counts half).
        ci_low, ci_high: 95% Wilson interval of ``accuracy``.
        n: number of pairs.
        raw_accuracy: accuracy when asked once with the dataset's first variable as option A
            (inflated by a preference for "A": 75% of the pairs have the cause first).
        answers: per pair ``{"pair", "var1", "var2", "truth", "p_var1_causes", "p_var1_first",
            "correct"}`` (``truth`` is ``"R"`` when var1 causes var2, ``"L"`` otherwise; ``correct``
            is 1, 0, or 0.5 for a tie).
        settings: the backend's decoding settings the figure holds for.
        source: ``"measured"`` (just now), ``"cache"`` or ``"shipped"``.
    """

    llm: str
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    raw_accuracy: float = float("nan")
    answers: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = "measured"

    @property
    def skill(self) -> float:
        """How far the judge is surely better than a coin: ``max(0, 2 * ci_low - 1)`` in [0, 1]."""
        return max(0.0, 2.0 * float(self.ci_low) - 1.0)

    def calibrate(self, p: float) -> float:
        """A judge's pair probability shrunk toward 0.5 by its measured skill.

        Returns:
            ``0.5 + skill * (p - 0.5)``: 0.5 for a judge no better than a coin, at most ``ci_low``.
        """
        return 0.5 + self.skill * (float(p) - 0.5)

    @property
    def is_guessing(self) -> bool:
        """True when the judge's accuracy is not surely above a coin (lower bound <= 0.5)."""
        return self.skill <= 0.0

    def in_words(self) -> str:
        """The judge's figure as one sentence for the user, next to a proposed graph.

        Returns:
            e.g. ``"this model orients 53% [43, 62] of benchmark pairs right ...: its arrows are guesses; ..."``.
        """
        fig = (f"this model orients {100 * self.accuracy:.0f}% [{100 * self.ci_low:.0f}, "
               f"{100 * self.ci_high:.0f}] of benchmark pairs right (Tübingen, both orders asked)")
        if self.is_guessing:
            return fig + ": its arrows are guesses; connect a stronger model or add data"
        if self.ci_low < 0.75:
            return fig + ": better than a coin but often wrong, so few arrows are committed; a stronger model or data would help"
        return fig + ": only its confident arrows are drawn, the rest are left undecided"

    def summary(self) -> str:
        """Plain sentences: the figure, the raw (one-order) accuracy, the always-"A" baseline.

        Returns:
            text.
        """
        lines = [f"{self.llm}: {self.in_words()}."]
        if math.isfinite(self.raw_accuracy):
            lines.append(f"Asked once with the first variable as option A it scores {100 * self.raw_accuracy:.0f}% "
                         f"(always answering A would score {100 * self._share_r():.0f}% that way, 50% balanced).")
        lines.append(f"{self.n} pairs, 95% Wilson interval; figure {self.source}.")
        return "\n".join(lines)

    def _share_r(self) -> float:
        return float(np.mean([a["truth"] == "R" for a in self.answers])) if self.answers else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values. Returns: a dict for :meth:`from_dict`."""
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "JudgeResult":
        """Rebuild from :meth:`to_dict` output (``None`` read back as NaN). Returns: the result."""
        try:
            kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
            for k in ("accuracy", "ci_low", "ci_high", "raw_accuracy"):
                if k in kw:
                    kw[k] = float("nan") if kw[k] is None else float(kw[k])
            kw["n"] = int(kw["n"])
            return cls(**kw)
        except (KeyError, TypeError, ValueError) as exc:
            raise CausalError(f"not a judge result: {exc}") from None


def wilson_interval(correct: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (statsmodels' ``proportion_confint``).

    Returns:
        (low, high); (0, 1) when ``n`` is 0.

    Examples:
        >>> [round(x, 3) for x in wilson_interval(57, 108)]
        [0.434, 0.619]
    """
    if n <= 0:
        return 0.0, 1.0
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(float(correct), int(n), alpha=0.05, method="wilson")
    return float(lo), float(hi)


def tuebingen_pairs() -> pd.DataFrame:
    """The Tübingen pairs shipped with whylm: ``pair``, ``var1``, ``var2``, ``ground_truth`` (R: var1 causes var2).

    Two of the 108 pairs (pair0089, pair0090) name both variables alike ("root decomposition Oct
    (grassl)" twice): no judge can orient them from names, so they are left out; 106 remain.

    Returns:
        a DataFrame with stripped strings, in the dataset's order.

    Examples:
        >>> df = tuebingen_pairs(); len(df), int((df.ground_truth == "R").sum()), df.var1[0]
        (106, 80, 'Altitude')
    """
    with resources.files("causal").joinpath("data_files", "tuebingen_pairs.csv").open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh)
    df = df.rename(columns={"Unnamed: 0": "pair"})
    for c in ("pair", "var1", "var2", "ground_truth"):
        df[c] = df[c].astype(str).str.strip()
    df = df[df.var1 != df.var2]
    return df[["pair", "var1", "var2", "ground_truth"]].reset_index(drop=True)


def _select(n_pairs: int | None, seed: int) -> pd.DataFrame:
    df = tuebingen_pairs()
    if n_pairs is None:
        return df
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise CausalError(f"n_pairs must be a positive integer or None, got {n_pairs!r}")
    if n_pairs >= len(df):
        return df
    idx = np.sort(generator(seed).choice(len(df), size=int(n_pairs), replace=False))
    return df.iloc[idx].reset_index(drop=True)


def _credit(p_var1_causes: float, truth: str) -> float:
    """1 for the right direction, 0 for the wrong one, 0.5 for a tie (a judge that cannot tell)."""
    if p_var1_causes == 0.5:
        return 0.5
    return float((p_var1_causes > 0.5) == (truth == "R"))


def _settings(backend: Any) -> dict[str, Any]:
    s = getattr(backend, "settings", None)
    return dict(s()) if callable(s) else {}


def _key(label: str, settings: Mapping[str, Any], n_pairs: int | None, seed: int) -> str:
    parts = [label, dict(settings), PROMPT_VERSION, n_pairs, seed if n_pairs is not None else 0]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _cache_file(backend: Any, key: str) -> Path | None:
    cache = getattr(backend, "cache", None)
    path = getattr(cache, "path", None)
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser().parent / "judge" / f"{key}.json"


def _shipped(label: str, settings: Mapping[str, Any]) -> JudgeResult | None:
    try:
        text = resources.files("causal").joinpath("data_files", SHIPPED_FIGURES).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None
    for d in json.loads(text):
        if d.get("llm") == label and d.get("settings", {}) == dict(settings):
            res = JudgeResult.from_dict(d)
            res.source = "shipped"
            return res
    return None


def known_judge(llm: Any = None) -> JudgeResult | None:
    """The judge figure whylm already has for this backend (on-disk cache, else the shipped one).

    Returns:
        a :class:`JudgeResult` for all pairs, or None when this backend was never measured.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> known_judge(ReplayBackend({})) is None
        True
    """
    backend = get_backend(llm)
    label, settings = backend_label(backend), _settings(backend)
    return _read_cached(_cache_file(backend, _key(label, settings, None, 0))) or _shipped(label, settings)


def _read_cached(path: Path | None) -> JudgeResult | None:
    """The judge figure cached at ``path``, or None (none there, or a corrupt entry: ignored and
    overwritten by the next measurement)."""
    if path is None or not path.is_file():
        return None
    try:
        res = JudgeResult.from_json(path.read_text(encoding="utf-8"))
    except (CausalError, ValueError, OSError):
        return None
    res.source = "cache"
    return res


def judge_cost(llm: Any = None, n_pairs: int | None = None) -> Cost:
    """The predicted cost of :func:`evaluate_judge` (two questions per pair).

    Returns:
        a :class:`explain.budget.Cost` in questions and seconds.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> judge_cost(ReplayBackend({}), n_pairs=10).passes
        20
    """
    backend = get_backend(llm)
    n = len(_select(n_pairs, 0))
    questions = 2 * n
    return Cost(f"measuring {backend_label(backend)} on {n} Tübingen pairs", seconds=questions * seconds_per_question(backend),
                passes=questions, unit="questions", cheaper="use n_pairs= for a rougher figure")


def seconds_per_question(backend: Any) -> float:
    """Predicted seconds for one forced-choice question to ``backend``.

    A local model: its measured speed per token position on this machine times a question's length;
    an HTTP server: :data:`ASSUMED_SECONDS_PER_QUESTION`; a replay or user object: 0.

    Returns:
        seconds.
    """
    lm = getattr(backend, "lm", None)
    if lm is not None and hasattr(lm, "model"):
        from explain.budget import seconds_per_position

        return 120 * seconds_per_position(lm)  # a pair question with the chat template: ~120 tokens
    if getattr(backend, "base_url", None):
        return ASSUMED_SECONDS_PER_QUESTION
    return 0.0


def evaluate_judge(
    llm: Any = None,
    n_pairs: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    max_seconds: float | None = None,
    use_cache: bool = True,
) -> JudgeResult:
    """Measure a backend's cause-effect orientation accuracy on the shipped Tübingen pairs.

    Each pair is asked in both orders with the prompt :func:`causal.propose_graph` uses; the
    averaged probability of "var1 causes var2" decides (position-balanced).

    Args:
        llm: ``None`` (embedded model), a backend spec or a backend object.
        n_pairs: a seeded random subset of this many pairs (``None``: all 106, see :func:`tuebingen_pairs`).
        seed: seed of that subset.
        progress: a progress bar (``None``: when interactive and long).
        max_seconds: refuse (one line) when the predicted time is over this (default 600 s).
        use_cache: read and write the on-disk figure (per backend, model and settings).

    Returns:
        a :class:`JudgeResult` (``.accuracy``, ``.ci_low``, ``.ci_high``, ``.n``, ``.answers``).

    Examples:
        >>> j = evaluate_judge()                      # doctest: +SKIP
        >>> print(j.summary())                        # doctest: +SKIP
    """
    backend = get_backend(llm)
    label, settings = backend_label(backend), _settings(backend)
    key = _key(label, settings, n_pairs, seed)
    path = _cache_file(backend, key) if use_cache else None
    if use_cache:
        cached = _read_cached(path)
        if cached is not None:
            return cached
        if n_pairs is None:
            shipped = _shipped(label, settings)
            if shipped is not None:
                return shipped
    pairs = _select(n_pairs, seed)
    cost = check_budget(judge_cost(backend, len(pairs)), max_seconds)
    asker = Asker(backend, None)
    answers = []
    with bar(len(pairs), "judging pairs", want_progress(progress, cost.seconds)) as pbar:
        for row in pairs.itertuples(index=False):
            p = asker.pair(row.var1, row.var2)  # [var1 -> var2, var2 -> var1], both orders asked
            first = asker.first_order(row.var1, row.var2)
            answers.append({
                "pair": row.pair, "var1": row.var1, "var2": row.var2, "truth": row.ground_truth,
                "p_var1_causes": float(p[0]), "p_var1_first": float(first),
                "correct": _credit(float(p[0]), row.ground_truth),
            })
            pbar.update(1)
    n = len(answers)
    correct = sum(a["correct"] for a in answers)
    raw = np.mean([_credit(a["p_var1_first"], a["truth"]) for a in answers])
    lo, hi = wilson_interval(correct, n)
    res = JudgeResult(llm=label, accuracy=correct / n, ci_low=lo, ci_high=hi, n=n, raw_accuracy=float(raw),
                      answers=answers, settings=settings, source="measured")
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(dumps(res.to_dict()), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache must not break a run
    return res


def resolve_judge(backend: Any, judge: Any) -> tuple[JudgeResult | None, bool]:
    """The judge record a causal question calibrates with, from a ``judge=`` argument.

    Args:
        backend: the LLM backend that will answer.
        judge: ``None`` (the backend's known record, cached or shipped), a :class:`JudgeResult`, or
            ``False`` (the model's own, uncalibrated probabilities).

    Returns:
        (the record or None for uncalibrated, whether it must still be measured: ``None`` given and
        no record exists).

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> resolve_judge(ReplayBackend({}), None), resolve_judge(ReplayBackend({}), False)
        ((None, True), (None, False))
    """
    if judge is None:
        known = known_judge(backend)
        return known, known is None
    if judge is False:
        return None, False
    if isinstance(judge, JudgeResult):
        return judge, False
    raise CausalError(f"judge must be None, False or a JudgeResult, got {type(judge).__name__}")


def measure_judge(backend: Any, progress: bool, max_seconds: float | None) -> JudgeResult:
    """:func:`evaluate_judge` for a question that needs the record, with the way out in its error.

    Returns:
        the :class:`JudgeResult`.
    """
    try:
        return evaluate_judge(backend, progress=progress, max_seconds=max_seconds)
    except CausalError as exc:
        raise CausalError(f"cannot measure {backend_label(backend)} as a judge on the Tübingen pairs "
                          f"({exc}): pass judge= a JudgeResult, or judge=False (--no-judge) for "
                          "uncalibrated probabilities") from None
