"""Calibrated hallucination risk: a logistic model over signal scores, stored as a small JSON file.

A :class:`Calibration` holds one logistic regression per *case* — ``"context"`` (a passage the
answer should rest on was given) and ``"no_context"`` — over a few sequence scores of
:func:`explain.signals`, plus what it was fitted on and its metrics there. ``risk`` is its
probability that the answer is **not supported**; the verdict reads it against
:data:`VERDICT_THRESHOLDS`:

- ``risk < 0.3``: ``"supported"``
- ``0.3 <= risk < 0.7``: ``"uncertain"``
- ``risk >= 0.7``: ``"likely hallucinated"``

(the binary decision for accuracy figures is ``risk >= 0.5``, :data:`DECISION_THRESHOLD`). A
calibration is valid only for the model (and prompt format) it was fitted on; one ships for the
embedded SmolLM2-135M-Instruct (``explain/signals/calibration/``), and
:func:`explain.calibrate_signals` / ``whylm signals calibrate`` fit one for any other model.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0, 1, 200), rng.normal(2, 1, 200)]; y = np.r_[np.zeros(200), np.ones(200)]
    >>> case = fit_case(["ungrounded_max"], x[:, None], y, description="toy")
    >>> cal = Calibration(model="toy", cases={"context": case})
    >>> p = cal.predict({"ungrounded_max": 3.0}, has_context=True)
    >>> 0.9 < p <= 1.0, verdict(p)
    (True, 'likely hallucinated')
    >>> Calibration.from_json(cal.to_json()).predict({"ungrounded_max": 3.0}, has_context=True) == p
    True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from explain.errors import ExplainError
from explain.serialize import Result, jsonable
from explain.signals.metrics import accuracy, auroc_labels, brier, ece

VERDICT_THRESHOLDS = (0.3, 0.7)
"""risk below the first: ``"supported"``; at or above the second: ``"likely hallucinated"``;
between: ``"uncertain"``."""

DECISION_THRESHOLD = 0.5
"""risk at or above this counts as "hallucinated" in accuracy figures."""

VERDICTS = ("supported", "uncertain", "likely hallucinated")

SHIPPED = Path(__file__).with_name("calibration")
"""The folder of calibration files shipped with whylm (one per model, named by :func:`model_slug`)."""

CANDIDATES = {
    "context": ["ungrounded_max", "ungrounded", "ungrounded_fraction", "unsupported", "contradicted",
                "unseen_names", "unseen_words", "conflict", "mean_neg_logprob", "max_neg_logprob", "mean_entropy"],
    "no_context": ["mean_neg_logprob", "max_neg_logprob", "mean_entropy"],
}
"""The scores each case's model may use; a score whose dev AUROC is below 0.5 (pointing the wrong
way) is dropped when fitting."""


def verdict(risk: float | None) -> str | None:
    """The verdict of a risk by :data:`VERDICT_THRESHOLDS`.

    Returns:
        ``"supported"``, ``"uncertain"``, ``"likely hallucinated"``, or None for no risk.

    Examples:
        >>> [verdict(r) for r in (0.1, 0.5, 0.9, None)]
        ['supported', 'uncertain', 'likely hallucinated', None]
    """
    if risk is None or not math.isfinite(risk):
        return None
    lo, hi = VERDICT_THRESHOLDS
    return VERDICTS[0] if risk < lo else VERDICTS[2] if risk >= hi else VERDICTS[1]


def model_slug(name: str) -> str:
    """A file-name form of a model name: the last path part, lower case, ``[a-z0-9.-]`` only.

    Examples:
        >>> model_slug("HuggingFaceTB/SmolLM2-135M-Instruct")
        'smollm2-135m-instruct'
    """
    last = re.split(r"[/\\]", str(name).rstrip("/\\"))[-1]
    return re.sub(r"[^a-z0-9.-]+", "-", last.lower()).strip("-") or "model"


@dataclass
class Case:
    """A logistic model for one case (with or without a context).

    ``risk = sigmoid(intercept + sum_k coef_k * (score_k - mean_k) / scale_k)``.

    Attributes:
        features: score names (keys of ``SignalReport.scores``).
        coefficients, intercept: of the standardised features.
        mean, scale: standardisation of each feature on the fitting data.
        fitted_on: the data in words.
        n: examples fitted on; ``positives``: of which hallucinated.
        metrics: in-sample metrics on the fitting data (auroc, brier, ece, accuracy).
        directions: each candidate score's AUROC on the fitting data (< 0.5 = wrong way, dropped).
    """

    features: list[str]
    coefficients: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]
    fitted_on: str = ""
    n: int = 0
    positives: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    directions: dict[str, float] = field(default_factory=dict)

    def predict(self, scores: Mapping[str, float]) -> float | None:
        """Returns: the risk for one score dict, or None when a feature is missing or not finite.

        Examples:
            >>> c = Case(["s"], [2.0], 0.0, [0.0], [1.0])
            >>> round(c.predict({"s": 1.0}), 4), c.predict({})
            (0.8808, None)
        """
        x = []
        for name in self.features:
            v = scores.get(name)
            if v is None or not math.isfinite(float(v)):
                return None
            x.append(float(v))
        z = self.intercept + float(np.dot(self.coefficients, (np.array(x) - self.mean) / np.array(self.scale)))
        return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0


# A standardised logistic model's weights stay far below this; a larger one (1e308) only ever
# gives a risk of exactly 0 or 1 whatever the scores say.
MAX_WEIGHT = 1e3


def _finite(value: Any, what: str, case: str, bound: float = MAX_WEIGHT) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) \
            or abs(float(value)) > bound:
        where = f"calibration case {case!r}: " if case else "calibration "
        raise ExplainError(f"{where}{what} is {value!r}, not a finite number within {bound:.0e} of 0")
    return float(value)


def _check_case(name: str, case: "Case") -> None:
    """Raise ExplainError naming the first value of ``case`` that a fitted model cannot hold."""
    if not all(isinstance(f, str) for f in case.features):
        raise ExplainError(f"calibration case {name!r}: features must be score names (strings)")
    case.intercept = _finite(case.intercept, "intercept", name)
    case.coefficients = [_finite(v, f"coefficients[{i}]", name) for i, v in enumerate(case.coefficients)]
    case.mean = [_finite(v, f"mean[{i}]", name, bound=1e12) for i, v in enumerate(case.mean)]
    case.scale = [_finite(v, f"scale[{i}]", name, bound=1e12) for i, v in enumerate(case.scale)]
    if any(v <= 0 for v in case.scale):
        raise ExplainError(f"calibration case {name!r}: a scale is <= 0 ({case.scale})")


@dataclass
class Calibration(Result):
    """Calibrations of one model: a :class:`Case` per ``"context"`` / ``"no_context"``.

    Attributes:
        model: the model it was fitted for (its ``LanguageModel.name``).
        cases: case name -> :class:`Case`.
        notes: how it was made (prompt format, settings).
        thresholds: :data:`VERDICT_THRESHOLDS` as fitted.
    """

    model: str
    cases: dict[str, Case]
    notes: list[str] = field(default_factory=list)
    thresholds: tuple[float, float] = VERDICT_THRESHOLDS

    def case(self, has_context: bool) -> Case | None:
        """Returns: the case that applies, or None when this calibration has none for it.

        Examples:
            >>> Calibration("m", {"context": Case(["s"], [1.0], 0.0, [0.0], [1.0])}).case(False) is None
            True
        """
        return self.cases.get("context" if has_context else "no_context")

    def predict(self, scores: Mapping[str, float], has_context: bool) -> float | None:
        """Returns: the calibrated risk in [0, 1], or None when no case or feature applies."""
        case = self.case(has_context)
        return None if case is None else case.predict(scores)

    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict (the file format)."""
        return jsonable({"model": self.model, "thresholds": list(self.thresholds), "notes": self.notes,
                         "cases": {k: vars(c) for k, c in self.cases.items()}})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibration":
        """Returns: the calibration in ``d`` (as written by :meth:`to_dict`).

        Raises:
            ExplainError: not a calibration, or a number a fitted model cannot hold (NaN, inf,
                beyond :data:`MAX_WEIGHT`, a string, a scale <= 0), named in one line.

        Examples:
            >>> case = {"features": ["s"], "coefficients": [float("nan")], "intercept": 0.0, "mean": [0.0], "scale": [1.0]}
            >>> Calibration.from_dict({"model": "m", "cases": {"context": case}})
            Traceback (most recent call last):
            ...
            explain.errors.ExplainError: calibration case 'context': coefficients[0] is nan, not a finite number within 1e+03 of 0
        """
        try:
            cases = {k: Case(**v) for k, v in d["cases"].items()}
            for name, c in cases.items():
                if not (len(c.features) == len(c.coefficients) == len(c.mean) == len(c.scale)):
                    raise ExplainError(f"calibration case {name!r}: features and coefficients differ in length")
                _check_case(name, c)
            thresholds = tuple(_finite(t, f"thresholds[{i}]", "") for i, t in
                               enumerate(d.get("thresholds", VERDICT_THRESHOLDS)))
            if len(thresholds) != 2 or not 0 < thresholds[0] <= thresholds[1] < 1:
                raise ExplainError(f"calibration thresholds must be two numbers 0 < low <= high < 1, got {thresholds}")
            return cls(model=str(d.get("model", "")), cases=cases, notes=list(d.get("notes", [])),
                       thresholds=thresholds)  # type: ignore[arg-type]
        except ExplainError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ExplainError(f"not a whylm signals calibration ({type(exc).__name__}: {exc})") from None

    def summary(self) -> str:
        """Returns: one sentence per case: features, data and dev metrics.

        Examples:
            >>> Calibration("m", {}).summary()
            'Calibration for m.'
        """
        lines = [f"Calibration for {self.model}."]
        for name, c in self.cases.items():
            m = c.metrics
            lines.append(f"{name}: {', '.join(c.features)}; fitted on {c.n} answers ({c.fitted_on}); "
                         f"AUROC {m.get('auroc', float('nan')):.3f}, Brier {m.get('brier', float('nan')):.3f}, "
                         f"accuracy {m.get('accuracy', float('nan')):.3f} there.")
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write the JSON file. Returns: the path."""
        path = Path(path)
        path.write_text(self.to_json(indent=1) + "\n", encoding="utf-8")
        return path


def load_calibration(spec: Any, model_name: str = "") -> tuple[Calibration | None, str]:
    """Resolve the ``calibration=`` argument of :func:`explain.signals`.

    Args:
        spec: None (the file shipped for ``model_name``, if any), False (none), a path, a dict or a
            :class:`Calibration`.
        model_name: the model's name, to find a shipped file.

    Returns:
        (the calibration or None, a note saying why there is none, or "").

    Raises:
        ExplainError: a path that does not exist or is not a calibration file.

    Examples:
        >>> load_calibration(False)
        (None, 'calibration=False: no risk computed')
        >>> load_calibration(None, "my-own-model")[1][:39]
        'no calibration ships for model my-own-m'
    """
    if spec is False:
        return None, "calibration=False: no risk computed"
    if isinstance(spec, Calibration):
        return spec, ""
    if isinstance(spec, Mapping):
        return Calibration.from_dict(spec), ""
    if spec is None:
        path = SHIPPED / f"{model_slug(model_name)}.json"
        if not path.is_file():
            return None, (f"no calibration ships for model {model_name or '?'}: risk is not computed; fit one from "
                          "labelled answers with explain.calibrate_signals or `whylm signals calibrate`")
    else:
        path = Path(spec)
    from explain.cli_io import read_json_object

    data = read_json_object(path, "calibration file")
    try:
        return Calibration.from_dict(data), ""
    except ExplainError as exc:
        raise ExplainError(f"calibration file '{path}': {exc}") from None


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (scikit-learn's ``LogisticRegression``) on standardised features.

    Args:
        x: (n, k) features; y: (n,) 0/1 labels.
        l2: penalty per example: ``C = 1 / (l2 * n)``, so its strength does not grow with the data.
        weights: per-example weights (e.g. to give each data set the same total weight).

    Returns:
        (coefficients, intercept); the intercept is not penalised.

    Examples:
        >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0]]); y = np.array([0, 1, 0, 1])
        >>> w, b = fit_logistic(x, y)
        >>> bool(w[0] > 0), abs(round(b, 4))
        (True, 0.0)
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=np.float64)
    model = LogisticRegression(C=1.0 / (l2 * len(x)), tol=1e-10, max_iter=10_000)
    model.fit(x, np.asarray(y, dtype=int), sample_weight=weights)
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def fit_case(features: Sequence[str], x: np.ndarray, y: np.ndarray, description: str = "",
             drop_wrong_way: bool = True, weights: np.ndarray | None = None) -> Case:
    """Fit one case: check each feature's direction, drop those pointing the wrong way, fit, measure.

    Every score is oriented higher = more suspicious, so a feature whose fitted coefficient comes
    out negative (it only corrects another, correlated one) is dropped too and the rest refitted:
    the risk then never falls when a score rises, and an answer's risk is at least that of any
    sentence whose scores are all lower than the answer's.

    Args:
        features: the column names of ``x``.
        x: (n, k) score values; y: (n,) labels, 1 = hallucinated / not supported.
        description: the data in words (stored in the file).
        drop_wrong_way: drop features whose AUROC for the label is below 0.5 or whose coefficient
            is negative.
        weights: per-example weights of the fit (metrics are unweighted).

    Returns:
        a :class:`Case` with its in-sample metrics.

    Raises:
        ExplainError: fewer than 4 examples of either label, or no usable feature.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if min(int(y.sum()), int((1 - y).sum())) < 4:
        raise ExplainError(f"calibration needs at least 4 supported and 4 hallucinated examples, "
                           f"got {int((1 - y).sum())} and {int(y.sum())}")
    directions = {f: auroc_labels(x[:, k], y) for k, f in enumerate(features)}
    keep = [k for k, f in enumerate(features) if np.all(np.isfinite(x[:, k])) and np.std(x[:, k]) > 0
            and (not drop_wrong_way or directions[f] >= 0.5)]
    if not keep:
        raise ExplainError("no signal score separates the labels in the right direction: cannot calibrate")
    while True:
        xs = x[:, keep]
        mean, scale = xs.mean(axis=0), xs.std(axis=0)
        coef, intercept = fit_logistic((xs - mean) / scale, y, weights=weights)
        if not drop_wrong_way or len(keep) == 1 or coef.min() >= 0:
            break
        keep = [k for k, c in zip(keep, coef) if c > coef.min()]
    case = Case(features=[features[k] for k in keep], coefficients=coef.tolist(), intercept=intercept,
                mean=mean.tolist(), scale=scale.tolist(), fitted_on=description, n=int(len(y)),
                positives=int(y.sum()), directions=directions)
    p = np.array([case.predict(dict(zip(case.features, row))) for row in xs])
    case.metrics = {"auroc": auroc_labels(p, y), "brier": brier(p, y), "ece": ece(p, y),
                    "accuracy": accuracy(p, y, DECISION_THRESHOLD)}
    return case
