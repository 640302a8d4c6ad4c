"""Hallucination signals: which tokens and sentences of an answer are likely made up, and how likely.

- :mod:`~explain.signals.registry`: ``register_signal`` — a token-level signal is one function of
  the response's token statistics; the built-ins (:mod:`~explain.signals.token`,
  :mod:`~explain.signals.grounding`) are registered the same way;
- :mod:`~explain.signals.consistency`: sampled answers, embeddings, judges, semantic entropy;
- :mod:`~explain.signals.calibration`: calibrated ``risk`` and ``verdict`` from a JSON file, fitted
  with :func:`calibrate_signals` (:mod:`~explain.signals.fitting`);
- :mod:`~explain.signals.evidence`: the context sentences each answer sentence rests on;
- :mod:`~explain.signals.api`: :func:`signals`; :mod:`~explain.signals.report`: :class:`SignalReport`.

Examples:
    >>> sorted(SIGNALS)[:3]
    ['context_unused', 'entropy', 'neg_logprob']
    >>> "contradicted" in SCORE_DOCS
    True
    >>> "ungrounded_max" in SCORE_DOCS
    True
"""

from explain.signals import token, grounding  # noqa: F401  (registers the built-in signals)
from explain.signals.api import sampling_cost, signals
from explain.signals.fitting import calibrate_signals, read_examples
from explain.signals.calibration import (
    DECISION_THRESHOLD, VERDICT_THRESHOLDS, VERDICTS, Calibration, load_calibration, verdict,
)
from explain.signals.consistency import SCORE_DOCS as CONSISTENCY_DOCS
from explain.signals.consistency import JudgeError, LLMJudge, consistency_scores, draw_samples, embed
from explain.signals.evidence import SCORE_DOCS as EVIDENCE_DOCS
from explain.signals.evidence import Evidence
from explain.signals.grounding import GROUNDED_NATS, grounding_scores
from explain.signals.registry import SIGNALS, SignalContext, register_signal, score_docs, unregister_signal
from explain.signals.report import SentenceSignals, SignalReport

SCORE_DOCS: dict[str, str] = {**score_docs(), **CONSISTENCY_DOCS, **EVIDENCE_DOCS}
"""Range and meaning of every built-in sequence score (higher = more likely hallucinated); a
custom signal's scores are in :func:`explain.signals.registry.score_docs`."""

__all__ = [
    "DECISION_THRESHOLD", "GROUNDED_NATS", "SCORE_DOCS", "SIGNALS", "VERDICTS",
    "VERDICT_THRESHOLDS", "Calibration", "Evidence", "JudgeError", "LLMJudge", "SentenceSignals", "SignalContext",
    "SignalReport", "calibrate_signals", "consistency_scores", "draw_samples", "embed", "grounding_scores",
    "load_calibration", "read_examples", "register_signal", "sampling_cost", "signals",
    "unregister_signal", "verdict",
]
