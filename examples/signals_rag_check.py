"""Flag answers that are not grounded in their retrieved context (copy into an evaluation pipeline).

Scores each (context, question, answer) row with :func:`explain.signals`, prints the calibrated
verdict and risk (the probability that the answer is not supported by the context), the riskiest
sentence, and writes an HTML page with the risky tokens highlighted.

The risk of the embedded 135M model comes from the calibration shipped for it (fitted on the
HaluEval dev split; test-split figures in ``benchmarks/hallucination.py``). It catches answers that
add claims the context argues against; it misses short entity swaps and wrong numbers (SmolLM2 reads
digits one at a time, and the context lifts any digit). For your own model, fit a calibration from
labelled answers (``whylm signals calibrate``) and pass ``--calibration``.

Usage:
    python examples/signals_rag_check.py                  # built-in demo rows, embedded model
    python examples/signals_rag_check.py --n-samples 5    # add sample-consistency scores
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=int, default=0, help="sampled answers for consistency scores")
    parser.add_argument("--html", default=None, help="write an HTML report here")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    parser.add_argument("--calibration", default=None, help="calibration JSON for --model (default: shipped one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from explain import LanguageModel, signals

    lm = LanguageModel.load(args.model)
    pages = []
    for row in ROWS:
        rep = signals(lm, row["question"], response=row["answer"], context=row["context"],
                      n_samples=args.n_samples, calibration=args.calibration, progress=False)
        if rep.risk is None:
            print(f"no verdict ({rep.risk_note}) for {row['answer']!r}")
        else:
            print(f"{rep.verdict:>19} (risk {rep.risk:.2f}) {row['answer']!r}")
        worst = max(rep.sentences, key=lambda s: -1.0 if s.risk is None else s.risk)
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
