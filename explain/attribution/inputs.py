"""Turn a user's prompt and target into token ids and attribution features.

A feature is a group of prompt positions that is perturbed together: one token (plain prompts), a
user-content token (``chat=True``; the template stays fixed), or a source: a word, sentence,
paragraph, character span or named segment (``sources=``, see :mod:`explain.attribution.sources`;
``prompt={"context": ..., "question": ...}`` makes each segment a source). Sources are ablated by
*removing* their tokens (``AttributionInput.removal``), tokens by replacing them with a baseline id.

Examples:
    >>> inp = build_input(lm, "The capital of France is", " Paris")   # doctest: +SKIP
    >>> inp.feature_names                                             # doctest: +SKIP
    ['The', ' capital', ' of', ' France', ' is']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from explain.attribution.sources import SEGMENT_SEPARATOR, Piece, check_sources, split_sources
from explain.errors import ExplainError
from explain.model import LanguageModel, with_context

# The name of the feature that stands for the whole question when a context is given.
QUESTION = "question"


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
        removal: ablating a feature removes its tokens (sources) instead of replacing them.
        sources: what a feature is: ``"tokens"``, ``"words"``, ``"sentences"``, ``"paragraphs"``,
            ``"spans"`` or ``"segments"``.
        spans: per feature, its (start, end) character offsets in the prompt text (sources only;
            in the context when ``context`` is given).
        context: the context given apart from the question (``attribute(context=...)``); only
            it is split into sources, and the question is the last feature (``question``).
        question: index of the feature that is the whole question, or ``None``.
    """

    prompt_ids: list[int]
    target_ids: list[int]
    features: list[list[int]]
    feature_names: list[str]
    target_tokens: list[str]
    prompt: Any
    target: str
    generated: bool = False
    removal: bool = False
    sources: str = "tokens"
    spans: list[tuple[int, int]] = field(default_factory=list)
    context: str | None = None
    question: int | None = None

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


@dataclass
class PromptFeatures:
    """A tokenised prompt and its features, before a target is known (what a cost estimate needs).

    Attributes: as in :class:`AttributionInput` (``ids`` is ``prompt_ids``).
    """

    ids: list[int]
    features: list[list[int]]
    names: list[str]
    removal: bool
    sources: str
    spans: list[tuple[int, int]]
    question: int | None = None


def _source_kind(prompt: Any, sources: Any) -> str:
    if isinstance(prompt, Mapping):
        return "segments"
    if isinstance(sources, str):
        return sources
    return "spans"


def split_context_prompt(prompt: Any, context: Any, sources: Any) -> tuple[Any, Any]:
    """Read ``{"context": ..., "question": ...}`` with non-segment sources as a context and a
    question; check a given ``context``. Returns: ``(prompt, context)``.

    Examples:
        >>> split_context_prompt({"context": "Sky is blue.", "question": "Colour?"}, None, "sentences")
        ('Colour?', 'Sky is blue.')
    """
    if (context is None and isinstance(prompt, Mapping) and set(prompt) == {"context", "question"}
            and sources not in (None, "tokens", "segments")):
        return prompt["question"], prompt["context"]
    if context is None:
        return prompt, None
    if not isinstance(context, str):
        raise ExplainError(f"context must be a string, not {type(context).__name__}")
    if not context.strip():
        raise ExplainError("context is empty")
    if not isinstance(prompt, str):
        raise ExplainError("with context=, the prompt is the question: give it as a string")
    if not prompt.strip():
        raise ExplainError("prompt (the question) is empty")
    if isinstance(sources, Mapping):
        raise ExplainError("with context=, sources= is a kind name or (start, end) spans in the context")
    return prompt, context


def _add_pieces(lm: LanguageModel, pieces: Sequence[Piece], content_offset: int, body: list[int],
                features: list[list[int]], names: list[str], spans: list[tuple[int, int]],
                no_span: Piece | None = None) -> None:
    """Tokenise each piece alone (so a source boundary is a token boundary) onto ``body``; for each
    feature piece with tokens, append its positions (after ``content_offset``), its name and, unless
    it is ``no_span``, its character span. Returns: None (the lists grow in place)."""
    for piece in pieces:
        piece_ids = lm.encode(piece.text, special=False)
        if piece.feature and piece_ids:
            at = content_offset + len(body)
            features.append(list(range(at, at + len(piece_ids))))
            names.append(piece.name)
            if piece is not no_span:
                spans.append((piece.start, piece.end))
        body += piece_ids


