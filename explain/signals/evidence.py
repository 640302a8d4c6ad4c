"""Evidence for every answer sentence: which context sentences does it rest on, and does it contradict them?

The context is split into sentences by the one splitter of whylm
(:func:`explain.attribution.sources.sentence_spans`, as ``attribute(sources="sentences")`` splits
it). Removing context sentence ``k`` and teacher-forcing the same answer again gives, per answer
token, ``log p(token | full context) - log p(token | context without k)``: exact leave-one-out, for
every context sentence at once in one batched pass (:func:`leave_one_out`). Summed over the tokens
of an answer sentence that hold words or numbers (not a closing ".") it is that sentence's support
from ``k`` (nats); the sentences with support of at least :data:`EVIDENCE_NATS` are its
:class:`Evidence`, best first.

Five evidence scores per answer sentence (higher = more suspicious) join the signal scores:

- ``unsupported``: ``exp(-max(0, best support))`` in (0, 1]: 1 when no context sentence makes the
  sentence more likely, near 0 when one clearly does;
- ``contradicted``: nats, >= 0: how much the sentence's best evidence sentence *lowers* its least
  compatible token (a copied sentence with one swapped name or number scores high);
- ``unseen_names``: [0, 1]: share of the sentence's names, numbers and dates (capitalised or digit
  words) that appear nowhere in the context;
- ``unseen_words``: [0, 1]: share of the sentence's content words (stop words left out, words cut
  to their first :data:`STEM` letters) found neither in the context nor in the question;
- ``conflict``: [0, 1]: share of the sentence's names and numbers that its closest context sentence
  (the one sharing most content words) replaces by another name or number (:func:`conflicts`):
  "built in 1847" against "built in 1874".

Besides leave-one-out, the listing looks at the words: a context sentence that holds the answer
sentence's names, numbers and most of its content words is listed as evidence with
``basis="words"`` even when removing it changes little (the model knew the fact already: "Paris."
with its passage), and a context sentence the answer sentence conflicts with is never listed as
its evidence but as a conflict (:func:`sentence_conflicts`).

The answer's scores are the worst sentence's (the maximum), so the answer risk reflects its
riskiest sentence.

Examples:
    >>> deltas = np.array([[2.0, 1.0, 0.0, 0.1], [0.1, -3.0, 0.0, 0.0]])   # (context sentences, answer tokens)
    >>> ev = sentence_evidence(deltas, [(0, 2), (2, 4)], "A b. C d.", [(0, 4), (4, 9)])
    >>> [(e.source, e.text, e.score) for e in ev[0]], ev[1]
    ([(0, 'A b.', 3.0)], [])
    >>> s = evidence_scores(deltas, [(0, 2), (2, 4)], ["A", " b.", " C", " x."], "A b. C d.")
    >>> round(s[0]["unsupported"], 3), s[0]["contradicted"], round(s[1]["unsupported"], 3)
    (0.05, 0.0, 0.905)
    >>> conflicts("The bridge was built in 1847.", ["The town is old.", "Its bridge was built in 1874."])
    (1, ['1847'])
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from explain.attribution.sources import content_positions, sentence_spans
from explain.serialize import jsonable

EVIDENCE_NATS = 0.5
"""A context sentence is evidence for an answer sentence when removing it lowers the answer
sentence's log-probability by at least this many nats."""

MAX_EVIDENCE = 3
"""At most this many evidence sentences are listed per answer sentence."""

SCORE_DOCS = {
    "unsupported": "(0, 1]: exp(-best support), the support (nats) of the answer sentence's best context "
                   "sentence floored at 0; 1 = no context sentence makes it more likely (answer: worst sentence)",
    "contradicted": "[0, inf) nats: how much the best evidence sentence lowers the sentence's least compatible "
                    "token (a swapped name or number; answer: worst sentence)",
    "unseen_names": "[0, 1]: share of the sentence's names, numbers and dates found nowhere in the context "
                    "(answer: worst sentence)",
    "unseen_words": "[0, 1]: share of the sentence's content words found neither in the context nor in the "
                    "question (answer: worst sentence)",
    "conflict": "[0, 1]: share of the sentence's names and numbers that its closest context sentence replaces "
                "by others (answer: worst sentence)",
}
"""Meaning and range of the evidence scores (higher = more likely not supported)."""

