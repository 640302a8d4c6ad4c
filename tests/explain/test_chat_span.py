"""LanguageModel.prompt_ids: the one place a chat template is applied, and the user's token span.

The span is checked against hand-written renderings of each template (not the code under test),
and the ids against ``tokenizer.apply_chat_template(..., tokenize=True)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import CHAT_TEMPLATE, make_tiny_lm

from explain import ExplainError, attribute

# Templates with the traps of real ones: a default system prompt full of "a"s (SmolLM2), a BOS and
# role headers (Llama 3), a renamed assistant role and no system role (Gemma).
TEMPLATES = {
    "chatml": CHAT_TEMPLATE,
    "default_system": (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
        "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "headers": (
        "<|endoftext|>{% for m in messages %}<|im_start|>{{ m['role'] }}: {{ m['content'] }}<|im_end|>"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant: {% endif %}"
    ),
    "model_role": (
        "{% for m in messages %}<|im_start|>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>model\n{% endif %}"
    ),
}


def by_hand(name: str, messages: list[dict]) -> tuple[str, str]:
    """(text before the last user content, text after it), written out for each template."""
    def turn(role: str, content: str) -> str:
        if name == "headers":
            return f"<|im_start|>{role}: {content}<|im_end|>"
        if name == "model_role" and role == "assistant":
            role = "model"
        return f"<|im_start|>{role}\n{content}<|im_end|>\n"

    head = "<|endoftext|>" if name == "headers" else ""
    if name == "default_system" and messages[0]["role"] != "system":
        head += "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    before = head + "".join(turn(m["role"], m["content"]) for m in messages[:last])
    before += turn("user", "\0").split("\0")[0]
    after = turn("user", "\0").split("\0")[1] + "".join(turn(m["role"], m["content"]) for m in messages[last + 1:])
    after += {"headers": "<|im_start|>assistant: ", "model_role": "<|im_start|>model\n"}.get(
        name, "<|im_start|>assistant\n")
    return before, after


def conversations(text: str) -> list[tuple[list[dict], str | None]]:
    return [
        ([{"role": "user", "content": text}], None),
        ([{"role": "user", "content": text}], "a system prompt, as an assistant"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": text},
          {"role": "user", "content": text}], None),
    ]


@pytest.fixture(scope="module")
def lm():
    return make_tiny_lm("llama")


@pytest.mark.parametrize("template", list(TEMPLATES))
@pytest.mark.parametrize("text", ["a", "ant", "assistant", "Is the sky blue?"])
def test_span_is_the_users_text_on_every_template(lm, template: str, text: str) -> None:
    lm.tokenizer.chat_template = TEMPLATES[template]
    try:
        for messages, system in conversations(text):
            full = ([{"role": "system", "content": system}] if system else []) + messages
            ids, (start, end) = lm.prompt_ids(messages, chat=True, system=system)
            reference = lm.tokenizer.apply_chat_template(full, add_generation_prompt=True, tokenize=True)
            assert ids == list(reference["input_ids"])
            before, after = by_hand(template, full)
            head = lm.tokenizer.decode(ids[:start])
            # a token that straddles the content's first character ("user: a" -> " a") is in the span
            assert before.startswith(head)
            straddle = before[len(head):]
            assert straddle == "" or (template == "headers" and straddle == " ")
            assert lm.tokenizer.decode(ids[start:end]) == straddle + text
            assert lm.tokenizer.decode(ids[end:]) == after
    finally:
        lm.tokenizer.chat_template = CHAT_TEMPLATE


def test_attribute_with_chat_attributes_the_users_a_on_the_real_ids(lm) -> None:
    res = attribute(lm, "a", target=" b", chat=True, method="ablation", baseline=0, progress=False)
    assert res.input_tokens == ["a"]
    ids = list(lm.tokenizer.apply_chat_template([{"role": "user", "content": "a"}], add_generation_prompt=True,
                                                tokenize=True)["input_ids"])
    target = lm.encode(" b", special=False)
    (lp,) = lm.continuation_logprobs([ids], [target])
    np.testing.assert_allclose(res.target_logprobs, lp, atol=1e-5)
    # the user's "a" sits right after the hand-written header; dropping it (id -> 0) is what is measured
    user_a = len(lm.encode("<|im_start|>user\n", special=False))
    assert ids[user_a] == lm.encode("a", special=False)[0]
    dropped = list(ids)
    dropped[user_a] = 0
    (lp_drop,) = lm.continuation_logprobs([dropped], [target])
    np.testing.assert_allclose(res.token_attr[:, 0], lp - lp_drop, atol=1e-4)


def test_plain_prompt_span_covers_the_text(lm) -> None:
    ids, (start, end) = lm.prompt_ids("The capital of France is", chat=False)
    assert ids == lm.encode("The capital of France is")
    assert lm.tokenizer.decode(ids[start:end]) == "The capital of France is"


def test_prompt_ids_errors_are_one_line(lm) -> None:
    with pytest.raises(ExplainError, match="no user turn"):
        lm.prompt_ids([{"role": "assistant", "content": "hi"}], chat=True)
    with pytest.raises(ExplainError, match="list of messages"):
        lm.prompt_ids(5, chat=True)
    with pytest.raises(ExplainError, match="needs chat=True"):
        lm.prompt_ids([{"role": "user", "content": "hi"}], chat=False)
    lm.tokenizer.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    try:
        with pytest.raises(ExplainError, match="rewrites the user's text"):
            lm.prompt_ids("hi", chat=True)
    finally:
        lm.tokenizer.chat_template = CHAT_TEMPLATE


def test_seeded_generate_leaves_the_global_random_state_alone(lm) -> None:
    ids = lm.encode("The quick brown")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = lm.generate(ids, max_new_tokens=5, samples=2, do_sample=True, seed=1).sequences
    assert torch.equal(torch.rand(3), expected)
    b = lm.generate(ids, max_new_tokens=5, samples=2, do_sample=True, seed=1).sequences
    assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("text", ["a", "ant", "assistant"])
def test_embedded_model_chat_span(embedded_lm, text: str) -> None:
    for messages, system in conversations(text):
        full = ([{"role": "system", "content": system}] if system else []) + messages
        ids, (start, end) = embedded_lm.prompt_ids(messages, chat=True, system=system)
        rendered = embedded_lm.tokenizer.apply_chat_template(full, add_generation_prompt=True, tokenize=False)
        reference = embedded_lm.tokenizer.apply_chat_template(full, add_generation_prompt=True, tokenize=True)
        assert ids == list(reference["input_ids"])
        # SmolLM2's template: ... "<|im_start|>user\n" CONTENT "<|im_end|>\n<|im_start|>assistant\n"
        tail = "<|im_end|>\n<|im_start|>assistant\n"
        assert rendered.endswith("<|im_start|>user\n" + text + tail)
        assert embedded_lm.tokenizer.decode(ids[start:end]) == text
        assert embedded_lm.tokenizer.decode(ids[end:]) == tail
    res = attribute(embedded_lm, text, target=" b", chat=True, progress=False)
    assert "".join(res.input_tokens) == text
