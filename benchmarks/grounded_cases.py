"""Labelled grounded answers about fictional places, for fitting and testing the verdict (issue 16).

Every case is a short passage of facts about a made-up town (names, numbers and dates the model
cannot know), a question, and an answer that is right (label 0) or has one fact swapped (label 1).
Five kinds, the answers people actually check:

- ``short``: a few words ("Mira Olsen.", "In 1874.");
- ``copied``: the fact's sentence copied from the passage;
- ``paraphrase``: the fact said in other words;
- ``multi``: two or three sentences, each built from one passage sentence (``sentences[i].source``
  names it); in half of the answers one sentence has a swapped name, number or date;
- ``plain``: one-sentence answers written the way a user would ("Mira Olsen built it in 1874.").

Seeded and deterministic: ``make_cases("dev")`` and ``make_cases("test")`` draw from disjoint
name pools and seeds, so the test half shares no name with the dev half; each kind has its own
generator, so a larger ``per_kind`` keeps the smaller one's cases and only adds to them.

Usage:
    python benchmarks/grounded_cases.py --split dev --out /tmp/dev.jsonl   # write the cases as JSON lines
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

KINDS = ("short", "copied", "paraphrase", "multi", "plain")

_FIRST = ["Mira", "Tomas", "Ilse", "Korin", "Saba", "Edvin", "Lotte", "Anwar", "Petra", "Oskar", "Yara", "Bram",
          "Nadia", "Felix", "Runa", "Casimir", "Hedda", "Jonas", "Maren", "Teodor", "Alva", "Ivo", "Greta", "Linus"]
_LAST = ["Olsen", "Brandt", "Varga", "Lindqvist", "Moreau", "Okafor", "Haldane", "Petrov", "Castell", "Dunmore",
         "Ferrant", "Kessler", "Novak", "Aldana", "Strom", "Quill", "Marsh", "Tavar", "Wexley", "Ibsen"]
_SYL = ["vel", "mor", "an", "tir", "os", "bra", "keth", "lun", "dor", "wen", "sal", "ith", "gar", "nel", "rho",
        "ska", "ven", "tal", "quo", "zel"]
_GOODS = ["wool", "salt", "glass", "copper", "paper", "cheese", "rope", "clocks", "pottery", "silk"]


def _place(rng: random.Random) -> str:
    return "".join(rng.sample(_SYL, 2 + rng.random().__lt__(0.3))).capitalize()


def _pools(split: str) -> tuple[list[str], list[str]]:
    """Disjoint halves of the name lists for dev and test."""
    k = 0 if split == "dev" else 1
    return _FIRST[k::2], _LAST[k::2]


def _world(rng: random.Random, split: str) -> dict[str, Any]:
    first, last = _pools(split)
    person = lambda: f"{rng.choice(first)} {rng.choice(last)}"  # noqa: E731
    names: list[str] = []
    while len(names) < 4:  # a list, not a set: set order changes with the process's hash seed
        name = person()
        if name not in names:
            names.append(name)
    builder, mayor, founder, spare = names
    place, river = _place(rng), _place(rng)
    while river == place:
        river = _place(rng)
    return dict(place=place, river=river, builder=builder, mayor=mayor, founder=founder, spare=spare,
                year=rng.randint(1700, 1950), people=rng.randint(12, 98) * 100 + rng.randint(1, 99),
                length=rng.randint(120, 900), elected=rng.randint(1990, 2022), goods=rng.choice(_GOODS),
                founded=rng.randint(1200, 1650))


# Each fact: the passage sentence, a question, a short answer, a paraphrase, the slot a swap changes.
FACTS = [
    dict(sentence="{place} is a small town on the {river} river.", question="Which river is {place} on?",
         short="The {river}.", paraphrase="{place} lies on the {river}.", slot="river"),
    dict(sentence="Its old bridge was built in {year} by the engineer {builder}.",
         question="When was the old bridge of {place} built?", short="In {year}.",
         paraphrase="The old bridge dates from {year}.", slot="year"),
    dict(sentence="The bridge is {length} metres long.", question="How long is the bridge in {place}?",
         short="{length} metres.", paraphrase="It measures {length} metres.", slot="length"),
    dict(sentence="The town has {people} inhabitants.", question="How many people live in {place}?",
         short="{people}.", paraphrase="About {people} people live there.", slot="people"),
    dict(sentence="Its mayor, {mayor}, was elected in {elected}.", question="Who is the mayor of {place}?",
         short="{mayor}.", paraphrase="The mayor of {place} is {mayor}.", slot="mayor"),
    dict(sentence="{place} was founded in {founded} by {founder}.", question="Who founded {place}?",
         short="{founder}.", paraphrase="{founder} founded the town.", slot="founder"),
    dict(sentence="The town is known for its {goods} market.", question="What is {place} known for?",
         short="Its {goods} market.", paraphrase="People know {place} for its {goods} market.", slot="goods"),
]
PLAIN = {  # a user's own one-sentence answers, by fact
    0: "It is on the {river} river.", 1: "The bridge was built in {year}.", 2: "The bridge is {length} metres long.",
    3: "{place} has {people} inhabitants.", 4: "{mayor} is the mayor.", 5: "{founder} founded it in {founded}.",
    6: "It is known for {goods}.",
}


def _swap(w: dict[str, Any], slot: str, rng: random.Random) -> dict[str, Any]:
    """The world with one slot changed to a plausible wrong value that the passage does not hold."""
    v = dict(w)
    value = w[slot]
    if slot in ("builder", "mayor", "founder"):
        others = [w[s] for s in ("builder", "mayor", "founder") if s != slot] + [w["spare"]]
        v[slot] = rng.choice(others[-1:] if rng.random() < 0.6 else others)  # unseen, or another person of the text
    elif slot == "river":
        v[slot] = _place(rng)
    elif slot == "goods":
        v[slot] = rng.choice([g for g in _GOODS if g != value])
    elif slot in ("year", "founded", "elected"):
        s = str(value)
        v[slot] = int(s[:-2] + s[-1] + s[-2]) if s[-1] != s[-2] and rng.random() < 0.5 else value + rng.choice([-1, 1]) * rng.randint(3, 60)
    else:
        v[slot] = value + rng.choice([-1, 1]) * max(1, int(value * rng.uniform(0.1, 0.5)))
    return v


def make_cases(split: str, per_kind: int = 20, seed: int = 0) -> list[dict[str, Any]]:
    """The labelled cases of one split: ``per_kind`` right and ``per_kind`` wrong answers per kind
    (``multi``: ``2 * per_kind`` answers, half of them with one swapped sentence).

    Returns:
        dicts with ``kind``, ``prompt``, ``context``, ``response``, ``label`` (1 = not supported),
        ``item`` (cases from one passage share it) and, for ``multi``, ``sentences``: per answer
        sentence its ``text``, ``source`` (index of the passage sentence it was built from) and
        ``wrong``.

    Example:
        >>> cases = make_cases("dev", per_kind=2)
        >>> sorted({c["kind"] for c in cases}) == sorted(KINDS), make_cases("dev", per_kind=2) == cases
        (True, True)
        >>> all(c in make_cases("dev", per_kind=3) for c in cases)   # more per kind only adds cases
        True
    """
    cases: list[dict[str, Any]] = []
    for n_kind, kind in enumerate(KINDS):
        # one generator per kind: a larger per_kind only adds cases (the cached answers stay valid)
        rng = random.Random(f"{split}-{seed}-{kind}")
        for k in range(2 * per_kind if kind == "multi" else per_kind):
            item = 1000 * (n_kind + 1) + k
            w = _world(rng, split)
            order = rng.sample(range(len(FACTS)), 5)
            context = " ".join(FACTS[f]["sentence"].format(**w) for f in order)
            if kind == "multi":
                picked = rng.sample(range(5), rng.choice([2, 3]))
                wrong_at = rng.randrange(len(picked)) if k % 2 else -1
                sents = []
                for j, pos in enumerate(picked):
                    fact = FACTS[order[pos]]
                    vals = _swap(w, fact["slot"], rng) if j == wrong_at else w
                    text = (fact["paraphrase"] if rng.random() < 0.5 else fact["sentence"]).format(**vals)
                    sents.append(dict(text=text, source=pos, wrong=j == wrong_at))
                cases.append(dict(kind=kind, item=item, prompt=f"Tell me about {w['place']}.", context=context,
                                  response=" ".join(s["text"] for s in sents), label=int(wrong_at >= 0),
                                  sentences=sents))
                continue
            fact_id = order[rng.randrange(5)]
            fact = FACTS[fact_id]
            template = {"short": fact["short"], "copied": fact["sentence"], "paraphrase": fact["paraphrase"],
                        "plain": PLAIN[fact_id]}[kind]
            slot = fact["slot"]
            if "{" + slot + "}" not in template:  # the plain answer may say another slot of the same sentence
                slot = next(s for s in ("founded", "year", "mayor", "founder") if "{" + s + "}" in template)
            prompt = fact["question"].format(**w)
            for label, vals in ((0, w), (1, _swap(w, slot, rng))):
                cases.append(dict(kind=kind, item=item, prompt=prompt, context=context,
                                  response=template.format(**vals), label=label,
                                  sentences=[dict(text=template.format(**vals), source=order.index(fact_id),
                                                  wrong=bool(label))]))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the cases here as JSON lines (default: print)")
    args = parser.parse_args(argv)
    cases = make_cases(args.split, args.per_kind, args.seed)
    text = "\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(cases)} cases to {args.out}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