LABELS = {
    "unsupported": "no context sentence supports it",
    "contradicted": "contradicts its evidence",
    "unseen_names": "names/numbers not in the context",
    "unseen_words": "words not in the context or question",
    "conflict": "names/numbers differ from the context",
}
"""Plain names of the evidence scores."""


@dataclass
class Evidence:
    """One context sentence that supports an answer sentence.

    Attributes:
        source: index into ``SignalReport.context_sentences``.
        text: the context sentence (stripped).
        start, end: its characters in the context (``context[start:end]``, leading whitespace included).
        score: nats; how much the answer sentence's log-probability drops when this context
            sentence is removed (exact leave-one-out).
        basis: why it is listed: ``"removal"`` (removing it costs at least :data:`EVIDENCE_NATS`),
            ``"words"`` (it holds the sentence's names, numbers and most of its content words,
            though removing it costs less: the model may know the fact already), or ``"conflict"``
            (in ``SentenceSignals.conflicts``: it says the same with other names or numbers).
        differs: for a conflict, the answer sentence's names/numbers this context sentence lacks.
    """

    source: int
    text: str
    start: int
    end: int
    score: float
    basis: str = "removal"
    differs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict.

        Examples:
            >>> Evidence(0, "A.", 0, 2, 1.5).to_dict()
            {'source': 0, 'text': 'A.', 'start': 0, 'end': 2, 'score': 1.5, 'basis': 'removal', 'differs': []}
        """
        return jsonable({"source": self.source, "text": self.text, "start": self.start, "end": self.end,
                         "score": self.score, "basis": self.basis, "differs": list(self.differs)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Evidence":
        """Returns: the evidence written by :meth:`to_dict` (older dicts without ``basis``: ``"removal"``).

        Examples:
            >>> Evidence.from_dict({"source": 1, "text": "A.", "start": 0, "end": 2, "score": 0.7}).basis
            'removal'
        """
        score = d.get("score")
        return cls(int(d["source"]), str(d["text"]), int(d["start"]), int(d["end"]),
                   math.nan if score is None else float(score), str(d.get("basis") or "removal"),
                   [str(x) for x in d.get("differs") or []])


def context_sentences(context: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The context's sentences (stripped) and their character spans, by the one sentence splitter.

    Returns:
        (texts, spans).

    Examples:
        >>> context_sentences("Paris is big. It is old.")
        (['Paris is big.', 'It is old.'], [(0, 13), (13, 24)])
    """
    spans = sentence_spans(context)
    return [context[a:b].strip() for a, b in spans], spans


def removal_contexts(context: str, spans: Sequence[tuple[int, int]]) -> list[str | None]:
    """The context with each sentence removed (None where nothing would be left).

    Examples:
        >>> removal_contexts("A b. C d.", [(0, 4), (4, 9)])
        [' C d.', 'A b.']
    """
    out: list[str | None] = []
    for a, b in spans:
        rest = context[:a] + context[b:]
        out.append(rest if rest.strip() else None)
    return out


def leave_one_out(lm: Any, prompt: str, context: str, spans: Sequence[tuple[int, int]], resp_ids: Sequence[int],
                  full_logprob: np.ndarray, plain_logprob: np.ndarray | None, chat: bool) -> np.ndarray:
    """Per-token leave-one-out of every context sentence, in one batched teacher-forced pass.

    Args:
        lm: the :class:`explain.LanguageModel`.
        prompt, context: the texts as :func:`explain.signals` joins them (``prompt_ids(context=)``).
        spans: character spans of the context sentences.
        resp_ids: the answer's token ids.
        full_logprob: (m,) log p(token | full context), from the main pass.
        plain_logprob: (m,) log p(token | no context), used where removing a sentence leaves no context.
        chat: the chat setting of the main pass.

    Returns:
        float64 array (n sentences, m tokens): ``log p(token | full) - log p(token | sentence removed)``.

    Examples:
        >>> leave_one_out(lm, "Q?", "A b. C d.", [(0, 4), (4, 9)], ids, lp, None, True).shape  # doctest: +SKIP
        (2, 3)
    """
    rests = removal_contexts(context, spans)
    rows = [lm.prompt_ids(prompt, chat=chat, context=r)[0] for r in rests if r is not None]
    scored = iter(lm.continuation_logprobs(rows, [list(resp_ids)] * len(rows)) if rows else [])
    full = np.asarray(full_logprob, dtype=np.float64)
    out = np.zeros((len(spans), len(full)), dtype=np.float64)
    for k, rest in enumerate(rests):
        if rest is None:
            removed = plain_logprob if plain_logprob is not None else lm.continuation_logprobs(
                [lm.prompt_ids(prompt, chat=chat)[0]], [list(resp_ids)])[0]
        else:
            removed = next(scored)
        out[k] = full - np.asarray(removed, dtype=np.float64)
    return out


