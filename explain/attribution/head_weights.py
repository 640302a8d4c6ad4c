"""Per-head weights for the ``fitted_attention`` screen, fitted to leave-one-out (AT2-style).

Plain attention is a poor guide to which context sentence an answer needs: most heads look at
recent or frequent tokens, and a linking fact ("the Varnel lab is in the Ostrin building") gets
little attention from the positions that write the answer. AT2 (Cohen-Wang et al. 2025) learns one
weight per attention head so that weighted attention predicts ablation effects. Here each source
gets two attention profiles per layer and head: the attention paid to its tokens by the positions
that predict the target, and by the question's positions (a question names what links to the
answer), each normalised over the sources. A fitted weight per (profile, layer, head) turns them
into one score; the weights are fitted on leave-one-out over generated haystacks
(``whylm fit-screen``, :func:`fit_head_weights`) and shipped per model beside its signals
calibration (``explain/signals/calibration/<model>.heads.json``).

Examples:
    >>> w = HeadWeights(model="toy", weights=np.ones((2, 1, 2)))
    >>> HeadWeights.from_dict(w.to_dict()).weights.shape
    (2, 1, 2)
    >>> score_sources(np.array([[[[0.5, 0.5]], [[0.0, 1.0]]]]).transpose(1, 0, 2, 3).reshape(2, 1, 1, 2),
    ...               np.ones((2, 1, 1))).tolist()
    [0.5, 1.5]
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from explain.attribution.attention import target_attention
from explain.attribution.inputs import AttributionInput
from explain.errors import ExplainError
from explain.model import LanguageModel

PROFILES = ("target", "question")
"""The attention profiles of a source: paid by the target-predicting positions, by the question's."""

DEFAULT_TEMPERATURE = 16.0
"""Temperature of the fit's target, in nats. High: a linking fact whose removal costs 0.5 nats still
counts beside the key fact's 10 (low temperatures fit the key fact only)."""

SHIPPED = Path(__file__).resolve().parent.parent / "signals" / "calibration"
"""Where head weights ship: beside each model's signals calibration, as ``<model slug>.heads.json``."""


