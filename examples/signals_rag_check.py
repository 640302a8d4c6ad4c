"""Flag answers that are not grounded in their retrieved context (copy into an evaluation pipeline).

Scores each (context, question, answer) row with :func:`explain.signals`, prints the answer-level
scores and the riskiest sentence, and writes an HTML page with the risky tokens highlighted.

What to expect from the embedded 135M model: ``ungrounded_max`` > 0.25 flagged 91% of HaluEval's
hallucinated answers and 16% of its right ones (dev split). It catches answers that add claims the
context argues against; it misses short entity swaps and wrong numbers (SmolLM2 reads digits one at
a time, and the context lifts any digit). A larger model behind ``LanguageModel.load(path)`` does better.

Usage:
    python examples/signals_rag_check.py                  # built-in demo rows, embedded model
    python examples/signals_rag_check.py --samples 5      # add sample-consistency scores
    python examples/signals_rag_check.py --html /tmp/signals.html
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It is named after the engineer "
    "Gustave Eiffel, whose company designed and built the tower.")
QUESTION = "Whose company built the Eiffel Tower?"
ROWS = [
    {"context": CONTEXT, "question": QUESTION, "answer": "Gustave Eiffel's company."},
    {"context": CONTEXT, "question": QUESTION, "answer": "It was built by Leonardo da Vinci's workshop in Rome."},
    # A bare entity swap: the 135M model's context contrast does not catch this one (see below).
    {"context": CONTEXT, "question": QUESTION, "answer": "Thomas Edison"},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=0, help="sampled answers for consistency scores")
    parser.add_argument("--html", default=None, help="write an HTML report here")
    parser.add_argument("--threshold", type=float, default=0.25,
                        help="flag answers whose ungrounded_max exceeds this (nats; chosen on HaluEval dev)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from explain import LanguageModel, signals

    lm = LanguageModel.load()
    pages = []
    for row in ROWS:
        rep = signals(lm, row["question"], response=row["answer"], context=row["context"],
                      samples=args.samples, progress=False)
        worst = max(rep.sentences, key=lambda s: s.scores.get("ungrounded_max", 0.0))
        flag = "FLAG" if rep.scores["ungrounded_max"] > args.threshold else "ok  "
        print(f"{flag} {row['answer']!r}")
        print("     " + ", ".join(f"{k}={v:.2f}" for k, v in rep.scores.items()))
        print(f"     riskiest sentence: {worst.text!r}; cost {rep.cost['seconds']:.1f} s, "
              f"{rep.cost['forward_passes']} forward passes")
        pages.append(rep.html())
    if args.html:
        Path(args.html).write_text("<html><body>" + "<hr>".join(pages) + "</body></html>", encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
