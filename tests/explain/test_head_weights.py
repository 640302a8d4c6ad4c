"""The fitted_attention screen: head weights (load, check, fit) and `whylm fit-screen`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explain import WhylmError, attribute
from explain.attribution.head_weights import (PROFILES, HeadWeights, attention_profiles, fit_head_weights, fit_weights,
                                              load_head_weights, recall_at, score_sources)
from explain.attribution.inputs import build_input
from explain.attribution.screen import whole_pass

CONTEXT = ("The sky is blue. The capital of France is Paris. Smoking causes tar deposits. "
           "The quick brown fox jumps over the lazy dog. Altitude lowers the temperature of the air.")
QUESTION = "Question: what is the capital of France? Answer:"


def shape(lm) -> tuple[int, int, int]:
    return len(PROFILES), lm.model.config.num_hidden_layers, lm.model.config.num_attention_heads


def test_profiles_are_the_attention_each_sentence_gets(tiny_lm) -> None:
    """Checked against the model's own full attention maps (one eager pass, no cache cutting)."""
    import torch

    from explain.attribution.attention import eager_attention

    inp = build_input(tiny_lm, QUESTION, " Paris", sources="sentences", context=CONTEXT)
    cands = [f for f in range(inp.n) if f != inp.question]
    _, cache = whole_pass(tiny_lm, inp)
    prof = attention_profiles(tiny_lm, inp, cache, cands)
    with torch.no_grad(), eager_attention(tiny_lm.model):
        out = tiny_lm.model(torch.tensor([inp.sequence]), output_attentions=True)
    att = torch.stack([a[0] for a in out.attentions]).double().numpy()  # (layers, heads, L, L)
    last = len(inp.prompt_ids) - 1
    q0 = min(inp.features[inp.question])
    for p, rows in enumerate([range(last, len(inp.sequence)), range(q0, last)]):
        mass = np.stack([att[:, :, list(rows)][..., inp.features[f]].sum((-1, -2)) for f in cands], -1)
        np.testing.assert_allclose(prof[p], mass / mass.sum(-1, keepdims=True), atol=1e-5)


def test_fitted_screen_needs_weights_that_fit_the_model(tiny_lm, tmp_path) -> None:
    kw = {"context": CONTEXT, "sources": "sentences", "top_k": 2, "screen": "fitted_attention"}
    with pytest.raises(WhylmError, match="no fitted head weights ship for model .*whylm fit-screen"):
        attribute(tiny_lm, QUESTION, " Paris", **kw)
    with pytest.raises(WhylmError, match=r"head weights have shape \(2, 3, 3\), the model needs"):
        attribute(tiny_lm, QUESTION, " Paris", head_weights=np.ones((2, 3, 3)), **kw)
    with pytest.raises(WhylmError, match="does not exist"):
        attribute(tiny_lm, QUESTION, " Paris", head_weights=str(tmp_path / "none.json"), **kw)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2", encoding="utf-8")
    with pytest.raises(WhylmError, match="not valid JSON"):
        load_head_weights(bad, tiny_lm)
    with pytest.raises(WhylmError, match="need top_k="):  # an option of the screen, not of the method
        attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="sentences", head_weights=np.ones(3))
    with pytest.raises(WhylmError, match="head_weights is an option of screen='fitted_attention'"):
        attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="sentences", top_k=2, screen="attention",
                  head_weights=np.ones(3))


def test_the_screen_ranks_by_the_weighted_profiles(tiny_lm, tmp_path) -> None:
    """A weight on one head only: the screen's order is that head's attention order."""
    w = np.zeros(shape(tiny_lm))
    w[0, 1, 2] = 50.0
    path = HeadWeights(tiny_lm.name, w).save(tmp_path / "w.json")
    res = attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="sentences", top_k=2,
                    screen="fitted_attention", head_weights=str(path))
    inp = build_input(tiny_lm, QUESTION, " Paris", sources="sentences", context=CONTEXT)
    cands = [f for f in range(inp.n) if f != inp.question]
    _, cache = whole_pass(tiny_lm, inp)
    head = attention_profiles(tiny_lm, inp, cache, cands)[0, 1, 2]
    assert res.info["screen_rank"] == list(np.argsort(-head, kind="stable"))
    assert res.exact.sum() == 2 and res.info["screen"] == "fitted_attention"


def test_fit_finds_a_planted_head_and_recall_counts_by_hand() -> None:
    rng = np.random.default_rng(3)
    examples = []
    for _ in range(30):
        x = rng.dirichlet(np.ones(8), size=(2, 2, 4)).reshape(2, 2, 4, 8)
        examples.append((x, 6.0 * x[1, 0, 3] + 0.05 * rng.normal(size=8)))  # question profile, layer 0, head 3
    w = fit_weights(examples)
    assert np.unravel_index(np.argmax(w), w.shape) == (1, 0, 3)
    held = [(x, 6.0 * x[1, 0, 3]) for x in rng.dirichlet(np.ones(8), size=(5, 2, 2, 4)).reshape(5, 2, 2, 4, 8)]
    assert np.mean([recall_at(score_sources(x, w), y) for x, y in held]) == 1.0
    # by hand: exact top 3 = {2, 1, 3}; the scores' top 2 = {0, 1}: one of three found
    assert recall_at(np.array([5., 4., 0., 1.]), np.array([0., 2., 3., 1.]), k=2) == pytest.approx(1 / 3)


