"""Turn a user's prompt and target into token ids and attribution features.

A feature is a group of prompt positions that is perturbed together: one token (plain prompts), a
user-content token (``chat=True``; the template stays fixed), or a whole named segment
(``prompt={"context": ..., "question": ...}``).

Example:
    >>> inp = build_input(lm, "The capital of France is", " Paris")   # doctest: +SKIP
    >>> inp.feature_names                                             # doctest: +SKIP
    ['The', ' capital', ' of', ' France', ' is']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from explain.errors import ExplainError
from explain.model import LanguageModel

SEGMENT_SEPARATOR = "\n"


@dataclass
class AttributionInput:
    """Token ids of one prompt/target pair and the features to attribute to.

    Attributes:
        prompt_ids: all prompt token ids (template and special tokens included).
        target_ids: the target's token ids (m >= 1).
        features: per feature, the prompt positions it covers (sorted, non-empty).
        feature_names: readable name per feature.
        target_tokens: readable target tokens.
        prompt: the prompt as given; target: the target text.
        generated: whether the target was generated here (``target=None``).
    """

    prompt_ids: list[int]
    target_ids: list[int]
    features: list[list[int]]
    feature_names: list[str]
    target_tokens: list[str]
    prompt: Any
    target: str
    generated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of features."""
        return len(self.features)

    @property
    def m(self) -> int:
        """Number of target tokens."""
        return len(self.target_ids)

    @property
    def sequence(self) -> list[int]:
        """Model input for teacher forcing: prompt then every target token but the last."""
        return self.prompt_ids + self.target_ids[:-1]


def _prompt_text(prompt: str | Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
    if isinstance(prompt, Mapping):
        segments = [(str(k), str(v)) for k, v in prompt.items()]
        if not segments:
            raise ExplainError("prompt has no segments")
        empty = [k for k, v in segments if not v.strip()]
        if empty:
            raise ExplainError(f"prompt segment '{empty[0]}' is empty")
        return SEGMENT_SEPARATOR.join(v for _, v in segments), segments
    if not isinstance(prompt, str):
        raise ExplainError(f"prompt must be a string or a dict of named segments, not {type(prompt).__name__}")
    if not prompt.strip():
        raise ExplainError("prompt is empty")
    return prompt, []


def build_input(
    lm: LanguageModel,
    prompt: str | Mapping[str, str],
    target: str | None,
    chat: bool = False,
    max_new_tokens: int = 32,
) -> AttributionInput:
    """Tokenise ``prompt`` (and ``target``, or generate it greedily) into an :class:`AttributionInput`.

    Returns:
        the input, with features over the prompt tokens (user content only with ``chat=True``,
        one feature per segment when ``prompt`` is a dict).

    Raises:
        ExplainError: empty prompt or target, too long for the model, no chat template.
    """
    text, segments = _prompt_text(prompt)
    ids, (content_offset, end) = lm.prompt_ids(text, chat=chat)
    lm.check_length(len(ids), 0 if target is None else 1)

    if segments:
        # Tokenise each segment alone so a segment boundary is a token boundary.
        sep = lm.encode(SEGMENT_SEPARATOR, special=False)
        body: list[int] = []
        features: list[list[int]] = []
        for k, (_, seg) in enumerate(segments):
            if k:
                body += sep
            seg_ids = lm.encode(seg, special=False)
            features.append(list(range(content_offset + len(body), content_offset + len(body) + len(seg_ids))))
            body += seg_ids
        ids = ids[:content_offset] + body + ids[end:]
        names = [k for k, _ in segments]
    else:
        features = [[p] for p in range(content_offset, end)]
        names = lm.tokens([ids[p] for p in range(content_offset, end)])

    generated = target is None
    if generated:
        gen = lm.generate(ids, max_new_tokens=max_new_tokens)
        target_ids = gen.sequences[0]
        if not target_ids:
            raise ExplainError("the model generated nothing (end of sequence at once); pass a target")
        target = lm.tokenizer.decode(target_ids)
    else:
        if not isinstance(target, str) or not target:
            raise ExplainError("target is empty")
        target_ids = lm.encode(target, special=False)
        if not target_ids:
            raise ExplainError("target tokenises to nothing")
    lm.check_length(len(ids), len(target_ids))
    return AttributionInput(
        prompt_ids=ids,
        target_ids=target_ids,
        features=features,
        feature_names=names,
        target_tokens=lm.tokens(target_ids),
        prompt=dict(prompt) if isinstance(prompt, Mapping) else prompt,
        target=target,
        generated=generated,
    )