@dataclass
class HeadWeights:
    """Fitted weights of the ``fitted_attention`` screen for one model.

    Attributes:
        model: the model's name (as :attr:`LanguageModel.name`).
        weights: float (profiles, layers, heads).
        fitted_on: what the weights were fitted on, in words.
        metrics: held-out figures measured when they were fitted.
    """

    model: str
    weights: np.ndarray
    fitted_on: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict. Returns: the dict."""
        return {"kind": "whylm head weights", "model": self.model, "profiles": list(PROFILES),
                "shape": list(self.weights.shape), "weights": np.round(self.weights, 6).tolist(),
                "fitted_on": self.fitted_on, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HeadWeights":
        """Read :meth:`to_dict`'s output. Returns: the weights. Raises: ExplainError if malformed."""
        try:
            w = np.asarray(d["weights"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise ExplainError("not a whylm head-weights file (no numeric 'weights')") from None
        if w.ndim != 3 or w.shape[0] != len(PROFILES) or not np.isfinite(w).all():
            raise ExplainError(f"head weights must be finite numbers of shape ({len(PROFILES)}, layers, heads), "
                               f"got shape {tuple(w.shape)}")
        return cls(str(d.get("model", "")), w, str(d.get("fitted_on", "")), dict(d.get("metrics") or {}))

    def save(self, path: str | Path) -> Path:
        """Write the weights as JSON. Returns: the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def shipped_path(model_name: str) -> Path:
    """The shipped head-weights file of a model (it may not exist).

    Examples:
        >>> shipped_path("HuggingFaceTB/SmolLM2-135M-Instruct").name
        'smollm2-135m-instruct.heads.json'
    """
    from explain.signals.calibration import model_slug

    return SHIPPED / f"{model_slug(model_name)}.heads.json"


def load_head_weights(spec: Any, lm: LanguageModel | None = None) -> HeadWeights | None:
    """The head weights a run uses.

    Args:
        spec: None (the file shipped for ``lm``'s model, if any), a path, a dict, an array of shape
            (profiles, layers, heads) or a :class:`HeadWeights`.
        lm: the model (for the shipped file and the shape check).

    Returns:
        the weights, or None when ``spec`` is None and none ship for the model.

    Raises:
        ExplainError: a missing or malformed file, or weights shaped for another model.

    Examples:
        >>> load_head_weights(None) is None
        True
        >>> load_head_weights("nowhere.json")
        Traceback (most recent call last):
        explain.errors.ExplainError: head weights file 'nowhere.json' does not exist
    """
    if spec is None:
        if lm is None or not shipped_path(lm.name).is_file():
            return None
        spec = shipped_path(lm.name)
    if isinstance(spec, HeadWeights):
        hw = spec
    elif isinstance(spec, Mapping):
        hw = HeadWeights.from_dict(spec)
    elif isinstance(spec, (str, Path)):
        from explain.cli_io import read_json_object

        hw = HeadWeights.from_dict(read_json_object(spec, "head weights file"))
    else:
        hw = HeadWeights.from_dict({"weights": spec})
    if lm is not None:
        cfg = lm.model.config
        want = (len(PROFILES), getattr(cfg, "num_hidden_layers", None), getattr(cfg, "num_attention_heads", None))
        if None not in want and hw.weights.shape != want:
            raise ExplainError(f"head weights have shape {tuple(hw.weights.shape)}, the model needs {want} "
                               f"(fitted for {hw.model or 'another model'}?): refit with `whylm fit-screen`")
    return hw


def question_start(inp: AttributionInput) -> int:
    """The first position whose attention :func:`attention_profiles` reads: the question's first
    token, or without a question the position that predicts the target's first token."""
    return min(inp.features[inp.question]) if inp.question is not None else len(inp.prompt_ids) - 1


def attention_profiles(lm: LanguageModel, inp: AttributionInput, cache: Any,
                       candidates: Sequence[int]) -> np.ndarray | None:
    """Attention paid to each candidate source by the target-predicting positions and by the
    question's positions, per layer and head, each normalised over the candidates.

    The prefix before the question is cut from ``cache`` (the whole pass's) and only the question and
    target positions run again, with eager attention: memory (layers, heads, rows, L), never L x L.

    Returns:
        float64 (profiles, layers, heads, len(candidates)); the question profile is 0 without a
        question. None where the cache cannot be cut or the model returns no attention weights.
    """
    first = question_start(inp)
    att = target_attention(lm, inp, cache, first)  # (layers, heads, rows, L)
    if att is None:
        return None
    split = len(inp.prompt_ids) - 1 - first
    groups = [att[:, :, split:].sum(2), att[:, :, :split].sum(2)]
    out_arr = np.zeros((len(PROFILES), att.shape[0], att.shape[1], len(candidates)))
    for g, per_pos in enumerate(groups):
        for j, f in enumerate(candidates):
            out_arr[g, :, :, j] = per_pos[:, :, inp.features[f]].sum(-1).double().numpy()
    total = out_arr.sum(-1, keepdims=True)
    return np.divide(out_arr, total, out=np.zeros_like(out_arr), where=total > 0)


def score_sources(profiles: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The fitted screen's score of each source. Returns: float (sources,).

    Args:
        profiles: (profiles, layers, heads, sources) from :func:`attention_profiles`.
        weights: (profiles, layers, heads).
    """
    return np.einsum("plhs,plh->s", profiles, weights)


def fit_weights(examples: Sequence[tuple[np.ndarray, np.ndarray]], *, temperature: float = DEFAULT_TEMPERATURE,
                l2: float = 1e-3, steps: int = 300) -> np.ndarray:
    """Weights whose scores rank each example's sources as leave-one-out does.

    A listwise loss: per example, the cross-entropy between softmax(leave-one-out / temperature)
    (the sources whose removal hurts most, in nats) and softmax(score), plus ``l2`` on the weights.

    Args:
        examples: (profiles (P, layers, heads, n), leave-one-out drops (n,)) per example.

    Returns:
        float (P, layers, heads).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> ex = [(rng.random((2, 1, 3, 6)), None) for _ in range(20)]
        >>> ex = [(x, 8 * x[0, 0, 1]) for x, _ in ex]          # head 1 of profile 0 is the truth
        >>> w = fit_weights(ex)
        >>> int(np.argmax(w.reshape(-1)))
        1
    """
    if not examples:
        raise ExplainError("no examples to fit head weights on")
    shape = examples[0][0].shape[:-1]
    xs = [torch.as_tensor(x.reshape(-1, x.shape[-1]).T, dtype=torch.float64) for x, _ in examples]
    ps = [torch.softmax(torch.as_tensor(y, dtype=torch.float64) / temperature, 0) for _, y in examples]
    w = torch.zeros(int(np.prod(shape)), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sum(-(p * torch.log_softmax(x @ w, 0)).sum() for x, p in zip(xs, ps)) / len(xs)
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().reshape(shape)


def recall_at(scores: np.ndarray, exact: np.ndarray, k: int = 5, top: int = 3) -> float:
    """Share of leave-one-out's ``top`` sources found among the ``k`` best by ``scores``.

    Examples:
        >>> recall_at(np.array([3., 2., 1., 0.]), np.array([0., 2., 3., 1.]), k=2, top=2)
        0.5
    """
    best = set(np.argsort(-exact, kind="stable")[:top].tolist())
    return len(best & set(np.argsort(-scores, kind="stable")[:k].tolist())) / len(best)


def collect_example(lm: LanguageModel, question: str, context: str, answer: str,
                    exact_top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Attention profiles and exact sentence leave-one-out of one (question, context, answer).

    Args:
        exact_top: compute leave-one-out only for the sources the model's default screen ranks
            highest (``attribute(top_k=exact_top)``) and count the others as 0 nats; None: every
            source. The fit's target is dominated by the sources that matter, so a long case costs
            a few passes instead of one per sentence.

    Returns:
        (profiles (P, layers, heads, n), leave-one-out drops in nats (n,)) over the context sentences.

    Raises:
        ExplainError: the model gives no attention weights or its cache cannot be cut.
    """
    from explain.attribution import attribute
    from explain.attribution.inputs import build_input
    from explain.attribution.screen import whole_pass

    inp = build_input(lm, question, answer, sources="sentences", context=context)
    candidates = [f for f in range(inp.n) if f != inp.question]
    _, cache = whole_pass(lm, inp)
    prof = attention_profiles(lm, inp, cache, candidates)
    if prof is None:
        raise ExplainError(f"model {lm.name} gives no attention weights here: the fitted_attention screen cannot "
                           "be used (try screen='hierarchical')")
    screened = {"top_k": exact_top} if exact_top is not None and exact_top < len(candidates) else {}
    res = attribute(lm, question, answer, context=context, sources="sentences", max_seconds=1e9, progress=False,
                    **screened)
    loo = np.asarray(res.seq_attr, dtype=np.float64)
    return prof, (np.where(res.exact, loo, 0.0) if screened else loo)


def haystack_cases(lm: LanguageModel, n: int, tokens: Sequence[int] = (256, 512), seed: int = 0) -> list[dict[str, str]]:
    """``n`` generated haystacks (:mod:`explain.attribution.haystacks`: one needle, two needles, two-part
    answers, in turn) of the given context lengths, for :func:`fit_head_weights`.

    Returns:
        dicts with ``question``, ``context`` and ``answer``.

    Examples:
        >>> len(haystack_cases(lm, 4))        # doctest: +SKIP
        4
    """
    from explain.attribution.haystacks import make_haystack

    count = lambda text: lm.encode(text, special=False)  # noqa: E731
    kinds = ("two", "one", "multi")
    out = []
    for i in range(n):
        h = make_haystack(count, tokens[(i // len(kinds)) % len(tokens)], seed + i // len(kinds), kinds[i % len(kinds)])
        out.append({"question": h["question"], "context": h["context"], "answer": h["answer"]})
    return out


def read_cases(path: str | Path) -> list[dict[str, str]]:
    """Cases to fit head weights on, from a JSON-lines file: ``question``, ``context``, ``answer``.

    Returns:
        the cases.

    Raises:
        ExplainError: a missing or unreadable file, a line without those three strings.

    Examples:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "cases.jsonl")
        >>> _ = open(p, "w").write('{"question": "Q?", "context": "A. B.", "answer": " A"}\\n{"question": "Q?"}\\n')
        >>> read_cases(p)
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: cases file '...cases.jsonl', line 2: needs question, context and answer as text
    """
    from explain.cli_io import read_json_lines

    rows = read_json_lines(path, "cases file", "question, context, answer")
    for k, row in enumerate(rows, 1):
        if not all(isinstance(row.get(key), str) and row[key].strip() for key in ("question", "context", "answer")):
            raise ExplainError(f"cases file '{path}', line {k}: needs question, context and answer as text")
    return [{key: row[key] for key in ("question", "context", "answer")} for row in rows]


def fit_cost(lm: LanguageModel, cases: Sequence[Mapping[str, str]], cache: str | Path | None = None,
             exact_top: int | None = None) -> Any:
    """What :func:`fit_head_weights` on ``cases`` will cost (exact leave-one-out per case dominates;
    a case kept in ``cache`` costs nothing).

    Returns: a :class:`~explain.budget.Cost`.
    """
    from explain.attribution.cost import estimate_cost
    from explain.budget import Cost

    todo = [c for c in cases if cache is None or _cached_case(_case_file(Path(cache), lm, c, exact_top)) is None]
    screened = {"top_k": exact_top} if exact_top is not None else {}
    costs = [estimate_cost(lm, c["question"], c["answer"], context=c["context"], sources="sentences", **screened)
             for c in todo]
    kept = f", {len(cases) - len(todo)} kept from an earlier run" if len(todo) < len(cases) else ""
    return Cost(f"fitting head weights: sentence leave-one-out on {len(todo)} cases{kept}",
                seconds=float(sum(c.seconds for c in costs)), passes=int(sum(c.passes for c in costs)),
                positions=int(sum(c.positions for c in costs)), cheaper="fit on fewer or shorter cases")


def _case_file(folder: Path, lm: LanguageModel, case: Mapping[str, str], exact_top: int | None = None) -> Path:
    """Where one case's profiles and leave-one-out are kept (by a hash of the model, the case and
    ``exact_top``)."""
    what = [lm.name, case["question"], case["context"], case["answer"]] + ([exact_top] if exact_top else [])
    key = hashlib.sha256(json.dumps(what).encode()).hexdigest()
    return folder / f"{key[:20]}.npz"


def _cached_case(path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    """A case kept by an earlier fit, or None when there is none or the file is damaged (it is then
    computed again and replaced)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            profiles, loo = saved["profiles"], saved["loo"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    ok = profiles.ndim == 4 and profiles.shape[0] == len(PROFILES) and loo.shape == profiles.shape[-1:]
    return (profiles, loo) if ok and np.isfinite(profiles).all() and np.isfinite(loo).all() else None


def fit_head_weights(lm: LanguageModel, cases: Sequence[Mapping[str, str]], *, held_out: float = 0.25,
                     temperature: float = DEFAULT_TEMPERATURE, cache: str | Path | None = None,
                     exact_top: int | None = None, progress: bool | None = None) -> HeadWeights:
    """Fit the ``fitted_attention`` screen's weights for ``lm`` on ``cases``.

    Args:
        cases: dicts with ``question``, ``context`` and ``answer`` (:func:`haystack_cases` makes
            some); every ``1/held_out``-th case is kept out of the fit and measured: recall of the
            exact top 3 in the screened top 5, beside plain attention's.
        temperature: of the fit's target (:func:`fit_weights`).
        cache: a folder keeping each case's profiles and leave-one-out, so a stopped fit resumes
            and a refit with other settings costs nothing (None: keep nothing).
        exact_top: leave-one-out only for each case's best-screened sources (:func:`collect_example`).
        progress: a bar with an ETA over the cases (None: when someone is watching).

    Returns:
        the fitted :class:`HeadWeights` (``metrics`` holds the held-out recall).

    Examples:
        >>> hw = fit_head_weights(lm, haystack_cases(lm, 8), progress=False)   # doctest: +SKIP
        >>> hw.save("heads.json")                                              # doctest: +SKIP
    """
    from explain.progress import bar, want_progress

    if len(cases) < 2:
        raise ExplainError(f"fitting head weights needs at least 2 cases, got {len(cases)}")
    folder = Path(cache) if cache is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    examples = []
    with bar(len(cases), "fitting head weights: leave-one-out per case",
             want_progress(progress, seconds=60.0), unit="case") as b:
        for case in cases:
            path = _case_file(folder, lm, case, exact_top) if folder is not None else None
            kept = _cached_case(path)
            if kept is not None:
                examples.append(kept)
            else:
                examples.append(collect_example(lm, case["question"], case["context"], case["answer"], exact_top))
                if path is not None:
                    tmp = path.with_suffix(".part.npz")
                    np.savez(tmp, profiles=examples[-1][0], loo=examples[-1][1])
                    tmp.replace(path)
            b.update(1)
    step = max(2, round(1 / held_out)) if held_out else 0
    test = [i for i in range(len(examples)) if step and i % step == step - 1]
    train = [e for i, e in enumerate(examples) if i not in test]
    weights = fit_weights(train, temperature=temperature)
    metrics: dict[str, Any] = {"cases": len(examples), "held_out": len(test)}
    if test:
        plain = np.zeros_like(weights)
        plain[0] = 1.0  # plain attention: the target positions' profile, every head alike
        for name, w in (("fitted", weights), ("plain", plain)):
            metrics[f"recall3_top5_{name}"] = round(float(np.mean(
                [recall_at(score_sources(examples[i][0], w), examples[i][1]) for i in test])), 4)
    part = f" (of each case's {exact_top} best-screened sources, the rest counted as 0)" if exact_top else ""
    return HeadWeights(lm.name, weights, f"sentence leave-one-out{part} on {len(train)} cases", metrics)