LONG_CONTEXT_TOKENS = 300
"""Above this many context tokens, only the sentences a cheap screen ranks highest are removed
exactly (``attribute(..., top_k=)``); the others get no evidence score (NaN rows)."""

TOP_K = 8
"""How many context sentences get exact leave-one-out on a long context."""


def screened_leave_one_out(lm: Any, prompt: str, context: str, n_sentences: int, response: str, m: int,
                           chat: bool, notes: list[str]) -> np.ndarray | None:
    """Leave-one-out of the :data:`TOP_K` context sentences a screen ranks highest (long contexts).

    Returns:
        (n sentences, m) like :func:`leave_one_out`, NaN in the rows that were only screened; None
        (with a line in ``notes``) when the attribution's sources or tokens do not line up.

    Examples:
        >>> screened_leave_one_out(lm, "Q?", long_text, 40, "A.", 2, True, []).shape  # doctest: +SKIP
        (40, 2)
    """
    from explain.attribution import attribute

    res = attribute(lm, prompt, context=context, target=response, sources="sentences", top_k=TOP_K,
                    chat=chat, method="ablation", progress=False)
    attr = np.asarray(res.token_attr, dtype=np.float64)
    exact = np.asarray(res.info.get("exact", [True] * attr.shape[1]), dtype=bool)
    if attr.shape != (m, n_sentences):
        notes.append(f"evidence skipped: the screened attribution has shape {attr.shape}, not ({m}, {n_sentences})")
        return None
    out = attr.T.copy()
    out[~exact] = np.nan
    notes.append(f"evidence: long context, exact leave-one-out for the {int(exact.sum())} of {n_sentences} "
                 "context sentences a screen ranked highest")
    return out


def _claim(deltas: np.ndarray, s: int, e: int, tokens: Sequence[str] | None = None) -> np.ndarray:
    """The columns of answer tokens [s, e) that make the sentence's claim: those that hold words or
    numbers when ``tokens`` are given (:func:`content_positions`: a closing "." is not a claim)."""
    return deltas[:, content_positions(tokens, s, e)] if tokens is not None else deltas[:, s:e]


def _support(block: np.ndarray) -> np.ndarray:
    """Each context sentence's support of a :func:`_claim` block; -inf for rows not computed (NaN)."""
    support = block.sum(axis=1)
    return np.where(np.isnan(support), -np.inf, support)


WORDS_SHARE = 0.5
"""A context sentence is listed as evidence by its words (``basis="words"``) when it holds every
name and number of the answer sentence and at least this share of its content words."""


def sentence_evidence(deltas: np.ndarray, token_spans: Sequence[tuple[int, int]], context: str,
                      spans: Sequence[tuple[int, int]], tokens: Sequence[str] | None = None) -> list[list[Evidence]]:
    """The evidence of each answer sentence: context sentences whose removal costs >= :data:`EVIDENCE_NATS`.

    With ``tokens`` (the answer's readable tokens) the words count too: a context sentence the
    answer sentence conflicts with (:func:`conflicts`) is left out, and one that holds the
    sentence's names, numbers and at least :data:`WORDS_SHARE` of its content words is listed
    after the removal evidence with ``basis="words"`` (its ``score`` is still its removal support;
    only sentences whose removal was computed are listed); and the evidence sentences that state
    the answer sentence this way come first.

    Args:
        deltas: (n context sentences, m tokens) from :func:`leave_one_out`.
        token_spans: the answer sentences' token spans.
        context: the context text; spans: its sentences' character spans.
        tokens: the answer's tokens, or None for leave-one-out evidence only.

    Returns:
        per answer sentence, at most :data:`MAX_EVIDENCE` :class:`Evidence`, best first.

    Examples:
        >>> deltas = np.array([[0.1, 0.0], [0.0, 0.2]])   # removing either sentence changes little
        >>> ctx = "Paris is the capital of France. It is on the Seine."
        >>> [(e.source, e.basis) for e in sentence_evidence(deltas, [(0, 2)], ctx, [(0, 31), (31, 51)], ["Paris", "."])[0]]
        [(0, 'words')]
    """
    texts = [context[a:b].strip() for a, b in spans]
    out = []
    for s, e in token_spans:
        support = _support(_claim(deltas, s, e, tokens)) if len(spans) else np.zeros(0)
        order = [int(k) for k in np.argsort(-support, kind="stable") if support[k] >= EVIDENCE_NATS]
        basis = {k: "removal" for k in order}
        if tokens is not None and len(spans):
            sentence = "".join(tokens[s:e])
            clash = conflicts(sentence, texts, support)
            order = [k for k in order if clash is None or k != clash[0]]
            by_words = [k for k in np.argsort(-word_share(sentence, texts), kind="stable")
                        if k not in basis and (clash is None or k != clash[0]) and np.isfinite(support[k])
                        and holds(sentence, texts[k])]
            order += [int(k) for k in by_words]
            basis.update({int(k): "words" for k in by_words})
            # a context sentence that states the answer sentence comes first ("Eight." -> "... has eight legs")
            order.sort(key=lambda k: not holds(sentence, texts[k]))
        out.append([Evidence(k, texts[k], spans[k][0], spans[k][1], float(support[k]), basis[k])
                    for k in order[:MAX_EVIDENCE]])
    return out


