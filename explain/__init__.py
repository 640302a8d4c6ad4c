"""Token-level explanations of Hugging Face causal LMs: attribution and hallucination signals.

Example:
    >>> from explain import LanguageModel, attribute
    >>> lm = LanguageModel.load()                                            # doctest: +SKIP
    >>> res = attribute(lm, "The capital of France is", target=" Paris")     # doctest: +SKIP
    >>> res.seq_attr.shape                                                  # doctest: +SKIP
    (5,)
"""

from explain.errors import ExplainError
from explain.model import LanguageModel

__all__ = ["ExplainError", "LanguageModel"]