def _context_features(lm: LanguageModel, prompt: str, context: str, chat: bool, sources: Any) -> PromptFeatures:
    """Features over ``with_context(prompt, context)``: the context's sources (or tokens), then the
    whole question as one last feature. Each piece is tokenised alone (a boundary is a token boundary)."""
    mark = "\x00"
    c_at = with_context(prompt, mark).index(mark)
    q_at = with_context(mark, context).index(mark)
    text = with_context(prompt, context)
    ids, (content_offset, end) = lm.prompt_ids(prompt, chat=chat, context=context)
    lm.check_length(len(ids), 0)
    kind = sources if isinstance(sources, str) else "spans"
    if kind == "tokens":
        ctx_pieces = [Piece(t, 0, True, t) for t in lm.tokens(lm.encode(context, special=False))]
    else:
        ctx_pieces = split_sources(context, sources)
    pieces = [Piece(text[:c_at], 0, False, "")] if c_at else []
    pieces += ctx_pieces
    pieces.append(Piece(text[c_at + len(context):q_at], c_at + len(context), False, ""))
    question = Piece(prompt, q_at, True, QUESTION)
    pieces.append(question)
    if q_at + len(prompt) < len(text):
        pieces.append(Piece(text[q_at + len(prompt):], q_at + len(prompt), False, ""))
    body: list[int] = []
    features: list[list[int]] = []
    names: list[str] = []
    spans: list[tuple[int, int]] = []
    if kind == "tokens":  # the context's own tokens, each a feature; replaced, not removed
        ctx_ids = lm.encode(context, special=False)
        pre = lm.encode(text[:c_at], special=False) if c_at else []
        at = content_offset + len(pre)
        features = [[at + k] for k in range(len(ctx_ids))]
        names = lm.tokens(ctx_ids)
        body = pre + ctx_ids
        pieces = pieces[len(ctx_pieces) + (1 if c_at else 0):]
    _add_pieces(lm, pieces, content_offset, body, features, names, spans, no_span=question)
    if len(features) < 2:
        raise ExplainError("the context has no source to attribute to")
    ids = ids[:content_offset] + body + ids[end:]
    lm.check_length(len(ids), 0)
    return PromptFeatures(ids, features, names, kind != "tokens", kind, spans, question=len(features) - 1)


def prompt_features(
    lm: LanguageModel,
    prompt: str | Mapping[str, str],
    chat: bool = False,
    sources: str | Sequence[tuple[int, int]] | Mapping[str, str] = "tokens",
    context: str | None = None,
) -> PromptFeatures:
    """Tokenise ``prompt`` and group its positions into features (tokens, or sources).

    Returns:
        a :class:`PromptFeatures`; with sources other than ``"tokens"`` each source is tokenised
        on its own (a source boundary is a token boundary) and ablated by removal. With
        ``context`` the model reads ``with_context(prompt, context)``; only the context is split
        (spans are offsets in the context) and the whole question is one last feature.

    Raises:
        ExplainError: empty prompt, bad ``sources``, too long for the model, no chat template.

    Examples:
        >>> pf = prompt_features(lm, "Sky is blue. Grass is green.", sources="sentences")  # doctest: +SKIP
        >>> pf.names, pf.removal                                                           # doctest: +SKIP
        (['Sky is blue.', 'Grass is green.'], True)
    """
    if sources is None:
        sources = "tokens"
    check_sources(sources)
    prompt, context = split_context_prompt(prompt, context, sources)
    if context is not None:
        return _context_features(lm, prompt, context, chat, sources)
    if isinstance(sources, Mapping):
        raise ExplainError("give named segments as the prompt (prompt={'name': text, ...}), not as sources=")
    if isinstance(prompt, Mapping) and sources not in ("tokens", "segments"):
        raise ExplainError("a dict prompt's segments are its sources: leave sources= unset")
    text, segments = _prompt_text(prompt)
    kind = _source_kind(prompt, sources)
    ids, (content_offset, end) = lm.prompt_ids(text, chat=chat)
    lm.check_length(len(ids), 0)

    if kind == "tokens":
        features = [[p] for p in range(content_offset, end)]
        names = lm.tokens([ids[p] for p in range(content_offset, end)])
        return PromptFeatures(ids, features, names, False, kind, [])
    pieces: list[Piece] = split_sources(text, dict(segments) if segments else sources)
    body: list[int] = []
    features: list[list[int]] = []
    names: list[str] = []
    spans: list[tuple[int, int]] = []
    _add_pieces(lm, pieces, content_offset, body, features, names, spans)
    if not features:
        raise ExplainError("the prompt has no source to attribute to")
    ids = ids[:content_offset] + body + ids[end:]
    lm.check_length(len(ids), 0)
    return PromptFeatures(ids, features, names, True, kind, spans)