def words_note(score: float) -> str:
    """How evidence listed by its words (``basis="words"``) reads: it states the sentence, and what
    removing it does.

    Examples:
        >>> words_note(0.1)
        'states it in the same words; removing it changes the answer little (0.10 nats): the model may know it already'
        >>> words_note(-3.0)
        'states it in the same words, though the model finds the answer less likely with it (-3.00 nats)'
    """
    if score >= -EVIDENCE_NATS:
        return (f"states it in the same words; removing it changes the answer little ({score:.2f} nats): "
                "the model may know it already")
    return f"states it in the same words, though the model finds the answer less likely with it ({score:.2f} nats)"


def sentence_conflicts(deltas: np.ndarray | None, token_spans: Sequence[tuple[int, int]], tokens: Sequence[str],
                       context: str, spans: Sequence[tuple[int, int]]) -> list[list[Evidence]]:
    """Per answer sentence, the context sentence it conflicts with (:func:`conflicts`), if any.

    Returns:
        per answer sentence, ``[]`` or one :class:`Evidence` with ``basis="conflict"`` and
        ``differs`` = the sentence's names/numbers that context sentence replaces.

    Examples:
        >>> ctx = "The town is old. Its bridge was built in 1874."
        >>> c = sentence_conflicts(None, [(0, 3)], ["The bridge", " was built", " in 1847."], ctx, [(0, 16), (16, 47)])
        >>> (c[0][0].source, c[0][0].text, c[0][0].differs)
        (1, 'Its bridge was built in 1874.', ['1847'])
    """
    texts = [context[a:b].strip() for a, b in spans]
    out: list[list[Evidence]] = []
    for s, e in token_spans:
        support = _support(_claim(deltas, s, e, tokens)) if deltas is not None and len(spans) else None
        clash = conflicts("".join(tokens[s:e]), texts, support)
        if clash is None:
            out.append([])
            continue
        k, differs = clash
        score = float(support[k]) if support is not None and np.isfinite(support[k]) else math.nan
        out.append([Evidence(k, texts[k], spans[k][0], spans[k][1], score, "conflict", differs)])
    return out


_NAME = re.compile(r"[A-Za-z0-9][\w'’.-]*")


NUMBER_WORDS = frozenset("""zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred thousand million billion first second third fourth fifth half dozen""".split())
"""Number words count as numbers ("Eight." against a passage that says six)."""

_STARTERS = frozenset("""the a an it its it's this that these those he she they we i you his her their our my
    there here in on at by for from of to with and but or so yes no not about around after before
    during since when where who what which how why some many most all both each every people only also
    however because although though while if as then now today later several just even yet still""".split())
"""Common first words of a sentence that are capitalised only because they start it."""


