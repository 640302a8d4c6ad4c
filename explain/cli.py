"""`whylm explain` and `whylm signals`: the command-line face of :mod:`explain`.

Example:
    $ whylm explain "The capital of France is" --target " Paris" --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from explain.errors import ExplainError

EXPLAIN_EXAMPLE = """examples:
  whylm explain "The capital of France is" --target " Paris"
  whylm explain "$(cat context.txt) Question: who built it? Answer:" --target " Ada" --sources sentences
  whylm explain "Summarise: cats sleep a lot." --chat --method shapley --json out.json --html out.html
  whylm explain "The capital of France is" --model ./my-llama --method integrated_gradients
"""

SIGNALS_EXAMPLE = """examples:
  whylm signals "Who wrote Hamlet?"
  whylm signals "Who wrote Hamlet?" --response "Charles Dickens wrote Hamlet." --json report.json
  whylm signals "When was it built?" --context-file passage.txt --samples 5 --html report.html
"""


def add_parsers(subparsers: Any) -> None:
    """Register ``explain`` and ``signals`` on an argparse subparsers object."""
    from explain.attribution import METHODS

    p = subparsers.add_parser(
        "explain",
        help="attribute each output token to the prompt's tokens",
        description="Which prompt tokens drove each output token (teacher-forced attribution).",
        epilog=EXPLAIN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--target", help="text to explain (default: generate greedily)")
    p.add_argument("--method", default="ablation", choices=sorted(METHODS), help="attribution method (default: ablation)")
    p.add_argument("--model", help="local model folder or cached hub id (default: embedded SmolLM2-135M-Instruct)")
    p.add_argument("--chat", action="store_true", help="apply the chat template; attribute the user's text only")
    p.add_argument("--baseline", type=int, default=None,
                   help="replacement token id for token-level perturbation and gradients "
                        "(default: a content-free token per tokenizer; 0 gives captum's numbers)")
    p.add_argument("--sources", default="tokens", choices=["tokens", "words", "sentences", "paragraphs"],
                   help="what to attribute to; a source is ablated by removing it (default: tokens)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="refuse a run estimated to take longer (default 300)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="generation length without --target")
    p.add_argument("--top", type=int, default=3, help="top input tokens to print per output token")
    _add_output_flags(p)
    p.set_defaults(func=run_explain)

    s = subparsers.add_parser(
        "signals",
        help="score how likely an answer is made up, token by token",
        description="Hallucination signals: token log-prob, entropy, margin, context grounding, sample consistency.",
        epilog=SIGNALS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("prompt", help="the question or instruction")
    s.add_argument("--response", help="an answer to score as is (default: generate one)")
    s.add_argument("--context-file", type=Path, help="a text file with the context/passage the answer should rest on")
    s.add_argument("--samples", type=int, default=0, help="sampled answers for consistency scores (default 0)")
    s.add_argument("--model", help="local model folder or cached hub id (default: embedded model)")
    s.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    _add_output_flags(s)
    s.set_defaults(func=run_signals)


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT ('-' for stdout)")
    p.add_argument("--html", metavar="OUT", help="write an HTML view to OUT")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _load(model: str | None):
    from explain.model import LanguageModel

    print(f"loading {model or 'embedded model'} ...", file=sys.stderr)
    return LanguageModel.load(model)


def _write(args: argparse.Namespace, payload: str, page: str) -> None:
    if args.json == "-":
        print(payload)
    elif args.json:
        Path(args.json).write_text(payload, encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.html:
        Path(args.html).write_text(f"<!doctype html><meta charset=utf-8><body>{page}</body>", encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)


def run_explain(args: argparse.Namespace) -> int:
    """Handler of ``whylm explain``: prints the cost estimate, then runs. Returns: the exit code."""
    from explain.attribution import attribute
    from explain.attribution.cost import estimate_cost
    from explain.budget import check_budget

    lm = _load(args.model)
    cost = estimate_cost(lm, args.prompt, args.target, method=args.method, sources=args.sources,
                         chat=args.chat, max_new_tokens=args.max_new_tokens)
    print(f"estimate: {cost.summary()}", file=sys.stderr)
    check_budget(cost, args.max_seconds)
    res = attribute(
        lm,
        args.prompt,
        target=args.target,
        method=args.method,
        baseline=args.baseline,
        chat=args.chat,
        max_new_tokens=args.max_new_tokens,
        progress=None if not args.no_progress else False,
        sources=args.sources,
        max_seconds=args.max_seconds,
    )
    if args.json != "-":
        print(f"{res.method} on {res.model}: {len(res.output_tokens)} output x {len(res.input_tokens)} input tokens, "
              f"{res.info.get('seconds', 0):.2f}s")
        for j, tok in enumerate(res.output_tokens):
            tops = ", ".join(f"{t!r} {v:+.3f}" for t, v in res.top_features(args.top, row=j))
            print(f"  {tok!r:>16} (logp {res.target_logprobs[j]:+.2f}) <- {tops}")
    rows = "".join(res.html(row=j) for j in range(len(res.output_tokens)))
    _write(args, res.to_json(indent=2), res.html() + rows)
    return 0


def run_signals(args: argparse.Namespace) -> int:
    """Handler of ``whylm signals``. Returns: the exit code."""
    from explain.signals import signals

    context = None
    if args.context_file:
        if not args.context_file.exists():
            raise ExplainError(f"context file '{args.context_file}' does not exist")
        context = args.context_file.read_text(encoding="utf-8")
    if args.samples < 0:
        raise ExplainError("--samples must be 0 or more")
    lm = _load(args.model)
    rep = signals(
        lm, args.prompt, response=args.response, context=context, samples=args.samples,
        chat=not args.no_chat, progress=not args.no_progress,
    )
    if args.json != "-":
        print("response:", "".join(rep.tokens))
        for name, value in rep.scores.items():
            shown = f"{value:.3f}" if isinstance(value, (int, float, np.floating)) else json.dumps(value)
            print(f"  {name:>28}: {shown}")
    _write(args, rep.to_json(indent=2), rep.html())
    return 0
