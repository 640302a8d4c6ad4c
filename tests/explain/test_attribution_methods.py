"""The non-ablation attribution methods against captum's own results, and their properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import make_tiny_lm

from explain import ExplainError, attribute
from explain.attribution import build_input
from explain.attribution.attention import rollout
from explain.attribution.shap_partition import contiguous_tree

PROMPT = "The capital of France is"
TARGET = " Paris, and the capital"
SEGMENTS = {"context": "The capital of France is Paris.", "question": "What is the capital"}
ALL_METHODS = ("shapley", "kernelshap", "lime", "integrated_gradients", "input_x_gradient", "attention", "shap")
CHEAP = {"shapley": {"n_samples": 2}, "kernelshap": {"n_samples": 30}, "lime": {"n_samples": 30},
         "integrated_gradients": {"n_steps": 4}, "shap": {"max_evals": 60}}


def captum_llm(lm, cls, prompt: str, target_ids, seed: int = 0, **kw):
    """captum's LLMAttribution single-pass path, run from ``torch.manual_seed(seed)``."""
    from captum.attr import LLMAttribution, TextTokenInput

    torch.manual_seed(seed)
    return LLMAttribution(cls(lm.model), lm.tokenizer).attribute(
        TextTokenInput(prompt, lm.tokenizer), target=torch.tensor(target_ids), forward_in_tokens=False, **kw
    )


def plain_logprobs(lm, inp, keep: torch.Tensor) -> torch.Tensor:
    """(B, m) target log-probs, one unbatched teacher-forced pass per keep-mask row."""
    rows = []
    for k in keep.bool():
        gone = {p for f in np.flatnonzero(~k.numpy()) for p in inp.features[f]}
        # a source (segment) is removed, a token replaced by id 0
        ids = [t for p, t in enumerate(inp.prompt_ids) if p not in gone] if inp.removal else \
            [0 if p in gone else t for p, t in enumerate(inp.prompt_ids)]
        (lp,) = lm.continuation_logprobs([ids], [inp.target_ids])
        rows.append(torch.tensor(lp, dtype=torch.float64))
    return torch.stack(rows)


