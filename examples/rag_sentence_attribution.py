"""Which sentence of a retrieved context made the model give its answer (ContextCite's question).

The context and the question are given apart (``attribute(lm, question, context=...)``): only the
context is split into sentences, and the question is one source shown apart from the ranking.
States the cost before it starts; a screen ranks every sentence, then each of the ``--top-k`` best
is removed in turn (exact leave-one-out; the key/value cache of the text before a sentence is
reused), and the sentences are printed ranked by how many nats the answer's log-probability loses
without them ("~" marks a screen's estimate). ``--html`` writes the context with every sentence
highlighted and the ranking beside it.

Usage:
    python examples/rag_sentence_attribution.py                        # built-in document, embedded model
    python examples/rag_sentence_attribution.py --context doc.txt \\
        --question "What is the code for the blue vault?" --answer " 4172"
    python examples/rag_sentence_attribution.py --html /tmp/sentences.html --top 5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DOCUMENT = (
    "The harbour reopened in spring, and nobody minded. The old library was repainted after the storm. "
    "The code for the red vault is 9051. A small bakery hosted a fair during the festival. "
    "The museum closed early on most Sundays, as the records show. "
    "The code for the blue vault is 4172. The night train was crowded before the harvest. "
    "A weather station counted visitors at dawn, despite the cost."
)
QUESTION = "What is the code for the blue vault?"
ANSWER = " 4172"


def build_question(question: str) -> str:
    """The question the model answers after the context: the question and the start of the answer line."""
    return f"Question: {question.strip()}\nAnswer: The code is"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("Usage:")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", help="a text file with the retrieved context (default: a built-in one)")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--answer", default=ANSWER, help="the answer to explain (mind its leading space)")
    parser.add_argument("--top", type=int, default=3, help="how many sentences to print")
    parser.add_argument("--top-k", type=int, default=5, help="sentences computed exactly (the screen ranks the rest)")
    parser.add_argument("--screen", default=None, help="fitted_attention (default where head weights ship for the model, "
                        "else hierarchical), hierarchical, block_attention, attention or gradient")
    parser.add_argument("--html", help="write the highlighted context here")
    parser.add_argument("--max-seconds", type=float, default=None, help="refuse a longer run (default 600)")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from explain import LanguageModel, WhylmError, attribute, estimate_cost

    try:
        context = Path(args.context).read_text(encoding="utf-8") if args.context else DOCUMENT
    except OSError as exc:
        print(f"error: cannot read --context: {exc.strerror or exc}", file=sys.stderr)
        return 2
    lm = LanguageModel.load(args.model)
    question = build_question(args.question)
    options = {"context": context, "sources": "sentences", "top_k": args.top_k, "screen": args.screen}
    try:
        print("estimate:", estimate_cost(lm, question, args.answer, **options).summary(), flush=True)
        res = attribute(lm, question, target=args.answer, max_seconds=args.max_seconds, **options)
    except WhylmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"answer {args.answer!r}: log-prob {res.target_logprobs.sum():.2f}; "
          f"nats lost without each sentence ({res.info['seconds']:.1f} s):")
    exact = res.exact
    order = sorted(range(len(res.input_tokens)), key=lambda i: -res.seq_attr[i])[:args.top]
    for rank, i in enumerate(order, 1):
        mark = " " if exact[i] else "~"
        print(f"{rank:>3}.{mark}{res.seq_attr[i]:+7.2f}  {res.input_tokens[i].strip()}")
    print(f"     the question itself (kept apart): {res.info['question']['value']:+.2f}; "
          f"exact for {int(exact.sum())} of {len(exact)} sentences, '~' = the screen's estimate")
    if args.html:
        Path(args.html).write_text(res.html(), encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
