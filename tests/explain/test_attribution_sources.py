"""Attribution over sources (words, sentences, paragraphs, spans): removal against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import make_tiny_lm

from reference import leave_one_out, piece_features, target_logprobs

from explain import ExplainError, attribute
from explain.attribution import METHODS, build_input, split_sources

TEXT = (
    "The capital of France is Paris. Dr. Smith paid 3.14 euros, e.g. for tea. "
    "The quick brown fox jumps over the lazy dog.\n\nSmoking causes tar deposits. Altitude lowers the temperature."
)
TARGET = " Paris, and the capital"
CHEAP = {"shapley": {"n_samples": 2}, "kernelshap": {"n_samples": 30}, "lime": {"n_samples": 30},
         "integrated_gradients": {"n_steps": 4}, "shap": {"max_evals": 40}}


def removal_logprobs(lm, inp, keep: torch.Tensor) -> np.ndarray:
    """(B, m) target log-probs with each row's dropped sources' tokens removed: one plain,
    unbatched, uncached teacher-forced pass per row."""
    rows = []
    for k in keep.bool():
        gone = {p for f in np.flatnonzero(~k.numpy()) for p in inp.features[f]}
        ids = [t for p, t in enumerate(inp.prompt_ids) if p not in gone]
        if not ids:  # the documented convention: an empty prompt is the end-of-text token alone
            bos = lm.tokenizer.bos_token_id
            ids = [lm.pad_id if bos is None else bos]
        rows.append(target_logprobs(lm.model, ids, inp.target_ids))
    return np.stack(rows)


def removal_reference(lm, pieces: list[str], target: str, features: list[int] | None = None) -> np.ndarray:
    """Leave-one-out over ``pieces`` (each tokenised alone; ``features`` picks the ones that are
    sources, default all), removing a source's tokens: the brute force of tests/support/reference.py."""
    ids, spans = piece_features(lm.tokenizer, pieces)
    chosen = [spans[i] for i in (range(len(pieces)) if features is None else features)]
    target_ids = list(lm.tokenizer(target, add_special_tokens=False)["input_ids"])
    return leave_one_out(lm.model, ids, target_ids, chosen)


# ------------------------------------------------------------------ the splitter
@pytest.mark.parametrize(
    "text, kind, expected",
    [
        ("Dr. Smith paid $3.14, e.g. for tea. Then he left!", "sentences",
         ["Dr. Smith paid $3.14, e.g. for tea.", " Then he left!"]),
        ("Mr. and Mrs. Jones met Prof. Lee at 5 p.m. on Jan. 3. It rained.", "sentences",
         ["Mr. and Mrs. Jones met Prof. Lee at 5 p.m. on Jan. 3.", " It rained."]),
        ("He said \"stop.\" She did. 42 people saw it?! Yes.", "sentences",
         ['He said "stop."', " She did.", " 42 people saw it?!", " Yes."]),
        ("J. R. R. Tolkien wrote it. The U.S. economy grew 2.5% i.e. a lot.", "sentences",
         ["J. R. R. Tolkien wrote it.", " The U.S. economy grew 2.5% i.e. a lot."]),
        ("Title\nFirst line. Second line.", "sentences", ["Title", "\nFirst line.", " Second line."]),
        ("  lead space. End.  ", "sentences", ["  lead space.", " End.  "]),
        ("one para.\n\n two\nlines\n\n\nthree", "paragraphs", ["one para.", "\n\n two\nlines", "\n\n\nthree"]),
        ("a  b\tc\n", "words", ["a", "  b", "\tc\n"]),
    ],
)
def test_splitter_keeps_abbreviations_and_numbers_and_tiles_the_text(text, kind, expected) -> None:
    pieces = split_sources(text, kind)
    assert [p.text for p in pieces] == expected
    assert "".join(p.text for p in pieces) == text
    assert all(text[p.start:p.end] == p.text for p in pieces)


def test_spans_leave_the_text_between_them_fixed() -> None:
    pieces = split_sources("hello big world", [(6, 9), (0, 5)])
    assert [(p.text, p.feature) for p in pieces] == [("hello", True), (" ", False), ("big", True), (" world", False)]


@pytest.mark.parametrize(
    "sources, message",
    [
        ("chapters", "unknown sources 'chapters'"),
        ([(0, 3), (2, 5)], "overlaps"),
        ([(0, 99)], "not inside the prompt"),
        ([(1.5, 3)], "integer character offsets"),
        ([], "at least one"),
        (3, "sources must be"),
        ({"a": "b"}, "as the prompt"),
    ],
)
def test_bad_sources_are_one_line_errors(tiny_lm, sources, message) -> None:
    with pytest.raises(ExplainError, match=message) as err:
        attribute(tiny_lm, "hello big world", " x", sources=sources, progress=False)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ removal engine
@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2", "gpt_neox", "gemma"])
@pytest.mark.parametrize("kind", ["sentences", "words"])
def test_source_ablation_equals_brute_force_removal(arch: str, kind: str) -> None:
    lm = make_tiny_lm(arch)
    pieces = [p.text for p in split_sources(TEXT, kind)]
    ref = removal_reference(lm, pieces, TARGET)
    for max_rows in (None, 1, 3):
        res = attribute(lm, TEXT, TARGET, sources=kind, progress=False, max_rows=max_rows)
        np.testing.assert_allclose(res.token_attr, ref, atol=1e-4)
        assert res.info["kv_cache_reuse"] and res.info["ablation"] == "removal"
    assert res.input_tokens == [p.name for p in split_sources(TEXT, kind)]


