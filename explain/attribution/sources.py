"""Sources: the units a prompt is attributed to (words, sentences, paragraphs, spans, segments).

:func:`split_sources` cuts a prompt's text into :class:`Piece` s that tile it exactly; the pieces
marked as features are the sources. ``"".join(p.text for p in pieces)`` is always the text, so
removing a source leaves the rest of the prompt as the user wrote it (ContextCite's ablation).

Whitespace before a word or a sentence belongs to it (" The" is one token in byte-level BPE
vocabularies), so a source's tokens are the ones a tokenizer gives the text in context.

Examples:
    >>> [p.text for p in split_sources("Dr. Smith paid $3.14, e.g. for tea. Then he left!", "sentences")]
    ['Dr. Smith paid $3.14, e.g. for tea.', ' Then he left!']
    >>> [p.text for p in split_sources("a b\\n\\nc", "paragraphs")]
    ['a b', '\\n\\nc']
    >>> [(p.text, p.feature) for p in split_sources("hello world", [(6, 11)])]
    [('hello ', False), ('world', True)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from explain.errors import ExplainError

SOURCE_KINDS = ("tokens", "words", "sentences", "paragraphs")
SEGMENT_SEPARATOR = "\n"

# Words after which a period does not end a sentence (compared lower-case, without the period).
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx fig figs eq no nos vol pp
    inc ltd co corp dept univ jan feb mar apr jun jul aug sep sept oct nov dec gen col lt sgt capt
    rev est ca resp incl""".split()
)

# Candidate sentence ends: terminal punctuation, optional closing quotes/brackets, then whitespace.
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Piece:
    """A stretch of the prompt's text: a source (``feature=True``) or fixed text around sources.

    Attributes:
        text: the characters, leading whitespace included.
        start: offset of ``text`` in the prompt.
        feature: whether this piece is a source (attributed, and removed when ablated).
        name: readable name (the stripped text, or a segment's key).
    """

    text: str
    start: int
    feature: bool = True
    name: str = ""

    @property
    def end(self) -> int:
        """Offset just past the piece."""
        return self.start + len(self.text)


def _tile(text: str, cuts: Sequence[int]) -> list[Piece]:
    """Pieces between consecutive cut offsets; a piece of pure whitespace joins its neighbour."""
    bounds = sorted({0, len(text), *[c for c in cuts if 0 < c < len(text)]})
    pieces: list[Piece] = []
    carry = 0
    for a, b in zip(bounds, bounds[1:]):
        if not text[a:b].strip():
            continue  # whitespace only: it goes with the next piece (or the last one)
        pieces.append(Piece(text[carry:b], carry, True, text[carry:b].strip()))
        carry = b
    if not pieces:
        return []
    if carry < len(text):  # trailing whitespace belongs to the last piece
        last = pieces[-1]
        pieces[-1] = Piece(text[last.start:], last.start, True, last.name)
    return pieces


def _sentence_cuts(text: str) -> list[int]:
    cuts = []
    for match in _END.finditer(text):
        end = match.end()
        rest = text[end:]
        nxt = rest.lstrip()
        if not nxt:
            continue
        ws = rest[: len(rest) - len(nxt)]
        punct = match.group()
        if punct.startswith(".") and "\n" not in ws:
            word = re.search(r"(\S+)\.[\"'”’)\]]*$", text[: match.start() + len(punct.rstrip("\"'”’)]"))])
            before = word.group(1).lower() if word else ""
            bare = before.rstrip(".").lstrip("(\"'“‘")
            if bare in ABBREVIATIONS or re.fullmatch(r"[a-z]", bare) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", bare):
                continue  # "Dr. Smith", "e.g. tea", "J. Smith", "U.S.A. and"
            if not (nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "\"'“‘([-*•"):
                continue  # a period followed by a lower-case word is rarely a sentence end
        cuts.append(end)
    # A line break also ends a sentence (headings, list items).
    cuts += [m.start() for m in re.finditer(r"\n\s*", text)]
    return cuts


