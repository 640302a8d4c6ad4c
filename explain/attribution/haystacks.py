"""Fictional haystacks for context attribution: filler, one or two needles, distractors, a question.

Every fact is invented (names, places and codes are drawn from syllables), so the model cannot know
the answer without the context. Three kinds:

- ``one``: one needle holds the answer (``The access code of the Varnel lab is 4417.``);
- ``two``: the answer needs two needles: a link (``The Varnel lab is in the Ostrin building.``)
  and the key (``The door code of the Ostrin building is 4417.``);
- ``multi``: a two-part answer (``Kestrel Bay, and her sister is Anvi``), one needle per part.

Distractors state the same kind of fact about other entities. Seeds 0-99 are the development set;
the benchmark's held-out rows use seeds from 1000 on, never looked at while choosing defaults.

Example:
    >>> h = make_haystack(lambda s: s.split(), 60, seed=1, kind="two")
    >>> h["kind"], len(h["needles"]), h["key"] in h["needles"]
    ('two', 2, True)
    >>> all(n in h["context"] for n in h["needles"])
    True
"""

from __future__ import annotations

import random
from typing import Any, Callable

SYLLABLES = ["var", "nel", "os", "trin", "kes", "trel", "mor", "dan", "li", "sa", "bre", "tho", "quen",
             "zal", "pir", "ro", "vu", "el", "ka", "den", "ash", "tor", "mi", "ra", "gol", "fen"]
PLACES = ["lab", "depot", "archive", "workshop", "observatory", "clinic", "studio", "hangar"]
BUILDINGS = ["building", "tower", "hall", "annex", "pavilion"]
VERBS = ["repainted its doors", "hired two clerks", "closed for a week", "bought new lamps",
         "moved its records", "held a quiet meeting", "changed its hours", "fixed the roof",
         "planted a hedge", "counted its visitors", "ordered blue paper", "lost a ledger"]
WHEN = ["in spring", "after the storm", "on most Sundays", "during the fair", "last winter",
        "before the harvest", "around noon", "every other year", "at dawn", "in the dry season"]
TAILS = ["and nobody minded.", "while the bells rang.", "although it rained.", "as the notes show.",
         "to general surprise.", "despite the cost.", "for the third time.", "which pleased the mayor.",
         "so the road was busy.", "with help from friends."]
FIRST = ["Mira", "Tomas", "Ilse", "Oren", "Per", "Nadia", "Luca", "Sefa", "Anvi", "Joss", "Kai", "Ruth"]


def name(rng: random.Random, parts: int = 2) -> str:
    """An invented capitalised name. Returns: e.g. ``'Kestrel'``."""
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def filler(rng: random.Random) -> str:
    """One neutral sentence about an invented place. Returns: the sentence (no leading space)."""
    return f"The {name(rng)} {rng.choice(PLACES)} {rng.choice(VERBS)} {rng.choice(WHEN)}, {rng.choice(TAILS)}"


def _facts(rng: random.Random, kind: str) -> tuple[list[str], str, str, list[str], list[str]]:
    """(needles, question, answer, distractors, key); the key needle is ``needles[key]``."""
    code, wrong, wrong2 = (str(c) for c in rng.sample(range(1000, 10000), 3))
    place, other = rng.sample(PLACES, 2)
    ent, ent2 = name(rng), name(rng)
    if kind == "one":
        needles = [f"The access code of the {ent} {place} is {code}."]
        question = f"What is the access code of the {ent} {place}?"
        distract = [f"The access code of the {ent2} {other} is {wrong}.",
                    f"The {ent} {place} {rng.choice(VERBS)} {rng.choice(WHEN)}, {rng.choice(TAILS)}"]
        return needles, question, f" {code}", distract, needles[0]
    if kind == "two":
        bld, bld2 = rng.sample(BUILDINGS, 2)
        house, house2 = name(rng), name(rng)
        link = f"The {ent} {place} is in the {house} {bld}."
        key = f"The door code of the {house} {bld} is {code}."
        question = f"What is the door code of the building where the {ent} {place} is?"
        distract = [f"The {ent2} {other} is in the {house2} {bld2}.",
                    f"The door code of the {house2} {bld2} is {wrong}."]
        return [link, key], question, f" {code}", distract, key
    person, town, sister = rng.choice(FIRST), name(rng), rng.choice(FIRST)
    family = name(rng)
    born = f"{person} {family} was born in {town} Bay."
    sib = f"The sister of {person} {family} is called {sister}."
    question = f"Where was {person} {family} born, and what is her sister called?"
    distract = [f"{person} {name(rng)} was born in {name(rng)} Bay.",
                f"The sister of {rng.choice(FIRST)} {family} is called {rng.choice(FIRST)}."]
    return [born, sib], question, f" {town} Bay, and her sister is {sister}.", distract, born


def make_haystack(count: Callable[[str], list[Any]], n_tokens: int, seed: int, kind: str = "one") -> dict[str, Any]:
    """A context of about ``n_tokens`` tokens (``count(text)`` gives a text's tokens) with needles.

    Returns:
        dict with ``context``, ``question`` (``Question: ...\\nAnswer:``), ``answer`` (the target,
        leading space included), ``needles`` (their texts), ``key`` (the needle the answer's
        first tokens come from), ``kind`` and ``seed``.
    """
    rng = random.Random(seed * 7919 + {"one": 1, "two": 2, "multi": 3}[kind])
    needles, question, answer, distract, key = _facts(rng, kind)
    fixed = needles + distract
    budget = n_tokens - sum(len(count(" " + s)) for s in fixed)
    sentences: list[str] = []
    used = 0
    while used < budget:
        s = filler(rng)
        used += len(count(" " + s))
        sentences.append(s)
    for s in fixed:
        sentences.insert(rng.randrange(len(sentences) + 1), s)
    return {"context": " ".join(sentences), "question": f"Question: {question}\nAnswer:", "answer": answer,
            "needles": needles, "key": key, "kind": kind, "seed": seed}