def target_ids_of(lm: LanguageModel, target: Any) -> list[int]:
    """Token ids of a target text. Returns: the ids. Raises: ExplainError for a non-string or empty target.

    Examples:
        >>> target_ids_of(lm, 5)   # doctest: +SKIP
        Traceback (most recent call last):
        explain.errors.ExplainError: target must be a string, not int
    """
    if not isinstance(target, str):
        raise ExplainError(f"target must be a string, not {type(target).__name__}")
    if not target:
        raise ExplainError("target is empty")
    ids = lm.encode(target, special=False)
    if not ids:
        raise ExplainError("target tokenises to nothing")
    return ids


def build_input(
    lm: LanguageModel,
    prompt: str | Mapping[str, str],
    target: str | None,
    chat: bool = False,
    max_new_tokens: int = 32,
    sources: str | Sequence[tuple[int, int]] | Mapping[str, str] = "tokens",
    context: str | None = None,
) -> AttributionInput:
    """Tokenise ``prompt`` (and ``target``, or generate it greedily) into an :class:`AttributionInput`.

    Returns:
        the input, with features over the prompt tokens (user content only with ``chat=True``),
        or one feature per source (``sources=``; a dict ``prompt`` makes its segments the sources).

    Raises:
        ExplainError: empty prompt or target, too long for the model, no chat template, bad sources.

    Examples:
        >>> inp = build_input(lm, "Sky is blue. Grass is green.", " blue", sources="sentences")  # doctest: +SKIP
        >>> inp.n, inp.removal                                                                  # doctest: +SKIP
        (2, True)
    """
    if target is not None:
        target_ids_of(lm, target)  # a bad target fails before any work
    prompt, context = split_context_prompt(prompt, context, sources)
    pf = prompt_features(lm, prompt, chat=chat, sources=sources, context=context)
    ids, features, names = pf.ids, pf.features, pf.names

    generated = target is None
    if generated:
        gen = lm.generate(ids, max_new_tokens=max_new_tokens)
        target_ids = gen.sequences[0]
        if not target_ids:
            raise ExplainError("the model generated nothing (end of sequence at once); pass a target")
        target = lm.tokenizer.decode(target_ids)
    else:
        target_ids = target_ids_of(lm, target)
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
        removal=pf.removal,
        sources=pf.sources,
        spans=pf.spans,
        context=context,
        question=pf.question,
    )


# Tried in order for the default baseline: the first that is one ordinary (non-special) token.
BASELINE_CANDIDATES = (" ", ".", " the", "the")


def default_baseline(lm: LanguageModel) -> tuple[int, str]:
    """The replacement token for perturbation and gradient methods when ``baseline`` is not given.

    Captum's convention is id 0, but on GPT-2, SmolLM2, Llama and Qwen tokenizers id 0 is a special
    token (``<|endoftext|>``, ``<unk>``, ``!``...); ``<|endoftext|>`` acts as a document boundary,
    so overwriting a token with it erases the context before it. The default is instead the first
    of :data:`BASELINE_CANDIDATES` that encodes to one token that is not special (not eos, bos or
    pad): a blank, which carries no content and starts nothing.

    Returns:
        (token id, the rule that chose it, in words).

    Examples:
        >>> default_baseline(lm)   # doctest: +SKIP
        (216, "' ' (a blank token): id 0 is the special token '<|endoftext|>'")
    """
    special = set(getattr(lm.tokenizer, "all_special_ids", []) or []) | lm.eos_ids
    for text in BASELINE_CANDIDATES:
        ids = lm.encode(text, special=False)
        if len(ids) == 1 and ids[0] not in special:
            zero = lm.tokenizer.convert_ids_to_tokens(0)
            why = "a special token" if 0 in special else "an arbitrary token"
            return ids[0], f"{text!r}, a content-free token (id 0 is {why}, {zero!r})"
    return 0, "id 0 (captum's default): no single-token blank in this vocabulary"
