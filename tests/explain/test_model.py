"""LanguageModel: loading, readable tokens, chat templates, batch-independent log-probs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import ARCHS, make_tiny_lm

from explain import ExplainError, LanguageModel


@pytest.mark.parametrize("arch", ARCHS)
def test_logprobs_do_not_depend_on_batch_or_padding(arch: str) -> None:
    lm = make_tiny_lm(arch)
    p1, p2 = lm.encode("The capital of France is"), lm.encode("Altitude")
    c1, c2 = lm.encode(" Paris, and Rome.", special=False), lm.encode(" lowers", special=False)
    alone = [lm.continuation_logprobs([p], [c])[0] for p, c in ((p1, c1), (p2, c2))]
    together = lm.continuation_logprobs([p1, p2], [c1, c2])
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # equal to a hand-written single teacher-forced pass
    ids = torch.tensor([p1 + c1[:-1]])
    logp = torch.log_softmax(lm.model(ids).logits[0, len(p1) - 1:], -1)
    np.testing.assert_allclose(alone[0], logp[torch.arange(len(c1)), torch.tensor(c1)].detach().numpy(), atol=1e-5)


def test_tokens_are_readable(tiny_lm) -> None:
    ids = tiny_lm.encode("The capital of France is", special=False)
    toks = tiny_lm.tokens(ids)
    assert "".join(toks) == "The capital of France is"
    assert not any("Ġ" in t or "▁" in t for t in toks)


def test_multibyte_character_is_kept_whole(tiny_lm) -> None:
    ids = tiny_lm.encode("café ☕", special=False)
    toks = tiny_lm.tokens(ids)
    assert "".join(t for t in toks if t != "\ufffd") == "café ☕"


def test_prompt_ids_locate_user_content(tiny_lm) -> None:
    ids, (start, end) = tiny_lm.prompt_ids("what colour is the sky?", chat=True)
    assert tiny_lm.tokenizer.decode(ids[start:end]) == "what colour is the sky?"
    assert tiny_lm.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_chat_without_template_is_a_clear_error() -> None:
    lm = make_tiny_lm("gpt2")
    lm.tokenizer = lm.tokenizer.__class__(tokenizer_object=lm.tokenizer.backend_tokenizer, eos_token="<|endoftext|>")
    with pytest.raises(ExplainError, match="has no chat template"):
        lm.prompt_ids("hi", chat=True)


def test_generate_returns_scores_of_the_generation_pass(tiny_lm) -> None:
    ids = tiny_lm.encode("The capital of France is")
    gen = tiny_lm.generate(ids, max_new_tokens=6)
    seq = gen.sequences[0]
    assert len(seq) == gen.logprobs[0].shape[0]
    greedy = gen.logprobs[0].argmax(-1).tolist()
    assert greedy == seq
    (tf,) = tiny_lm.continuation_logprobs([ids], [seq])
    np.testing.assert_allclose(gen.logprobs[0][torch.arange(len(seq)), seq].numpy(), tf, atol=1e-4)


def test_sampling_is_seeded(tiny_lm) -> None:
    ids = tiny_lm.encode("The quick brown")
    a = tiny_lm.generate(ids, max_new_tokens=5, samples=3, do_sample=True, seed=1).sequences
    b = tiny_lm.generate(ids, max_new_tokens=5, samples=3, do_sample=True, seed=1).sequences
    assert a == b and len(a) == 3


def test_score_options_prefers_likelier_option(tiny_lm) -> None:
    scores = tiny_lm.score_options("Is the sky blue?", ["yes", "no"])
    lps = tiny_lm.continuation_logprobs(
        [tiny_lm.prompt_ids("Is the sky blue?", chat=True)[0]] * 2, [tiny_lm.encode(o, special=False) for o in ("yes", "no")]
    )
    np.testing.assert_allclose(scores, [lp.sum() for lp in lps], atol=1e-5)


def test_unknown_model_path_is_one_line_error(tmp_path) -> None:
    with pytest.raises(ExplainError, match="unknown model path") as err:
        LanguageModel.load(str(tmp_path / "nope" / "model"))
    assert "\n" not in str(err.value)
    with pytest.raises(ExplainError, match="cannot load model 'no-such-org/no-such-model'"):
        LanguageModel.load("no-such-org/no-such-model")
    with pytest.raises(ExplainError, match="cannot load model"):
        LanguageModel.load(str(tmp_path))  # exists but holds no model


def test_load_local_folder_roundtrip(tmp_path, tiny_lm) -> None:
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    lm = LanguageModel.load(str(tmp_path))
    ids, cont = tiny_lm.encode("The capital"), tiny_lm.encode(" of", special=False)
    np.testing.assert_allclose(
        lm.continuation_logprobs([ids], [cont])[0], tiny_lm.continuation_logprobs([ids], [cont])[0], atol=1e-6
    )


def test_length_checks(tiny_lm) -> None:
    with pytest.raises(ExplainError, match="prompt is empty"):
        tiny_lm.check_length(0)
    with pytest.raises(ExplainError, match="context of 256 tokens"):
        tiny_lm.check_length(250, 10)


@pytest.mark.slow
def test_embedded_model_loads_and_answers(embedded_lm) -> None:
    assert embedded_lm.name == "SmolLM2-135M-Instruct"
    gen = embedded_lm.generate(embedded_lm.encode("The capital of France is"), max_new_tokens=3)
    assert "Paris" in embedded_lm.tokenizer.decode(gen.sequences[0])
    assert embedded_lm.tokens(embedded_lm.encode(" Paris", special=False)) == [" Paris"]
