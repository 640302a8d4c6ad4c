"""Hallucination signals on the embedded SmolLM2-135M and the MiniLM embedder (marked slow)."""

from __future__ import annotations

import numpy as np
import pytest

from explain.signals.consistency import embed
from explain.signals import signals

pytestmark = pytest.mark.slow

CONTEXT = "The Eiffel Tower is a wrought-iron tower in Paris, France. It was completed in 1889."
QUESTION = "In which city is the Eiffel Tower?"


def test_context_contrast_separates_grounded_from_made_up(embedded_lm):
    right = signals(embedded_lm, QUESTION, response="Paris", context=CONTEXT, progress=False, context_share=True)
    wrong = signals(embedded_lm, QUESTION, response="Rome, the capital of Italy.", context=CONTEXT,
                    progress=False, context_share=False)
    assert right.token_context_contrast.mean() > 0  # the context makes "Paris" more likely
    assert wrong.scores["ungrounded"] > right.scores["ungrounded"]
    assert wrong.scores["ungrounded_max"] > right.scores["ungrounded_max"]
    assert right.token_context_share is not None and right.token_context_share.shape == (len(right.tokens),)
    assert right.scores["context_unused"] < 0.9


def test_generated_answer_and_minilm_consistency(embedded_lm):
    rep = signals(embedded_lm, QUESTION, context=CONTEXT, n_samples=3, max_new_tokens=8, progress=False,
                  context_share=False)
    assert rep.generated and rep.response.strip() and len(rep.samples) == 3
    assert len(rep.sentences) >= 1 and rep.sentences[-1].end == len(rep.tokens)
    assert 0 <= rep.scores["inconsistency_embedding"] <= 2
    assert 0 <= rep.scores["semantic_entropy"] <= np.log(3) + 1e-9
    assert rep.cost["embedded_texts"] >= 4


def test_minilm_similarity_is_meaningful():
    vecs = embed(["The tower is in Paris.", "It stands in Paris, France.", "Bananas are yellow."])
    assert vecs.shape == (3, 384)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_calibrated_verdicts_on_the_embedded_model(embedded_lm):
    context = "Hamlet is a tragedy written by William Shakespeare around 1600."
    right = signals(embedded_lm, "Who wrote Hamlet?", response="William Shakespeare wrote Hamlet.", context=context,
                    progress=False, context_share=False)
    wrong = signals(embedded_lm, "Who wrote Hamlet?", response="Charles Dickens wrote Hamlet in 1850.",
                    context=context, progress=False, context_share=False)
    assert right.risk is not None and wrong.risk is not None, right.risk_note
    assert wrong.risk > right.risk
    assert right.verdict != "likely hallucinated" and wrong.verdict != "supported"
    assert "calibrated for SmolLM2-135M-Instruct" in right.risk_note

