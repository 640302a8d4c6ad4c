"""The exact ablation engine against a brute-force loop (tests/support/reference.py: plain forwards, ids from
the tokenizer alone) and captum's FeatureAblation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import ARCHS, make_tiny_lm

from reference import leave_one_out, piece_features, token_features

from explain import ExplainError, attribute

PROMPT = "The capital of France is"
TARGET = " Paris, and the capital of Italy is Rome."


def target_ids(lm, target: str) -> list[int]:
    return list(lm.tokenizer(target, add_special_tokens=False)["input_ids"])


def brute_force(lm, prompt: str = PROMPT, target: str = TARGET, baseline: int = 0) -> np.ndarray:
    """Token-level leave-one-out of a plain prompt, one plain forward per replaced token."""
    ids, features = token_features(lm.tokenizer, prompt)
    return leave_one_out(lm.model, ids, target_ids(lm, target), features, baseline)


def captum_feature_ablation(lm, prompt: str, target: str, forward_in_tokens: bool):
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    llm_attr = LLMAttribution(FeatureAblation(lm.model), lm.tokenizer)
    target_ids = torch.tensor(lm.encode(target, special=False))
    return llm_attr.attribute(
        TextTokenInput(prompt, lm.tokenizer), target=target_ids, forward_in_tokens=forward_in_tokens
    )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("max_rows", [None, 1, 3, 64])
def test_ablation_equals_brute_force(arch: str, max_rows) -> None:
    lm = make_tiny_lm(arch)
    res = attribute(lm, PROMPT, TARGET, method="ablation", baseline=0, progress=False, max_rows=max_rows)
    ref = brute_force(lm)
    assert res.token_attr.shape == ref.shape == (len(res.output_tokens), len(res.input_tokens))
    np.testing.assert_allclose(res.token_attr, ref, atol=1e-4)
    np.testing.assert_allclose(res.seq_attr, ref.sum(0), atol=1e-4)
    if max_rows == 1:
        assert res.info["kv_cache_reuse"] and res.info["forward_passes"] > len(res.input_tokens)


@pytest.mark.parametrize("arch", ARCHS)
def test_ablation_equals_captum_single_pass(arch: str) -> None:
    lm = make_tiny_lm(arch)
    ours = attribute(lm, PROMPT, TARGET, method="ablation", baseline=0, progress=False)
    ref = captum_feature_ablation(lm, PROMPT, TARGET, forward_in_tokens=False)
    np.testing.assert_allclose(ours.token_attr, ref.token_attr.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.seq_attr, ref.seq_attr.numpy(), atol=1e-4)
    # captum's reference property for FeatureAblation
    np.testing.assert_allclose(ours.seq_attr, ours.token_attr.sum(0), atol=1e-9)


def test_captum_default_cached_path_still_disagrees(tiny_lm) -> None:
    """Pins captum 0.9's defect on transformers 5 (forward_in_tokens=True with cached outputs):
    when captum fixes it this test fails, and the README's warning can go."""
    ours = attribute(tiny_lm, PROMPT, TARGET, method="ablation", baseline=0, progress=False)
    default = captum_feature_ablation(tiny_lm, PROMPT, TARGET, forward_in_tokens=True)
    assert np.abs(default.token_attr.numpy() - ours.token_attr).max() > 1e-2


def test_cache_guard_falls_back_when_cache_path_is_wrong(tiny_lm, monkeypatch) -> None:
    from explain.attribution import batched_forward

    real = batched_forward.BatchedForward._cached

    def broken(self, ids, start):
        return real(self, ids, start) + 1.0  # a cache path that is off by one nat

    monkeypatch.setattr(batched_forward.BatchedForward, "_cached", broken)
    with pytest.warns(UserWarning, match="cache reuse disagrees"):
        res = attribute(tiny_lm, PROMPT, TARGET, baseline=0, progress=False, max_rows=2)
    np.testing.assert_allclose(res.token_attr, brute_force(tiny_lm), atol=1e-4)
    assert res.info["kv_cache_reuse"] is False


