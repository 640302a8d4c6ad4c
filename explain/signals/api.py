""":func:`signals`: score how likely one answer is made up, per token, sentence and answer.

One teacher-forced pass (or the generation pass) gives each response token's log-probability,
entropy and margin; with ``context`` the same pass holds a second row without the context, giving
the per-token *context contrast*, and one more batched pass removes each context sentence in turn,
giving every answer sentence its *evidence* (:mod:`explain.signals.evidence`); with ``n_samples``
sampled answers give consistency scores.
Every registered token signal (:mod:`explain.signals.registry`) is computed from these and
rolled up into sentence and answer scores; a :class:`~explain.signals.calibration.Calibration`
for the model turns the scores into ``risk`` and a ``verdict``.

Examples:
    >>> from explain import LanguageModel, signals                               # doctest: +SKIP
    >>> lm = LanguageModel.load()                                                # doctest: +SKIP
    >>> rep = signals(lm, "Who wrote Hamlet?", context="Hamlet is a play by Shakespeare.",
    ...               response="Christopher Marlowe wrote it.")                  # doctest: +SKIP
    >>> rep.verdict                                                              # doctest: +SKIP
    'likely hallucinated'
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from explain.attribution.sources import token_sentence_spans
from explain.budget import DEFAULT_MAX_SECONDS, Cost, check_budget, speed
from explain.errors import ExplainError
from explain.progress import bar, want_progress
from explain.signals.calibration import Calibration, load_calibration, verdict
from explain.signals.consistency import consistency_scores, draw_samples, sample_chunk, score_texts
from explain.signals.evidence import (
    LONG_CONTEXT_TOKENS, TOP_K, answer_scores, context_sentences, evidence_scores, leave_one_out,
    screened_leave_one_out, sentence_conflicts, sentence_evidence,
)
from explain.signals.grounding import context_share as compute_context_share
from explain.signals.registry import SignalContext, aggregate, compute_signals, sentence_scores
from explain.signals.report import SentenceSignals, SignalReport
from explain.threads import accepts_threads



@accepts_threads
def signals(
    lm: Any,
    prompt: str,
    response: str | None = None,
    context: str | None = None,
    n_samples: int = 0,
    calibration: Calibration | str | None | bool = None,
    progress: bool | None = None,
    seed: int = 0,
    max_seconds: float | None = None,
    *,
    judge: Callable[[str, str], float] | None = None,
    max_new_tokens: int = 64,
    chat: bool = True,
    sample_texts: Sequence[str] | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    context_share: bool = False,
    evidence: bool = True,
) -> SignalReport:
    """Score how likely an answer is made up: token, sentence and answer signals, risk and verdict.

    Args:
        lm: an :class:`explain.LanguageModel`.
        prompt: the question or instruction (the user's turn).
        response: the answer to score as is; ``None`` generates one greedily.
        context: a passage the answer should be grounded in (put before the prompt,
            :data:`explain.model.CONTEXT_TEMPLATE`, and contrasted with the prompt alone).
        n_samples: draw this many answers (sampled, seeded, batched) for consistency scores.
        calibration: None (the calibration shipped for this model, if any), a path to a
            calibration JSON file, a :class:`Calibration`, or False (no risk).
        progress: a progress bar; None = when interactive and the run is long.
        seed: seed of the sampling (global random state is left as it was).
        max_seconds: budget for the run; the sampling cost is estimated first and a run over
            budget (default 600 s) is refused in one line.
        judge: ``(premise, hypothesis) -> P(entailment)`` for consistency (else MiniLM embeddings).
        max_new_tokens: length limit of generated answers and samples.
        chat: use the tokenizer's chat template when it has one.
        sample_texts: answers you already have, used instead of drawing samples.
        temperature, top_p: sampling settings.
        threads: torch CPU threads for this run (restored after; default: torch's setting).
        context_share: with ``context``, also compute the share of attribution that goes to the
            context (leave-one-segment-out, two more forward passes; it does not enter the risk).
        evidence: with ``context``, find each answer sentence's evidence among the context's
            sentences (exact leave-one-out of every context sentence, one more batched pass) and add
            the evidence scores (``unsupported``, ``contradicted``, ``unseen_names``, ``unseen_words``,
            ``conflict``) to the risk; a context sentence an answer sentence conflicts with (other
            names or numbers in the same statement) goes to its ``conflicts``, not its evidence.

    Leading and trailing whitespace of ``prompt``, ``context`` and ``response`` is dropped, so a
    trailing newline does not change a risk.

    Returns:
        a :class:`SignalReport`; ``rep.risk`` is None (and ``rep.risk_note`` says why) when no
        calibration applies.

    Raises:
        ExplainError: empty prompt or response, a response longer than the context window,
            a negative ``n_samples``, a run over budget, an unreadable calibration file.

    Examples:
        >>> rep = signals(lm, "What is the capital of France?", response="Paris.")   # doctest: +SKIP
        >>> rep.tokens, rep.verdict                                                 # doctest: +SKIP
        (['Paris', '.'], 'supported')
    """
    start_time = time.perf_counter()
    _check_inputs(prompt, response, context, n_samples, sample_texts, max_new_tokens)
    cal, risk_note = load_calibration(calibration, getattr(lm, "name", ""))
    use_chat = bool(chat and lm.has_chat_template)
    prompt, context, response = _normalise(prompt, context, response, use_chat)
    ids = lm.prompt_ids(prompt, chat=use_chat, context=context)[0]
    plain = lm.prompt_ids(prompt, chat=use_chat)[0] if context is not None else None
    if n_samples > 0 and sample_texts is None:
        check_budget(sampling_cost(lm, len(ids), n_samples, max_new_tokens, max_seconds), max_seconds)
    counter = _ForwardCounter(lm.model)
    notes: list[str] = []
    cost: dict[str, float] = {}
    n_stages = 1 + (context is not None) + (n_samples > 0 or sample_texts is not None)
    progress_bar = bar(n_stages, "signals", want_progress(progress, 10.0 if n_samples else 1.0))
    try:
        # 1. token statistics, from the generation pass or one teacher-forced pass holding the
        #    rows with and without the context.
        contrast = None
        if response is None:
            lm.check_length(len(ids), max_new_tokens)
            gen = lm.generate(ids, max_new_tokens=max_new_tokens)
            resp_ids, full = gen.sequences[0], gen.logprobs[0]
            if not resp_ids:
                raise ExplainError("the model generated an empty answer: pass a response or change the prompt")
            tok_lp = full.gather(-1, torch.tensor(resp_ids)[:, None])[:, 0].numpy().astype(np.float32)
            response_text = lm.tokenizer.decode(resp_ids, skip_special_tokens=True)
            if plain is not None:
                contrast = tok_lp - lm.continuation_logprobs([plain], [resp_ids])[0]
        else:
            resp_ids = lm.encode(response, special=False)
            if not resp_ids:
                raise ExplainError("response is empty")
            _check_fits(lm, len(ids), len(resp_ids))
            rows = [ids] + ([plain] if plain is not None else [])
            out = lm.continuation_logprobs(rows, [resp_ids] * len(rows), full=True)
            tok_lp, full = out[0]
            if plain is not None:
                contrast = tok_lp - out[1][0]
            response_text = response
        entropy, margin, top1 = _distribution_stats(full)
        tokens = lm.tokens(resp_ids)
        progress_bar.update(1)
        cost["seconds_tokens"] = time.perf_counter() - start_time

        # 2. context: evidence per answer sentence (one batched leave-one-out pass), attribution share.
        share = None
        spans = token_sentence_spans(tokens)
        ctx_texts: list[str] = []
        sent_evidence: list[list[Any]] = [[] for _ in spans]
        sent_conflicts: list[list[Any]] = [[] for _ in spans]
        sent_ev_scores: list[dict[str, float]] = [{} for _ in spans]
        deltas = None
        if context is not None:
            if evidence:
                t = time.perf_counter()
                ctx_texts, ctx_spans = context_sentences(context)
                plain_lp = None if contrast is None else tok_lp - contrast
                if len(ids) - len(plain) > LONG_CONTEXT_TOKENS and len(ctx_spans) > TOP_K:
                    deltas = screened_leave_one_out(lm, prompt, context, len(ctx_spans), response_text,
                                                    len(resp_ids), use_chat, notes)
                else:
                    deltas = leave_one_out(lm, prompt, context, ctx_spans, resp_ids, tok_lp, plain_lp, use_chat)
                if deltas is None:
                    ctx_texts = []
                else:
                    sent_evidence = sentence_evidence(deltas, spans, context, ctx_spans, tokens)
                    sent_conflicts = sentence_conflicts(deltas, spans, tokens, context, ctx_spans)
                    sent_ev_scores = evidence_scores(deltas, spans, tokens, context, prompt=prompt)
                cost["seconds_evidence"] = time.perf_counter() - t
            if context_share:
                share = compute_context_share(lm, prompt, context, response_text, len(resp_ids), use_chat, notes)
            progress_bar.update(1)

        # 3. every registered token signal, rolled up.
        ctx = SignalContext(
            tokens=tokens, token_ids=list(resp_ids), token_logprob=tok_lp, token_entropy=entropy,
            token_margin=margin, token_top1=top1,
            token_context_contrast=None if contrast is None else np.asarray(contrast, dtype=np.float32),
            token_context_share=share, prompt=prompt, response=response_text, context=context,
        )
        token_signals, scores = compute_signals(ctx, notes=notes)
        if any(sent_ev_scores):
            scores.update(answer_scores(sent_ev_scores))

        # 4. sample consistency.
        sample_list: list[str] = []
        labels: list[int] = []
        sent_cons: list[dict[str, float]] = [{} for _ in spans]
        if n_samples > 0 or sample_texts is not None:
            t = time.perf_counter()
            if sample_texts is not None:
                sample_list = [str(s) for s in sample_texts]
                seq_lp = score_texts(lm, ids, sample_list)
            else:
                sample_list, seq_lp = draw_samples(lm, ids, n_samples, max_new_tokens, seed, temperature, top_p)
            texts = ["".join(tokens[a:b]).strip() for a, b in spans]
            cons, labels, sent_cons = consistency_scores(response_text, sample_list, seq_lp, judge, texts,
                                                         notes, cost)
            scores.update(cons)
            cost["seconds_samples"] = time.perf_counter() - t
            progress_bar.update(1)
    finally:
        counter.remove()
        progress_bar.close()

    sentences = []
    rolled = sentence_scores(token_signals, spans, tokens)
    for (s, e), sc, extra, ev, clash, ev_scores in zip(spans, rolled, sent_cons, sent_evidence, sent_conflicts,
                                                      sent_ev_scores):
        sc.update(ev_scores)
        sc.update(extra)
        sentences.append(SentenceSignals("".join(tokens[s:e]).strip(), s, e, sc, evidence=ev, conflicts=clash))

    risk, token_risk = None, None
    if cal is not None:
        has_context = context is not None
        risk = cal.predict(scores, has_context)
        if risk is None:
            case = cal.case(has_context)
            if case is None:
                name = "context" if has_context else "no_context"
                why = next((n.split(": ", 1)[1] for n in cal.notes if n.startswith(f"case skipped, {name}:")), "")
                risk_note = (f"the calibration for {cal.model} has no case {'with' if has_context else 'without'} "
                             "a context" + (f" ({why})" if why else "") + ": risk is not computed")
            else:
                risk_note = f"the calibration needs scores this report lacks: {', '.join(case.features)}"
        else:
            risk_note = f"calibrated for {cal.model} ({'context' if has_context else 'no_context'} case)"
            if cal.model and cal.model != getattr(lm, "name", cal.model):
                notes.append(f"calibration was fitted for {cal.model}, not {lm.name}: the risk may be off")
            for sent in sentences:
                sent.risk = cal.predict(sent.scores, has_context)
                sent.verdict = verdict(sent.risk)
            risk = answer_risk(risk, [s.risk for s in sentences])
            sentence_of = {i: k for k, (s, e) in enumerate(spans) for i in range(s, e)}
            per_token = [cal.predict({**sent_ev_scores[sentence_of[i]],
                                      **{k: v for name, vals in token_signals.items()
                                         for k, v in aggregate(name, vals[i:i + 1]).items()}}, has_context)
                         for i in range(len(tokens))]
            if all(p is not None for p in per_token):
                token_risk = np.array(per_token, dtype=np.float64)
    cost.update(seconds=time.perf_counter() - start_time, forward_passes=counter.calls)
    cost.setdefault("embedded_texts", 0)
    cost.setdefault("judge_calls", 0)
    return SignalReport(
        prompt=prompt, context=context, response=response_text, generated=response is None,
        tokens=tokens, token_ids=list(resp_ids), token_logprob=tok_lp, token_entropy=entropy,
        token_margin=margin, token_context_contrast=ctx.token_context_contrast, token_context_share=share,
        token_signals=token_signals, scores=scores, risk=risk, verdict=verdict(risk), risk_note=risk_note,
        token_risk_calibrated=token_risk, sentences=sentences, samples=sample_list, sample_clusters=labels,
        cost=cost, notes=notes, model=getattr(lm, "name", ""), context_sentences=ctx_texts,
        token_evidence=deltas,
    )


def answer_risk(answer: float | None, sentence_risks: Sequence[float | None]) -> float | None:
    """The answer's risk: its own calibrated risk, or its riskiest sentence's when that is higher.

    An answer is not supported when any of its sentences is not, so one wrong sentence among
    right ones makes the answer at least as risky as that sentence.

    Returns:
        the risk, or None when ``answer`` is None.

    Examples:
        >>> answer_risk(0.2, [0.1, 0.8]), answer_risk(0.4, [0.1]), answer_risk(None, [0.9])
        (0.8, 0.4, None)
    """
    if answer is None:
        return None
    return float(max([answer, *[r for r in sentence_risks if r is not None]]))


def sampling_cost(lm: Any, n_prompt: int, n_samples: int, max_new_tokens: int,
                  max_seconds: float | None = None) -> Cost:
    """The predicted cost of drawing ``n_samples`` answers, from a quick measurement of ``lm``.

    Samples are drawn in batches (:func:`~explain.signals.consistency.sample_chunk`); a batch is one
    forward pass per generated token, and each sample costs (prompt + answer) token positions, timed
    by the machine's speed model (:func:`explain.budget.speed`): the per-pass cost of step-by-step
    generation counts, not only the positions.

    Returns:
        a :class:`explain.budget.Cost` whose ``cheaper`` names how many samples fit the budget.

    Examples:
        >>> sampling_cost(lm, 20, 10**6, 64).seconds > 300          # doctest: +SKIP
        True
    """
    length = n_prompt + max_new_tokens
    positions = n_samples * length
    passes = -(-n_samples // sample_chunk(lm, max_new_tokens)) * (max_new_tokens + 1)
    pace = speed(lm)
    seconds = pace.seconds(positions, positions * (length + 1) / 2, passes)
    per_sample = seconds / max(1, n_samples)
    limit = DEFAULT_MAX_SECONDS if max_seconds is None else float(max_seconds)
    fit = int(limit // per_sample) if per_sample > 0 else n_samples
    return Cost(
        what=f"signals with {n_samples:,} samples", seconds=seconds, passes=passes, positions=positions,
        cheaper=f"use fewer samples (n_samples={max(1, min(fit, n_samples - 1))} fits)",
        spread=pace.spread, note=pace.note,
    )


def _check_inputs(prompt: Any, response: Any, context: Any, n_samples: Any, sample_texts: Any,
                  max_new_tokens: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ExplainError("prompt is empty: give the question or instruction the answer responds to")
    if response is not None and (not isinstance(response, str) or not response.strip()):
        raise ExplainError("response is empty: give the answer to score, or response=None to generate one")
    if context is not None and (not isinstance(context, str) or not context.strip()):
        raise ExplainError("context is empty: give the passage, or context=None")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
        raise ExplainError(f"n_samples must be a whole number >= 0, got {n_samples!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ExplainError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    if sample_texts is not None:
        if isinstance(sample_texts, str) or not all(isinstance(s, str) for s in sample_texts):
            raise ExplainError("sample_texts must be a list of strings")
        if not any(s.strip() for s in sample_texts):
            raise ExplainError("sample_texts holds no non-empty answer")


def _normalise(prompt: str, context: str | None, response: str | None,
               chat: bool) -> tuple[str, str | None, str | None]:
    """The texts without surrounding whitespace, so a trailing newline does not change a risk.

    Without a chat template the prompt is continued as written, so only its context and the
    response's trailing whitespace are dropped (a leading space of " blue." is part of its tokens).

    Examples:
        >>> _normalise(" Q?\\n", "Ctx.\\n", "A.\\n", True)
        ('Q?', 'Ctx.', 'A.')
        >>> _normalise("The sky is", None, " blue.\\n", False)
        ('The sky is', None, ' blue.')
    """
    context = None if context is None else context.strip()
    if chat:
        return prompt.strip(), context, None if response is None else response.strip()
    return prompt, context, None if response is None else response.rstrip()


def _check_fits(lm: Any, n_prompt: int, n_response: int) -> None:
    if n_prompt + n_response > lm.max_length:
        raise ExplainError(
            f"prompt ({n_prompt} tokens) + response ({n_response} tokens) is longer than the model's "
            f"context window of {lm.max_length} tokens: shorten the context or the response"
        )
    lm.check_length(n_prompt, n_response)


def _distribution_stats(full: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entropy, top-1 minus top-2 probability, and top-1 probability of each log-softmax row."""
    logp = full.float()
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    top = p.topk(min(2, p.shape[-1]), dim=-1).values
    second = top[:, 1] if top.shape[-1] > 1 else torch.zeros_like(top[:, 0])
    as_np = lambda t: t.cpu().numpy().astype(np.float32)  # noqa: E731
    return as_np(entropy.clamp(min=0)), as_np(top[:, 0] - second), as_np(top[:, 0])


class _ForwardCounter:
    """Counts forward calls of a torch module while alive (a forward hook)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1

    def remove(self) -> None:
        self._handle.remove()