# ------------------------------------------------------------------- captum agreement
@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_shapley_equals_captum(arch: str) -> None:
    from captum.attr import ShapleyValueSampling

    lm = make_tiny_lm(arch)
    inp = build_input(lm, PROMPT, TARGET)
    ours = attribute(lm, PROMPT, TARGET, method="shapley", n_samples=3, seed=7, baseline=0, progress=False)
    ref = captum_llm(lm, ShapleyValueSampling, PROMPT, inp.target_ids, seed=7, n_samples=3)
    np.testing.assert_allclose(ours.token_attr, ref.token_attr.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.seq_attr, ref.seq_attr.numpy(), atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_kernelshap_equals_captum(arch: str) -> None:
    from captum.attr import KernelShap

    lm = make_tiny_lm(arch)
    inp = build_input(lm, PROMPT, TARGET)
    ours = attribute(lm, PROMPT, TARGET, method="kernelshap", n_samples=50, seed=3, baseline=0, progress=False)
    ref = captum_llm(lm, KernelShap, PROMPT, inp.target_ids, seed=3, n_samples=50).seq_attr.numpy()
    np.testing.assert_allclose(ours.seq_attr, ref, atol=1e-4)
    # least squares is linear in the outputs: the per-token fits add up to captum's sequence fit
    np.testing.assert_allclose(ours.token_attr.sum(0), ref, atol=1e-3)


def test_lime_equals_captum_per_token_and_sequence(tiny_lm) -> None:
    from captum.attr import Lime

    inp = build_input(tiny_lm, PROMPT, TARGET)
    ours = attribute(tiny_lm, PROMPT, TARGET, method="lime", n_samples=40, seed=1, baseline=0, progress=False)
    ref = captum_llm(tiny_lm, Lime, PROMPT, inp.target_ids, seed=1, n_samples=40).seq_attr.numpy()
    np.testing.assert_allclose(ours.seq_attr, ref, atol=1e-4)
    # each row is captum's Lime on that token's log-prob alone, from the same seed
    for j in (0, inp.m - 1):
        torch.manual_seed(1)
        row = Lime(lambda keep, j=j: plain_logprobs(tiny_lm, inp, keep > 0.5)[:, j].float()).attribute(
            torch.ones(1, inp.n), n_samples=40, perturbations_per_eval=8
        )
        np.testing.assert_allclose(ours.token_attr[j], row[0].numpy(), atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox", "gemma"])
@pytest.mark.parametrize("method", ["integrated_gradients", "input_x_gradient"])
def test_gradient_methods_equal_captum(arch: str, method: str) -> None:
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    lm = make_tiny_lm(arch)
    inp = build_input(lm, PROMPT, TARGET)
    layer = lm.model.get_input_embeddings()
    kw = {"n_steps": 6} if method == "integrated_gradients" else {}
    cls = LayerIntegratedGradients if method == "integrated_gradients" else LayerGradientXActivation
    ref = LLMGradientAttribution(cls(lm.model, layer), lm.tokenizer).attribute(
        TextTokenInput(PROMPT, lm.tokenizer), target=torch.tensor(inp.target_ids), **kw
    )
    ours = attribute(lm, PROMPT, TARGET, method=method, baseline=0, progress=False, **kw)
    np.testing.assert_allclose(ours.token_attr, ref.token_attr.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.seq_attr, ref.seq_attr.numpy(), atol=1e-4)
    # issue 12.5: within 2e-5 of the largest value, all m targets from one batched backward
    largest = np.abs(ref.token_attr.numpy()).max()
    assert np.abs(ours.token_attr - ref.token_attr.numpy()).max() <= 2e-5 * largest
    assert ours.info["forward_passes"] <= 3 and ours.info["backward_passes"] == 1
    assert ours.info["batched_backward"]


def test_integrated_gradients_steps_in_batches_give_the_same_numbers(tiny_lm) -> None:
    whole = attribute(tiny_lm, PROMPT, TARGET, method="integrated_gradients", n_steps=6, progress=False)
    parts = attribute(tiny_lm, PROMPT, TARGET, method="integrated_gradients", n_steps=6,
                      internal_batch_size=4, grad_tokens=40, progress=False)
    np.testing.assert_allclose(whole.token_attr, parts.token_attr, atol=1e-5)
    assert parts.info["forward_passes"] > whole.info["forward_passes"]


def test_integrated_gradients_completeness_improves_with_steps(tiny_lm) -> None:
    few = attribute(tiny_lm, PROMPT, TARGET, method="integrated_gradients", n_steps=2, progress=False)
    many = attribute(tiny_lm, PROMPT, TARGET, method="integrated_gradients", n_steps=64, progress=False)
    assert many.info["convergence_delta"] < few.info["convergence_delta"]
    assert many.info["convergence_delta"] < 0.05


# ------------------------------------------------------------------- efficiency
def test_shapley_needs_fewer_model_calls_than_captum(tiny_lm, monkeypatch) -> None:
    from captum.attr import ShapleyValueSampling

    inp = build_input(tiny_lm, PROMPT, TARGET)
    calls = []
    forward = tiny_lm.model.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_lm.model, "forward", counting_forward)  # captum calls model.forward
    attribute(tiny_lm, PROMPT, TARGET, method="shapley", n_samples=4, progress=False)
    ours = len(calls)
    calls.clear()
    captum_llm(tiny_lm, ShapleyValueSampling, PROMPT, inp.target_ids, n_samples=4)
    theirs = len(calls)
    assert theirs == 1 + 4 * inp.n
    assert ours * 2 < theirs


def test_surrogate_methods_evaluate_each_distinct_sample_once(tiny_lm) -> None:
    res = attribute(tiny_lm, PROMPT, TARGET, method="kernelshap", n_samples=80, progress=False)
    # 2**n possible masks: with n=7 and 80 draws, repeats are certain and are not re-evaluated
    assert res.info["perturbations"] < 80
    assert res.token_attr.shape == (len(res.output_tokens), len(res.input_tokens))


# ------------------------------------------------------------------- shap / attention
def test_contiguous_tree_is_a_valid_linkage() -> None:
    from scipy.cluster.hierarchy import is_valid_linkage, leaves_list

    tree = contiguous_tree(7)
    assert is_valid_linkage(tree)
    assert leaves_list(tree).tolist() == list(range(7))


def test_shap_is_efficient_and_exact_shapley_for_two_features(tiny_lm) -> None:
    res = attribute(tiny_lm, SEGMENTS, " Paris", method="shap", max_evals=50, progress=False)
    inp = build_input(tiny_lm, SEGMENTS, " Paris")
    f = plain_logprobs(tiny_lm, inp, torch.tensor([[1, 1], [0, 1], [1, 0], [0, 0]])).numpy()
    full, only_q, only_c, none = f
    exact_context = 0.5 * ((only_c - none) + (full - only_q))
    np.testing.assert_allclose(res.token_attr[:, 0], exact_context, atol=1e-4)
    np.testing.assert_allclose(res.token_attr.sum(1), full - none, atol=1e-4)


def test_shap_owen_values_add_up_to_the_full_drop(tiny_lm) -> None:
    res = attribute(tiny_lm, PROMPT, TARGET, method="shap", max_evals=500, baseline=0, progress=False)
    inp = build_input(tiny_lm, PROMPT, TARGET)
    f = plain_logprobs(tiny_lm, inp, torch.tensor([[1] * inp.n, [0] * inp.n])).numpy()
    np.testing.assert_allclose(res.token_attr.sum(1), f[0] - f[1], atol=1e-4)


def test_rollout_of_identity_attention_is_identity() -> None:
    eye = torch.eye(4)
    assert torch.allclose(rollout([eye, eye], residual=0.5), torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["rollout", "last_layer", "mean"])
def test_attention_scores_are_a_restored_heuristic(tiny_lm, mode: str) -> None:
    before = tiny_lm.model.config._attn_implementation
    res = attribute(tiny_lm, PROMPT, TARGET, method="attention", mode=mode, progress=False)
    assert tiny_lm.model.config._attn_implementation == before
    assert (res.token_attr >= 0).all() and (res.token_attr.sum(1) <= 1 + 1e-6).all()
    ref = attribute(tiny_lm, PROMPT, TARGET, method="ablation", progress=False).target_logprobs
    np.testing.assert_allclose(res.target_logprobs, ref, atol=1e-4)


@pytest.mark.parametrize("mode", ["rollout", "last_layer", "mean"])
def test_attention_sink_is_left_out_of_the_normalisation(tiny_lm, mode: str) -> None:
    keep = attribute(tiny_lm, PROMPT, TARGET, method="attention", mode=mode, sink="keep", progress=False)
    res = attribute(tiny_lm, PROMPT, TARGET, method="attention", mode=mode, progress=False)
    share = np.array(res.info["sink_share"])
    # the plain prompt starts at position 0 (no BOS): the first feature is the sink
    np.testing.assert_allclose(share, keep.token_attr[:, 0], atol=1e-12)
    assert (res.token_attr[:, 0] == 0).all()
    # by hand: the unmodified scores of the other positions divided by (1 - the sink's share)
    np.testing.assert_allclose(res.token_attr[:, 1:], keep.token_attr[:, 1:] / (1 - share[:, None]), atol=1e-9)


# ------------------------------------------------------------------- every method
@pytest.mark.parametrize("method", ALL_METHODS)
def test_segments_and_chat_give_one_column_per_feature(tiny_lm, method: str) -> None:
    seg = attribute(tiny_lm, SEGMENTS, " Paris", method=method, progress=False, **CHEAP.get(method, {}))
    assert seg.token_attr.shape == (len(seg.output_tokens), 2) and seg.input_tokens == ["context", "question"]
    assert np.isfinite(seg.token_attr).all()
    chat = attribute(tiny_lm, PROMPT, TARGET, chat=True, method=method, progress=False, **CHEAP.get(method, {}))
    inp = build_input(tiny_lm, PROMPT, TARGET, chat=True)
    assert chat.token_attr.shape == (inp.m, inp.n) and len(inp.prompt_ids) > inp.n
    if method != "lime":  # a Lasso fit is not additive over target tokens; the others are
        np.testing.assert_allclose(chat.seq_attr, chat.token_attr.sum(0), atol=1e-3)


@pytest.mark.parametrize("method", ["shapley", "kernelshap", "lime"])
def test_sampling_methods_are_deterministic_under_a_seed(tiny_lm, method: str) -> None:
    kw = dict(CHEAP[method], progress=False)
    state = torch.random.get_rng_state()
    a = attribute(tiny_lm, PROMPT, TARGET, method=method, seed=5, **kw)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    b = attribute(tiny_lm, PROMPT, TARGET, method=method, seed=5, **kw)
    c = attribute(tiny_lm, PROMPT, TARGET, method=method, seed=6, **kw)
    np.testing.assert_array_equal(a.token_attr, b.token_attr)
    assert not np.allclose(a.token_attr, c.token_attr)


def test_progress_bar_does_not_change_the_numbers(tiny_lm, capsys) -> None:
    quiet = attribute(tiny_lm, PROMPT, TARGET, method="shapley", n_samples=2, progress=False)
    loud = attribute(tiny_lm, PROMPT, TARGET, method="shapley", n_samples=2, progress=True)
    np.testing.assert_array_equal(quiet.token_attr, loud.token_attr)
    assert "perturbations" in capsys.readouterr().err


@pytest.mark.parametrize(
    "method, kwargs, message",
    [
        ("shapley", {"n_samples": 0}, "n_samples"),
        ("kernelshap", {"n_samples": 2.5}, "n_samples"),
        ("lime", {"seed": -1}, "seed"),
        ("integrated_gradients", {"n_steps": 0}, "n_steps"),
        ("integrated_gradients", {"rule": "simpson"}, "unknown rule 'simpson' for method 'integrated_gradients'"),
        ("attention", {"mode": "max"}, "unknown mode 'max' for method 'attention': choose one of rollout"),
        ("attention", {"residual": 1.5}, "residual"),
        ("attention", {"sink": "drop"}, "unknown sink 'drop'"),
        ("shap", {"max_evals": 1}, "max_evals"),
        ("input_x_gradient", {"n_steps": 5}, "n_steps"),
    ],
)
def test_bad_options_are_one_clear_error(tiny_lm, method: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ExplainError, match=message):
        attribute(tiny_lm, PROMPT, TARGET, method=method, progress=False, **kwargs)


# ------------------------------------------------------------------- embedded model
@pytest.mark.slow
def test_embedded_model_agrees_with_captum(embedded_lm) -> None:
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, ShapleyValueSampling, TextTokenInput

    prompt, target = "The capital of France is", " Paris."
    inp = build_input(embedded_lm, prompt, target)
    ours = attribute(embedded_lm, prompt, target, method="shapley", n_samples=2, baseline=0, progress=False)
    ref = captum_llm(embedded_lm, ShapleyValueSampling, prompt, inp.target_ids, n_samples=2)
    np.testing.assert_allclose(ours.token_attr, ref.token_attr.numpy(), atol=1e-3)
    ig = attribute(embedded_lm, prompt, target, method="integrated_gradients", n_steps=4, baseline=0,
                   progress=False)
    lig = LayerIntegratedGradients(embedded_lm.model, embedded_lm.model.get_input_embeddings())
    ref_ig = LLMGradientAttribution(lig, embedded_lm.tokenizer).attribute(
        TextTokenInput(prompt, embedded_lm.tokenizer), target=torch.tensor(inp.target_ids), n_steps=4
    )
    np.testing.assert_allclose(ig.token_attr, ref_ig.token_attr.numpy(), atol=1e-3)


@pytest.mark.slow
def test_embedded_rollout_is_not_all_on_the_first_token(embedded_lm) -> None:
    keep = attribute(embedded_lm, "The capital of France is", " Paris", method="attention", sink="keep",
                     progress=False)
    res = attribute(embedded_lm, "The capital of France is", " Paris", method="attention", progress=False)
    assert keep.token_attr[0, 0] > 0.99  # the sink: today's behaviour
    assert res.info["sink_share"][0] > 0.99 and res.token_attr[0, 0] == 0
    assert res.token_attr[0, 1:].sum() == pytest.approx(1.0) and (res.token_attr[0, 1:] > 0.01).sum() >= 3