def test_removal_reuses_the_prefix_cache(tiny_lm) -> None:
    res = attribute(tiny_lm, TEXT, TARGET, sources="words", progress=False)
    inp = build_input(tiny_lm, TEXT, TARGET, sources="words")
    plain = sum(len(inp.sequence) - len(f) for f in inp.features)  # one full pass per removed source
    checks = 2 * len(inp.sequence)  # the unperturbed row, plain and through the gathered head
    assert res.info["kv_cache_reuse"] and res.info["token_positions"] - checks < 0.8 * plain


def test_paragraphs_spans_and_segments_are_sources(tiny_lm) -> None:
    para = attribute(tiny_lm, TEXT, TARGET, sources="paragraphs", progress=False)
    assert len(para.input_tokens) == 2 and para.info["source_spans"][1][1] == len(TEXT)
    at = TEXT.index("Smoking")
    chosen = [(0, 31), (at, at + len("Smoking causes tar deposits."))]
    spans = attribute(tiny_lm, TEXT, TARGET, sources=chosen, progress=False)
    assert spans.input_tokens == ["The capital of France is Paris.", "Smoking causes tar deposits."]
    cuts = [0, 31, at, at + len("Smoking causes tar deposits."), len(TEXT)]
    pieces = [TEXT[a:b] for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_allclose(spans.token_attr, removal_reference(tiny_lm, pieces, TARGET, [0, 2]), atol=1e-4)
    seg = attribute(tiny_lm, {"context": "Sky is blue.", "question": " What colour?"}, " blue", progress=False)
    assert seg.info["ablation"] == "removal" and seg.input_tokens == ["context", "question"]


def test_chat_with_sentence_sources_keeps_the_template(tiny_lm) -> None:
    res = attribute(tiny_lm, "Sky is blue. Grass is green.", " blue", chat=True, sources="sentences", progress=False)
    inp = build_input(tiny_lm, "Sky is blue. Grass is green.", " blue", chat=True, sources="sentences")
    assert res.input_tokens == ["Sky is blue.", "Grass is green."]
    assert len(inp.prompt_ids) > sum(len(f) for f in inp.features)
    # the template's ids come from the library here (tests/test_chat_span.py checks them against
    # the tokenizer's own template); the removal itself is the brute force's
    ref = leave_one_out(tiny_lm.model, inp.prompt_ids, inp.target_ids, inp.features)
    np.testing.assert_allclose(res.token_attr, ref, atol=1e-4)


@pytest.mark.parametrize("method", ["shapley", "kernelshap", "lime"])
def test_sampling_methods_over_sources_equal_captum_on_plain_removal(tiny_lm, method: str) -> None:
    """captum's own algorithm, its forward a plain removal loop, from the same seed."""
    from captum.attr import KernelShap, Lime, ShapleyValueSampling

    cls = {"shapley": ShapleyValueSampling, "kernelshap": KernelShap, "lime": Lime}[method]
    n_samples = {"shapley": 2, "kernelshap": 40, "lime": 40}[method]
    inp = build_input(tiny_lm, TEXT, TARGET, sources="sentences")
    ours = attribute(tiny_lm, TEXT, TARGET, method=method, sources="sentences", n_samples=n_samples, seed=4,
                     progress=False)
    torch.manual_seed(4)
    ref = cls(lambda keep: torch.tensor(removal_logprobs(tiny_lm, inp, keep > 0.5).sum(1))).attribute(
        torch.ones(1, inp.n), n_samples=n_samples, perturbations_per_eval=8
    )
    np.testing.assert_allclose(ours.seq_attr, ref[0].numpy(), atol=1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_works_over_sentences(tiny_lm, method: str) -> None:
    res = attribute(tiny_lm, TEXT, TARGET, method=method, sources="sentences", progress=False,
                    **CHEAP.get(method, {}))
    n = len(split_sources(TEXT, "sentences"))
    assert res.token_attr.shape == (len(res.output_tokens), n) and np.isfinite(res.token_attr).all()
    assert res.input_tokens[0] == "The capital of France is Paris."


@pytest.mark.slow
def test_embedded_model_sentence_ablation_matches_brute_force_and_finds_the_needle(embedded_lm) -> None:
    context = ("The harbour reopened in spring. The code for the blue vault is 4172. "
               "A small bakery closed early after the storm. The code for the red vault is 9385. "
               "The museum counted visitors on most Sundays.")
    prompt = context + "\nQuestion: what is the code for the blue vault?\nAnswer: The code for the blue vault is"
    res = attribute(embedded_lm, prompt, " 4172", sources="sentences", progress=False)
    ref = removal_reference(embedded_lm, [p.text for p in split_sources(prompt, "sentences")], " 4172")
    np.testing.assert_allclose(res.token_attr, ref, atol=1e-4)
    assert res.top_features(1)[0][0] == "The code for the blue vault is 4172."
