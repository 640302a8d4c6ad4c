"""attribute(context=, top_k=, screen=): the question kept apart, screens, exact values for the top K."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import ARCHS, make_tiny_lm

from explain import WhylmError, attribute, estimate_cost
from reference import leave_one_out
from explain.attribution.inputs import build_input
from explain.attribution.screen import SCREENS
from explain.model import with_context
from explain.result import AttributionResult

CONTEXT = ("The sky is blue. The capital of France is Paris. Smoking causes tar deposits. "
           "The quick brown fox jumps over the lazy dog. Altitude lowers the temperature of the air.")
QUESTION = "Question: what is the capital of France? Answer:"


def screen_options(lm, screen: str) -> dict:
    """Random head weights for the fitted screen (no weights ship for a tiny model)."""
    if screen != "fitted_attention":
        return {}
    cfg = lm.model.config
    return {"head_weights": np.random.default_rng(0).normal(size=(2, cfg.num_hidden_layers, cfg.num_attention_heads))}


@pytest.mark.parametrize("arch", ARCHS)
def test_exact_part_equals_full_leave_one_out_on_every_architecture(arch: str) -> None:
    lm = make_tiny_lm(arch)
    full = attribute(lm, QUESTION, " Paris", context=CONTEXT, sources="sentences", baseline=0)
    # the full run itself against the brute force: one plain pass per removed sentence
    inp = build_input(lm, QUESTION, " Paris", sources="sentences", context=CONTEXT)
    ref = leave_one_out(lm.model, inp.prompt_ids, inp.target_ids, inp.features)  # removal
    np.testing.assert_allclose(full.token_attr, ref[:, :-1], atol=1e-4)
    assert full.info["question"]["value"] == pytest.approx(float(ref[:, -1].sum()), abs=1e-4)
    for screen in SCREENS:
        res = attribute(lm, QUESTION, " Paris", context=CONTEXT, sources="sentences", top_k=2, screen=screen,
                        **screen_options(lm, screen))
        exact = res.exact
        assert exact.sum() >= 2 and exact[res.info["screen_rank"][:2]].all()
        np.testing.assert_allclose(res.token_attr[:, exact], ref[:, :-1][:, exact], atol=1e-4)
        assert res.info["question"]["value"] == pytest.approx(float(ref[:, -1].sum()), abs=1e-4)


def test_only_the_context_is_split_and_the_question_stays_apart(tiny_lm) -> None:
    res = attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="sentences", top_k=2, screen="attention")
    assert res.input_tokens == ["The sky is blue.", "The capital of France is Paris.", "Smoking causes tar deposits.",
                                "The quick brown fox jumps over the lazy dog.",
                                "Altitude lowers the temperature of the air."]
    assert res.info["question"]["text"] == QUESTION and res.prompt == QUESTION
    for name, (a, b) in zip(res.input_tokens, res.info["source_spans"]):
        assert CONTEXT[a:b].strip() == name  # spans are offsets in the context
    assert sum(res.info["exact"]) == 2 and len(res.info["exact"]) == 5
    # the model read the one template: the unperturbed log-prob is that of the joined text
    (lp,) = tiny_lm.continuation_logprobs([tiny_lm.encode(with_context(QUESTION, CONTEXT))],
                                          [tiny_lm.encode(" Paris", special=False)])
    np.testing.assert_allclose(res.target_logprobs, lp, atol=1e-4)


def test_dict_prompt_is_a_context_and_a_question(tiny_lm) -> None:
    a = attribute(tiny_lm, {"context": CONTEXT, "question": QUESTION}, " Paris", sources="sentences")
    b = attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="sentences")
    assert a.input_tokens == b.input_tokens
    np.testing.assert_allclose(a.seq_attr, b.seq_attr, atol=1e-6)


def test_top_k_over_tokens_and_words(tiny_lm) -> None:
    full = attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="tokens", baseline=0)
    res = attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT, sources="tokens", top_k=3, baseline=0)
    assert res.input_tokens == full.input_tokens and "".join(res.input_tokens) == CONTEXT
    np.testing.assert_allclose(res.seq_attr[res.exact], full.seq_attr[res.exact], atol=1e-4)
    words = attribute(tiny_lm, "Answer:", " blue", context="the sky is blue\n", sources="words", top_k=1,
                      screen="attention")
    assert words.input_tokens == ["the", "sky", "is", "blue"] and sum(words.info["exact"]) == 1


def test_plain_short_inputs(tiny_lm) -> None:
    # one sentence, a trailing newline, top_k above the number of sources
    res = attribute(tiny_lm, "Colour?", " blue", context="The sky is blue.\n", sources="sentences", top_k=5)
    assert res.input_tokens == ["The sky is blue."] and res.info["exact"] == [True]
    plain = attribute(tiny_lm, "Colour?", " blue", context="The sky is blue.\n", sources="sentences")
    np.testing.assert_allclose(res.seq_attr, plain.seq_attr, atol=1e-4)


def test_estimates_are_flagged_everywhere(tiny_lm) -> None:
    res = attribute(tiny_lm, QUESTION, " Paris", context=CONTEXT + " The <b>x</b> tag & y.", sources="sentences", top_k=1,
                    screen="attention")
    back = AttributionResult.from_json(res.to_json())
    assert back.info["exact"] == res.info["exact"] and isinstance(json.loads(res.to_json())["info"]["exact"], list)
    np.testing.assert_allclose(back.token_attr, res.token_attr)
    summary = res.summary(k=len(res.input_tokens))
    assert "(estimated)" in summary and "exact leave-one-out for 1 of 6" in summary and "question" in summary
    labels = res.figure().layout.xaxis.ticktext or res.figure().data[0].customdata[0]
    assert sum("≈" in str(t) for t in labels) == 5
    page = res._repr_html_()
    assert "≈" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"top_k": 2.5}, "top_k must be an integer >= 1"),
    ({"top_k": 2, "method": "shapley"}, 'needs method="ablation"'),
    ({"top_k": 2, "screen": "magic"}, "unknown screen 'magic'"),
    ({"screen": "gradient"}, "need top_k="),
    ({"context": 5}, "context must be a string"),
    ({"context": "  "}, "context is empty"),
    ({"top_k": 2, "block": 0, "screen": "hierarchical"}, "block must be an integer >= 1"),
])
def test_bad_input_gives_one_line_error(tiny_lm, kwargs, message) -> None:
    kwargs = {"context": CONTEXT, "sources": "sentences", **kwargs}
    with pytest.raises(WhylmError) as err:
        attribute(tiny_lm, QUESTION, " Paris", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cost_knows_the_screen_and_refusal_suggests_top_k(tiny_lm) -> None:
    long_ctx = " ".join([CONTEXT] * 3)
    full = estimate_cost(tiny_lm, QUESTION, " Paris", context=long_ctx, sources="sentences")
    for screen in SCREENS:
        cheap = estimate_cost(tiny_lm, QUESTION, " Paris", context=long_ctx, sources="sentences", top_k=3,
                              screen=screen)
        assert cheap.positions < full.positions, screen
        assert f"{screen} screen + exact top 3" in cheap.what
    with pytest.raises(WhylmError, match="top_k=5"):
        attribute(tiny_lm, QUESTION, " Paris", context=long_ctx, sources="sentences", max_seconds=1e-6)


def test_cli_context_file_and_top_k(tiny_dir, tmp_path, capsys) -> None:
    from dashboard.cli import main

    ctx = tmp_path / "context.txt"
    ctx.write_text(CONTEXT + "\n", encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["explain", QUESTION, "--target", " Paris", "--model", tiny_dir, "--context-file", str(ctx),
                 "--sources", "sentences", "--top-k", "2", "--screen", "attention", "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "2 output x 5 sentences" in printed.out and "exact leave-one-out for 2 of 5 sentences" in printed.out
    assert "question (kept apart" in printed.out and "screen + exact top 2" in printed.err
    data = json.loads(out.read_text())
    assert sum(data["info"]["exact"]) == 2 and len(data["input_tokens"]) == 5
    assert main(["explain", QUESTION, "--model", tiny_dir, "--screen", "gradient"]) == 2
    assert "--screen needs --top-k" in capsys.readouterr().err
    assert main(["explain", QUESTION, "--model", tiny_dir, "--context-file", str(tmp_path / "nope.txt")]) == 2


def test_cost_predicts_the_block_attention_screen(tiny_lm) -> None:
    # measured: the engine's counted rows + the screen's whole pass + its short attention pass
    ctx = " ".join([CONTEXT] * 3)
    cost = estimate_cost(tiny_lm, QUESTION, " Paris", context=ctx, sources="sentences", top_k=3,
                         screen="block_attention")
    res = attribute(tiny_lm, QUESTION, " Paris", context=ctx, sources="sentences", top_k=3,
                    screen="block_attention")
    inp = build_input(tiny_lm, QUESTION, " Paris", sources="sentences", context=ctx)
    n_seq = len(inp.sequence)
    measured_positions = res.info["token_positions"] + n_seq + (n_seq - len(inp.prompt_ids) + 1)
    assert res.info["screen_blocks"] >= 2
    # the plan places the K exact rows evenly (their sources are unknown before the run); without
    # the block rows it would predict about half of the measured positions
    assert 0.6 <= cost.positions / measured_positions <= 1.5
    assert abs(cost.passes - (res.info["forward_passes"] + 2)) <= 1