def test_segments_are_one_feature_each(tiny_lm) -> None:
    prompt = {"context": "Context: the sky is blue.", "question": " Question: what colour is the sky?"}
    res = attribute(tiny_lm, prompt, " Answer: blue.", progress=False)
    assert res.input_tokens == ["context", "question"]
    # each segment is tokenised alone, joined by a fixed newline, and removed when ablated
    ids, features = piece_features(tiny_lm.tokenizer, [prompt["context"], "\n", prompt["question"]])
    features = [features[0], features[2]]
    ref = leave_one_out(tiny_lm.model, ids, target_ids(tiny_lm, " Answer: blue."), features)
    np.testing.assert_allclose(res.token_attr, ref, atol=1e-4)
    assert all(len(f) > 1 for f in features)


def test_chat_attributes_only_user_content(tiny_lm) -> None:
    text = "what colour is the sky?"
    res = attribute(tiny_lm, text, " blue", chat=True, baseline=0, progress=False)
    assert "".join(res.input_tokens) == text
    ids = list(tiny_lm.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                     tokenize=True)["input_ids"])
    content = list(tiny_lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    (at,) = [i for i in range(len(ids)) if ids[i:i + len(content)] == content]  # the user's text, once
    assert len(ids) > len(content)  # the template is there but not a feature
    ref = leave_one_out(tiny_lm.model, ids, target_ids(tiny_lm, " blue"), [[at + k] for k in range(len(content))], 0)
    np.testing.assert_allclose(res.token_attr, ref, atol=1e-4)


def test_generates_when_target_is_none(tiny_lm) -> None:
    res = attribute(tiny_lm, PROMPT, target=None, max_new_tokens=4, progress=False)
    assert res.info["generated"] and 1 <= len(res.output_tokens) <= 4
    assert res.token_attr.shape == (len(res.output_tokens), len(res.input_tokens))


def test_baseline_changes_result_and_is_checked(tiny_lm) -> None:
    a = attribute(tiny_lm, PROMPT, TARGET, baseline=0, progress=False)
    b = attribute(tiny_lm, PROMPT, TARGET, baseline=5, progress=False)
    np.testing.assert_allclose(b.token_attr, brute_force(tiny_lm, baseline=5), atol=1e-4)
    assert not np.allclose(a.token_attr, b.token_attr)
    with pytest.raises(ExplainError, match="outside the vocabulary"):
        attribute(tiny_lm, PROMPT, TARGET, baseline=10**9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": "", "target": " x"}, "prompt is empty"),
        ({"prompt": "   ", "target": " x"}, "prompt is empty"),
        ({"prompt": "hi", "target": ""}, "target is empty"),
        ({"prompt": "hi", "target": " x", "method": "magic"}, "unknown method 'magic'"),
        ({"prompt": "hi " * 300, "target": " x"}, "longer than the model's context"),
        ({"prompt": {"context": "", "q": "x"}, "target": " x"}, "segment 'context' is empty"),
        ({"prompt": "hi", "target": " x", "bogus_option": 1}, "takes no option 'bogus_option'"),
    ],
)
def test_bad_input_gives_one_line_error(tiny_lm, kwargs, message) -> None:
    with pytest.raises(ExplainError, match=message) as err:
        attribute(tiny_lm, progress=False, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_embedded_model_matches_brute_force_and_captum(embedded_lm) -> None:
    res = attribute(embedded_lm, PROMPT, TARGET, baseline=0, progress=False)
    np.testing.assert_allclose(res.token_attr, brute_force(embedded_lm), atol=1e-4)
    ref = captum_feature_ablation(embedded_lm, PROMPT, TARGET, forward_in_tokens=False)
    np.testing.assert_allclose(res.token_attr, ref.token_attr.numpy(), atol=1e-4)
    np.testing.assert_allclose(res.seq_attr, ref.seq_attr.numpy(), atol=1e-4)
    assert res.input_tokens == ["The", " capital", " of", " France", " is"]
    # captum 0.9's default path on transformers 5: 8.3 nats off here when this was written
    default = captum_feature_ablation(embedded_lm, PROMPT, TARGET, forward_in_tokens=True)
    assert np.abs(default.token_attr.numpy() - res.token_attr).max() > 1.0
    assert res.top_features(1, row=0)[0][0] == " France"  # " Paris" hinges on " France"