def names_and_numbers(text: str) -> list[str]:
    """The words of ``text`` that carry names, numbers and dates: capitalised words (a sentence's
    first word too, unless it is a common starter like "The"), words with a digit, number words.

    Returns:
        the words, lower-cased, without trailing punctuation.

    Examples:
        >>> names_and_numbers("The treaty was signed by Mira Olsen in 1847.")
        ['mira', 'olsen', '1847']
        >>> names_and_numbers("Berlin."), names_and_numbers("Eight."), names_and_numbers("It has ten legs.")
        (['berlin'], ['eight'], ['ten'])
    """
    words = [w.rstrip(".'’-") for w in _NAME.findall(text)]
    out = []
    for w in words:
        low = w.lower()
        if any(c.isdigit() for c in w) or low in NUMBER_WORDS or (w[:1].isupper() and low not in _STARTERS):
            out.append(low)
    return out


STEM = 5
"""Content words are compared by their first this many letters ("directed" and "director" match)."""

STOP_WORDS = frozenset("""a an the and or but if then so of to in on at by for from with without as is are was
    were be been being has have had do does did it its it's this that these those he she they we i you his her
    their our my me him them us there here not no yes also only both either neither all any some many most more
    much each every which who whom whose what when where why how than into onto over under about after before
    during since until while very can could will would shall should may might must just up down out off too
    again once own same such nor per via""".split())
"""Words that carry no content of their own (left out of :func:`content_words`)."""

_WORD = re.compile(r"[A-Za-z0-9]+")


def content_words(text: str) -> list[str]:
    """The content words of ``text``: lower-cased, stop words left out, cut to :data:`STEM` letters
    (numbers whole).

    Examples:
        >>> content_words("The bridge was built in 1874 by Mira Olsen.")
        ['bridg', 'built', '1874', 'mira', 'olsen']
    """
    return [w if w.isdigit() else w[:STEM] for w in (m.lower() for m in _WORD.findall(text)) if w not in STOP_WORDS]


def word_share(sentence: str, texts: Sequence[str]) -> np.ndarray:
    """Share of the sentence's content words found in each of ``texts`` (0 when it has none).

    Examples:
        >>> word_share("Paris is big.", ["Paris is the capital.", "It is big."]).tolist()
        [0.5, 0.5]
    """
    words = content_words(sentence)
    if not words:
        return np.zeros(len(texts))
    return np.array([np.mean([w in set(content_words(t)) for w in words]) for t in texts], dtype=np.float64)


def holds(sentence: str, text: str) -> bool:
    """Whether ``text`` holds every name and number of ``sentence`` and at least :data:`WORDS_SHARE`
    of its content words (what a ``basis="words"`` evidence sentence needs).

    Examples:
        >>> holds("Paris.", "Paris is the capital of France."), holds("Berlin.", "Paris is the capital of France.")
        (True, False)
    """
    words = set(_name_words(text))
    if any(n not in words for n in names_and_numbers(sentence)):
        return False
    return bool(content_words(sentence)) and float(word_share(sentence, [text])[0]) >= WORDS_SHARE


def _name_words(text: str) -> list[str]:
    """Every word of ``text`` as :func:`names_and_numbers` spells its words (lower-cased, stripped)."""
    return [w.rstrip(".'’-").lower() for w in _NAME.findall(text)]


def conflicts(sentence: str, texts: Sequence[str], support: np.ndarray | None = None) -> tuple[int, list[str]] | None:
    """The context sentence ``sentence`` conflicts with, and the names/numbers that differ.

    The closest context sentence is the one sharing most of the sentence's content words other
    than its names and numbers (what it says about them: "founded", "mayor"), then most content
    words, then the higher leave-one-out ``support``, then the first. They conflict when, besides the differing
    names/numbers, they share a content word, and a name or number of ``sentence`` that the
    context sentence lacks stands where it has another one of the same kind (a number for a
    number, a name for a name) that ``sentence`` lacks.

    Returns:
        ``(index into texts, the sentence's differing names/numbers as it spells them)``, or None.

    Examples:
        >>> conflicts("Its mayor, Nadia Olsen, was elected in 2015.", ["Its mayor, Petra Moreau, was elected in 2015."])
        (0, ['Nadia', 'Olsen'])
        >>> conflicts("Mira Olsen founded it.", ["It was founded by Mira Olsen in 1544."]) is None
        True
    """
    names = list(dict.fromkeys(names_and_numbers(sentence)))
    words = set(content_words(sentence))
    if not names or not texts:
        return None
    # what the sentence says about its names ("founded", "mayor") picks the closest sentence first
    plain = words - {n if n.isdigit() else n[:STEM] for n in names}
    shared_plain = [len(plain & set(content_words(t))) for t in texts]
    shared = [len(words & set(content_words(t))) for t in texts]
    tie = np.zeros(len(texts)) if support is None else np.nan_to_num(np.asarray(support, float), nan=-np.inf)
    best = max(range(len(texts)), key=lambda k: (shared_plain[k], shared[k], tie[k], -k))
    if not shared[best]:
        return None
    theirs = list(dict.fromkeys(names_and_numbers(texts[best])))
    present = set(_name_words(texts[best]))
    missing = [n for n in names if n not in present]
    others = [n for n in theirs if n not in names]
    is_number = lambda w: any(c.isdigit() for c in w) or w in NUMBER_WORDS  # noqa: E731
    spelled = {w.rstrip(".'’-").lower(): w.rstrip(".'’-") for w in _NAME.findall(sentence)}
    differs = [spelled.get(n, n) for n in missing if any(is_number(o) == is_number(n) for o in others)]
    anchor = (words & set(content_words(texts[best]))) - {m if m.isdigit() else m[:STEM] for m in missing}
    return (best, differs) if differs and anchor else None


