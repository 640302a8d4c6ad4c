"""Token-level explanations of Hugging Face causal LMs: attribution and hallucination signals.

Example:
    >>> from explain import LanguageModel, attribute
    >>> lm = LanguageModel.load()                                            # doctest: +SKIP
    >>> res = attribute(lm, "The capital of France is", target=" Paris")     # doctest: +SKIP
    >>> res.seq_attr.shape                                                  # doctest: +SKIP
    (5,)
"""

from explain.attribution import METHODS, attribute
from explain.errors import ExplainError
from explain.model import LanguageModel
from explain.result import AttributionResult

try:  # signals lands in its own module; keep attribution usable while it is absent
    from explain.signals import SignalReport, signals
except ModuleNotFoundError as _exc:  # pragma: no cover
    if _exc.name != "explain.signals":
        raise

__all__ = ["METHODS", "AttributionResult", "ExplainError", "LanguageModel", "SignalReport", "attribute", "signals"]
