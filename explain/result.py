"""`AttributionResult`: what every attribution method returns, and its converters.

Layout follows captum: ``token_attr`` is (m, n), one row per output (target) token, one column
per input feature (a prompt token, or a named segment). ``seq_attr`` (n,) attributes the whole
target's log-probability.

Example:
    >>> r = AttributionResult(["a", "b"], ["c"], np.array([[0.5, -0.1]]), np.array([0.5, -0.1]),
    ...                       np.array([-1.2]), method="ablation")
    >>> AttributionResult.from_json(r.to_json()).token_attr.tolist()
    [[0.5, -0.1]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explain import plots


@dataclass
class AttributionResult:
    """Attributions of ``output_tokens`` to ``input_tokens``.

    Attributes:
        input_tokens: readable strings, one per input feature (token or segment name).
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
        """A JSON-ready dict (NaN becomes None). Returns: the dict.

        Example:
            >>> sorted(AttributionResult(["a"], ["b"], [[1.0]], [1.0], [0.0]).to_dict())[:3]
            ['info', 'input_tokens', 'method']
        """
        return {
            "input_tokens": list(self.input_tokens),
            "output_tokens": list(self.output_tokens),
            "token_attr": _nan_to_none(self.token_attr),
            "seq_attr": _nan_to_none(self.seq_attr),
            "target_logprobs": _nan_to_none(self.target_logprobs),
            "method": self.method,
            "model": self.model,
            "prompt": self.prompt,
            "target": self.target,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AttributionResult":
        """Rebuild a result from :meth:`to_dict` output. Returns: an :class:`AttributionResult`."""
        n = len(d["input_tokens"])
        return cls(
            input_tokens=list(d["input_tokens"]),
            output_tokens=list(d["output_tokens"]),
            token_attr=_none_to_nan(d["token_attr"]).reshape(len(d["output_tokens"]), n),
            seq_attr=_none_to_nan(d["seq_attr"]),
            target_logprobs=_none_to_nan(d["target_logprobs"]),
            method=d.get("method", ""),
            model=d.get("model", ""),
            prompt=d.get("prompt", ""),
            target=d.get("target", ""),
            info=dict(d.get("info", {})),
        )

    def to_json(self, indent: int | None = None) -> str:
        """The result as a JSON string. Returns: the string."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "AttributionResult":
        """Parse :meth:`to_json` output. Returns: an :class:`AttributionResult`."""
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------ converters
    def to_captum(self):
        """A ``captum.attr.LLMAttributionResult`` with the same numbers (torch tensors).

        Example:
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

        Example:
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

    def to_inseq(self) -> dict[str, Any]:
        """A dict in inseq's decoder-only layout: ``target_attributions`` is (n + m, m), transposed
        relative to ours, with rows for the prompt then the generated tokens (NaN where a token
        comes after the step, or is not attributed by this method).

        Returns:
            ``{"source": [...], "target": [...], "target_attributions": [[...]], "step_scores": {...}}``.
        """
        n, m = len(self.input_tokens), len(self.output_tokens)
        mat = np.full((n + m, m), np.nan)
        mat[:n, :] = self.token_attr.T
        return {
            "source": list(self.input_tokens),
            "target": list(self.input_tokens) + list(self.output_tokens),
            "target_attributions": _nan_to_none(mat),
            "step_scores": {"probability": _nan_to_none(np.exp(self.target_logprobs))},
            "attribution_method": self.method,
        }

    # ------------------------------------------------------------- showing
    def figure(self, title: str | None = None):
        """A plotly heatmap, output tokens (rows) x input features (columns).

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        return plots.heatmap(
            self.token_attr,
            self.input_tokens,
            self.output_tokens,
            title=title or f"{self.method} attribution: output token x input token",
        )

    def html(self, row: int | None = None) -> str:
        """Input tokens highlighted by attribution (``row=None``: to the whole target), escaped.

        Returns:
            an HTML fragment.
        """
        values = self.seq_attr if row is None else self.token_attr[row]
        what = "the whole target" if row is None else f"output token {row}: {self.output_tokens[row]!r}"
        return plots.highlight_html(self.input_tokens, values, title=f"Attribution to {what}")

    def top_features(self, k: int = 5, row: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` input features with the largest attribution (to ``row``, or the whole target).

        Returns:
            a list of (token, value), largest first.
        """
        values = self.seq_attr if row is None else self.token_attr[row]
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf))[:k]
        return [(self.input_tokens[i], float(values[i])) for i in order]


def _nan_to_none(a: np.ndarray) -> Any:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 0:
        return None if np.isnan(arr) else float(arr)
    return [_nan_to_none(x) for x in arr] if arr.ndim > 1 else [None if np.isnan(x) else float(x) for x in arr]


def _none_to_nan(a: Any) -> np.ndarray:
    return np.array(a, dtype=float)  # None becomes nan under dtype=float