def test_fit_head_weights_end_to_end_and_cli(tiny_lm, tiny_dir, tmp_path, capsys) -> None:
    cases = [{"question": QUESTION, "context": CONTEXT, "answer": " Paris"},
             {"question": "Question: what colour is the sky? Answer:", "context": CONTEXT, "answer": " blue"},
             {"question": "Question: what does smoking cause? Answer:", "context": CONTEXT, "answer": " tar"},
             {"question": "Question: what jumps? Answer:", "context": CONTEXT, "answer": " the fox"}]
    hw = fit_head_weights(tiny_lm, cases, progress=False)
    assert hw.weights.shape == shape(tiny_lm) and hw.metrics["cases"] == 4 and hw.metrics["held_out"] == 1
    assert 0.0 <= hw.metrics["recall3_top5_fitted"] <= 1.0
    from dashboard.cli import main

    out = tmp_path / "heads.json"
    args = ["fit-screen", "--model", tiny_dir, "--out", str(out), "--cases", "3", "--tokens", "48", "--no-progress",
            "--cache", str(tmp_path / "kept")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "estimate: fitting head weights: sentence leave-one-out on 3 cases" in err
    assert len(list((tmp_path / "kept").glob("*.npz"))) == 3
    first = json.loads(out.read_text(encoding="utf-8"))["weights"]
    assert main(args) == 0  # a rerun reads every case from the cache: no leave-one-out, the same fit
    assert "on 0 cases, 3 kept from an earlier run" in capsys.readouterr().err
    assert json.loads(out.read_text(encoding="utf-8"))["weights"] == first
    damaged = sorted((tmp_path / "kept").glob("*.npz"))[0]
    damaged.write_text("garbage", encoding="utf-8")  # a damaged kept case is computed again, not a crash
    assert main(args) == 0
    assert "on 1 cases, 2 kept from an earlier run" in capsys.readouterr().err
    assert json.loads(out.read_text(encoding="utf-8"))["weights"] == first
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["kind"] == "whylm head weights" and np.asarray(data["weights"]).shape == shape(tiny_lm)
    assert load_head_weights(out, tiny_lm).weights.shape == shape(tiny_lm)
    assert main(["fit-screen", "--model", tiny_dir, "--out", str(tmp_path / "no" / "h.json")]) == 2
    assert f"--out {tmp_path / 'no' / 'h.json'}: the folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err
    own = tmp_path / "cases.jsonl"
    own.write_text("\n".join(json.dumps(c) for c in cases[:3]) + "\n", encoding="utf-8")
    assert main(["fit-screen", "--model", tiny_dir, "--out", str(out), "--cases-file", str(own), "--no-progress",
                 "--cache", str(tmp_path / "kept")]) == 0
    assert "--cases-file cases.jsonl" in json.loads(out.read_text(encoding="utf-8"))["fitted_on"]
    own.write_text('{"question": "Q?", "context": "A."}\n', encoding="utf-8")
    assert main(["fit-screen", "--model", tiny_dir, "--out", str(out), "--cases-file", str(own)]) == 2
    assert "line 1: needs question, context and answer as text" in capsys.readouterr().err


def test_exact_top_computes_the_screened_sources_exactly_and_the_rest_as_zero(tiny_lm, tiny_dir, tmp_path,
                                                                              capsys) -> None:
    """``exact_top``: the best-screened sources hold their exact drop (checked against a brute-force
    removal loop), the others 0; the cost and the cache key know it."""
    from explain.attribution.head_weights import collect_example, fit_cost

    context = " ".join([CONTEXT, "Rivers flow to the sea. Bread is baked in ovens. Owls hunt at night."])
    prof, loo = collect_example(tiny_lm, QUESTION, context, " Paris", exact_top=3)
    inp = build_input(tiny_lm, QUESTION, " Paris", sources="sentences", context=context)
    ids = inp.prompt_ids

    def logprob(seq: list[int]) -> float:
        import torch

        with torch.no_grad():
            logits = tiny_lm.model(torch.tensor([seq + inp.target_ids[:-1]])).logits[0].double()
        lp = torch.log_softmax(logits[len(seq) - 1:], -1)
        return float(lp[torch.arange(inp.m), torch.tensor(inp.target_ids)].sum())

    full = logprob(ids)
    brute = [full - logprob([t for i, t in enumerate(ids) if i not in set(inp.features[f])])
             for f in range(inp.n) if f != inp.question]
    kept = np.flatnonzero(loo)  # the K chosen, and any source the screen itself computed exactly
    assert prof.shape[-1] == len(brute) == 8 and 3 <= len(kept) < 8
    np.testing.assert_allclose(loo[kept], np.asarray(brute)[kept], atol=1e-4)
    long_case = [{"question": QUESTION, "context": " ".join([context] * 2), "answer": " Paris"}]
    assert fit_cost(tiny_lm, long_case, exact_top=3).positions < fit_cost(tiny_lm, long_case).positions
    from dashboard.cli import main

    out, kept_dir = tmp_path / "heads.json", tmp_path / "kept"
    base = ["fit-screen", "--model", tiny_dir, "--out", str(out), "--cases", "2", "--tokens", "64", "--no-progress",
            "--cache", str(kept_dir)]
    assert main(base + ["--exact-top", "2"]) == 2
    assert "--exact-top must be 3 or more, got 2" in capsys.readouterr().err
    assert main(base + ["--exact-top", "3"]) == 0 and main(base) == 0  # other keys: both fits compute
    assert len(list(kept_dir.glob("*.npz"))) == 4
    assert "--exact-top" not in json.loads(out.read_text(encoding="utf-8"))["fitted_on"]
    assert main(base + ["--exact-top", "3"]) == 0
    assert "on 0 cases, 2 kept from an earlier run" in capsys.readouterr().err
    assert "--exact-top 3" in json.loads(out.read_text(encoding="utf-8"))["fitted_on"]


# A haystack written by hand in another style than explain.attribution.haystacks (which the shipped
# weights were fitted on): a harbour, a link (captain -> ship) and a key (ship -> pier), distractors.
FILLER = [
    "The morning fog lifted slowly over the grey water.", "Gulls argued loudly above the fish market.",
    "A cold wind came in from the north after lunch.", "The harbour master counted the crates twice.",
    "Two fishermen mended their nets on the quay.", "The lighthouse keeper painted the railings white.",
    "Rain fell for most of the afternoon.", "A small boy sold newspapers near the customs house.",
    "The tide turned shortly before six o'clock.", "Tourists photographed the old stone bridge.",
    "The bakery on the corner ran out of bread early.", "An old dog slept in the shade of a barrel.",
    "The church bells rang at noon as usual.", "A delivery van blocked the narrow street for an hour.",
    "The ferry left on time despite the swell.", "Children played football on the empty beach.",
    "The café owner swept the terrace again.", "A crane lifted new masts onto the dock.",
    "The sky cleared in the evening.", "Lamps were lit along the promenade at dusk.",
]
LINK = "Captain Orla Venn commands the ship called the Grey Heron."
KEY = "The Grey Heron is moored at pier 47."
HARBOUR = " ".join(FILLER[:6] + [LINK] + FILLER[6:11] + ["Captain Ivo Marr commands the ship called the Salt Finch."]
                   + FILLER[11:15] + [KEY] + FILLER[15:18] + ["The Salt Finch is moored at pier 12."] + FILLER[18:])
PIER_QUESTION = "Question: At which pier is the ship commanded by Captain Orla Venn moored?\nAnswer: Pier"


@pytest.mark.slow
def test_embedded_model_defaults_to_the_fitted_screen_and_finds_both_needles(embedded_lm) -> None:
    from reference import leave_one_out

    res = attribute(embedded_lm, PIER_QUESTION, " 47", context=HARBOUR, sources="sentences", top_k=5, progress=False)
    assert res.info["screen"] == "fitted_attention"
    top = [name for name, _ in res.top_features(5)]
    assert top[0] == KEY and LINK in top and res.exact[res.input_tokens.index(LINK)]
    # every value marked exact is the brute-force removal of that sentence (one plain pass each)
    inp = build_input(embedded_lm, PIER_QUESTION, " 47", sources="sentences", context=HARBOUR)
    exact = np.flatnonzero(res.exact)
    ref = leave_one_out(embedded_lm.model, inp.prompt_ids, inp.target_ids, [inp.features[f] for f in exact])
    np.testing.assert_allclose(res.token_attr[:, exact], ref, atol=1e-4)
    # and no estimate outranks a source computed exactly
    assert res.seq_attr[~res.exact].max() <= res.seq_attr[res.info["screen_rank"][:5]].min() + 1e-9


def test_fitted_screen_without_a_question_ranks_by_the_answer_positions(tiny_lm) -> None:
    """A plain prompt split into sentences (no context=): no question profile; exact part still exact."""
    from reference import leave_one_out

    prompt = CONTEXT + " The capital of France is"
    w = np.random.default_rng(1).normal(size=shape(tiny_lm))
    res = attribute(tiny_lm, prompt, " Paris", sources="sentences", top_k=2, screen="fitted_attention", head_weights=w)
    inp = build_input(tiny_lm, prompt, " Paris", sources="sentences")
    ref = leave_one_out(tiny_lm.model, inp.prompt_ids, inp.target_ids, inp.features)
    np.testing.assert_allclose(res.token_attr[:, res.exact], ref[:, res.exact], atol=1e-4)
    _, cache = whole_pass(tiny_lm, inp)
    prof = attention_profiles(tiny_lm, inp, cache, list(range(inp.n)))
    assert not prof[1].any()  # no question: its profile is empty
    assert res.info["screen_rank"][:2] == list(np.argsort(-score_sources(prof, w), kind="stable")[:2])
