"""Token-level explanations of Hugging Face causal LMs: attribution and hallucination signals.

Examples:
    >>> from explain import LanguageModel, attribute
    >>> lm = LanguageModel.load()                                            # doctest: +SKIP
    >>> res = attribute(lm, "The capital of France is", target=" Paris")     # doctest: +SKIP
    >>> res.seq_attr.shape                                                  # doctest: +SKIP
    (5,)
"""

from explain.attribution import METHODS, attribute, estimate_cost
from explain.audit import AuditSummary, audit
from explain.budget import Cost, check_budget
from explain.errors import ExplainError, WhylmError
from explain.model import LanguageModel
from explain.result import AttributionResult
from explain.signals import SignalReport, calibrate_signals, register_signal, signals

__all__ = [
    "METHODS", "AttributionResult", "AuditSummary", "Cost", "ExplainError", "LanguageModel", "SignalReport",
    "WhylmError", "attribute", "audit", "calibrate_signals", "check_budget", "estimate_cost", "register_signal",
    "signals",
]