def split_sources(
    text: str, sources: str | Sequence[tuple[int, int]] | Mapping[str, str] = "sentences"
) -> list[Piece]:
    """Cut ``text`` into pieces; the features among them are the sources.

    Args:
        text: the prompt (for a dict of segments, ignored: the segments are joined by ``"\\n"``).
        sources: ``"words"``, ``"sentences"``, ``"paragraphs"``, a list of ``(start, end)``
            character spans (the text between spans stays fixed), or a dict of named segments.

    Returns:
        pieces whose texts concatenate to the prompt, at least one of them a feature.

    Raises:
        ExplainError: an unknown kind, bad spans, or no source found.

    Examples:
        >>> [p.name for p in split_sources("x", {"context": "Sky is blue.", "q": "Colour?"}) if p.feature]
        ['context', 'q']
        >>> [p.text for p in split_sources("It rose 3.5% in the U.S. Prices fell.", "sentences")]
        ['It rose 3.5% in the U.S. Prices fell.']
        >>> [p.text for p in split_sources("one  two", "words")]
        ['one', '  two']
    """
    if isinstance(sources, Mapping):
        pieces: list[Piece] = []
        at = 0
        for k, (name, seg) in enumerate(sources.items()):
            if k:
                pieces.append(Piece(SEGMENT_SEPARATOR, at, False, ""))
                at += len(SEGMENT_SEPARATOR)
            pieces.append(Piece(str(seg), at, True, str(name)))
            at += len(str(seg))
        return pieces
    if isinstance(sources, str):
        if sources == "words":
            pieces = _tile(text, [m.start() for m in re.finditer(r"(?<=\S)\s+", text)])
        elif sources == "sentences":
            pieces = _tile(text, _sentence_cuts(text))
        elif sources == "paragraphs":
            pieces = _tile(text, [m.start() for m in _PARAGRAPH.finditer(text)])
        else:
            raise ExplainError(
                f"unknown sources '{sources}': choose one of {', '.join(SOURCE_KINDS)}, "
                "a list of (start, end) character spans, or a dict of named segments"
            )
    else:
        pieces = _spans(text, sources)
    if not any(p.feature for p in pieces):
        raise ExplainError("the prompt has no source to attribute to")
    return pieces


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``: the one sentence splitter of whylm.

    ``attribute(sources="sentences")``, the sentences of a :class:`~explain.signals.SignalReport`
    and its context sentences all come from here. Each span starts at the whitespace before its
    sentence (as :func:`split_sources` cuts), so the spans tile the text.

    Returns:
        half-open ``(start, end)`` character offsets, in order; ``[]`` for blank text.

    Examples:
        >>> text = "Dr. Smith went home. He slept."
        >>> [text[a:b] for a, b in sentence_spans(text)]
        ['Dr. Smith went home.', ' He slept.']
    """
    if not text.strip():
        return []
    return [(p.start, p.end) for p in _tile(text, _sentence_cuts(text))]


def token_sentence_spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Half-open token spans of the sentences of a tokenised text, cut by :func:`sentence_spans`.

    The tokens' strings are joined into the text; a sentence boundary that falls inside a token
    moves to the end of that token, so every token belongs to exactly one sentence.

    Returns:
        list of (start, end) token indices covering all tokens in order.

    Examples:
        >>> token_sentence_spans(["Paris", ".", " It", " is", " big", "."])
        [(0, 2), (2, 6)]
        >>> token_sentence_spans(["Dr", ".", " Smith", " left", "."])
        [(0, 5)]
    """
    offsets = [0]
    for tok in tokens:
        offsets.append(offsets[-1] + len(tok))
    cuts = []
    for start, _ in sentence_spans("".join(tokens))[1:]:
        k = next(i for i, o in enumerate(offsets) if o >= start)
        if 0 < k < len(tokens) and (not cuts or k > cuts[-1]):
            cuts.append(k)
    bounds = [0, *cuts, len(tokens)] if tokens else []
    return list(zip(bounds, bounds[1:]))


def content_positions(tokens: Sequence[str], start: int = 0, end: int | None = None) -> list[int]:
    """The positions in ``tokens[start:end]`` whose token holds a letter or a digit (every position
    of the span when none does).

    Scores of an answer sentence are rolled up over these: a closing "." or newline marks where the
    answer stops, not what it claims, and a small model often finds it unlikely after a short copied
    answer (" Paris." read 'uncertain' for its period alone, " Paris" 'supported').

    Returns:
        the positions, in order.

    Examples:
        >>> content_positions([" Paris", "."])
        [0]
        >>> content_positions([" It", " is", "!", "\\n"], 2, 4)
        [2, 3]
    """
    span = range(start, len(tokens) if end is None else end)
    words = [i for i in span if any(ch.isalnum() for ch in tokens[i])]
    return words or list(span)


def _spans(text: str, spans: Any) -> list[Piece]:
    try:
        pairs = [(int(a), int(b)) for a, b in spans]
        exact = all(float(a) == int(a) and float(b) == int(b) for a, b in spans)
    except (TypeError, ValueError):
        raise ExplainError("sources must be a kind name, a list of (start, end) spans, or a dict") from None
    if not pairs or not exact:
        raise ExplainError("sources: give at least one (start, end) span of integer character offsets")
    pieces: list[Piece] = []
    at = 0
    for a, b in sorted(pairs):
        if not 0 <= a < b <= len(text):
            raise ExplainError(f"source span ({a}, {b}) is not inside the prompt's {len(text)} characters")
        if a < at:
            raise ExplainError(f"source span ({a}, {b}) overlaps the span before it")
        if a > at:
            pieces.append(Piece(text[at:a], at, False, ""))
        pieces.append(Piece(text[a:b], a, True, text[a:b].strip() or text[a:b]))
        at = b
    if at < len(text):
        pieces.append(Piece(text[at:], at, False, ""))
    return pieces


def check_sources(sources: Any) -> Any:
    """Validate the ``sources=`` argument's type early. Returns: ``sources`` unchanged.

    Examples:
        >>> check_sources("sentences")
        'sentences'
    """
    if isinstance(sources, str):
        if sources not in SOURCE_KINDS and sources != "segments":
            split_sources("x", sources)  # raises the one-line error
        return sources
    if isinstance(sources, Mapping) or isinstance(sources, (list, tuple)):
        return sources
    raise ExplainError(
        f"sources must be one of {', '.join(SOURCE_KINDS)}, a list of (start, end) spans, or a dict, "
        f"not {type(sources).__name__}"
    )