def _unseen_share(text: str, context_words: set[str]) -> float:
    """Share of the names/numbers of ``text`` not among ``context_words``."""
    names = names_and_numbers(text)
    if not names:
        return 0.0
    return float(np.mean([n not in context_words for n in names]))


def evidence_scores(deltas: np.ndarray, token_spans: Sequence[tuple[int, int]], tokens: Sequence[str],
                    context: str, prompt: str | None = None) -> list[dict[str, float]]:
    """The evidence scores of each answer sentence (see the module's docstring).

    Args:
        deltas: (n context sentences, m tokens) from :func:`leave_one_out`.
        token_spans: the answer sentences' token spans; tokens: the answer's readable tokens.
        context: the context text; prompt: the question (its words do not count as unseen).

    Returns:
        per answer sentence, ``{"unsupported", "contradicted", "unseen_names", "unseen_words", "conflict"}``.
    """
    context_words = set(_name_words(context))
    given = set(content_words(context)) | set(content_words(prompt or ""))
    texts, _ = context_sentences(context)
    out = []
    for s, e in token_spans:
        sentence = "".join(tokens[s:e])
        words = content_words(sentence)
        lexical = {"unseen_names": _unseen_share(sentence, context_words),
                   "unseen_words": float(np.mean([w not in given for w in words])) if words else 0.0}
        if deltas.shape[0] == 0 or e <= s or np.isnan(deltas).all():
            clash = conflicts(sentence, texts) if e > s else None
            out.append({"unsupported": 1.0, "contradicted": 0.0, **lexical,
                        "conflict": _conflict_share(sentence, clash)})
            continue
        block = _claim(deltas, s, e, tokens)
        support = _support(block)
        best = int(np.argmax(support))
        clash = conflicts(sentence, texts if len(texts) == deltas.shape[0] else [], support)
        out.append({
            "unsupported": float(math.exp(-max(0.0, float(support[best])))),
            "contradicted": float(max(0.0, -float(block[best].min()))),
            **lexical,
            "conflict": _conflict_share(sentence, clash),
        })
    return out


def _conflict_share(sentence: str, clash: tuple[int, list[str]] | None) -> float:
    """Share of the sentence's distinct names/numbers that its conflicting context sentence replaces."""
    if clash is None:
        return 0.0
    return len(clash[1]) / max(1, len(set(names_and_numbers(sentence))))


def answer_scores(per_sentence: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The answer's evidence scores: the worst sentence's (maximum of each score).

    Examples:
        >>> answer_scores([{"unsupported": 0.1, "contradicted": 2.0}, {"unsupported": 0.9, "contradicted": 0.0}])
        {'unsupported': 0.9, 'contradicted': 2.0}
    """
    keys = list(per_sentence[0]) if per_sentence else []
    return {k: float(max(s[k] for s in per_sentence)) for k in keys}


__all__ = ["EVIDENCE_NATS", "LONG_CONTEXT_TOKENS", "NUMBER_WORDS", "STEM", "STOP_WORDS", "TOP_K", "WORDS_SHARE",
           "Evidence", "screened_leave_one_out", "LABELS", "SCORE_DOCS", "answer_scores", "conflicts",
           "content_words", "context_sentences", "evidence_scores", "holds", "leave_one_out", "names_and_numbers",
           "removal_contexts", "sentence_conflicts", "sentence_evidence", "word_share", "words_note"]
