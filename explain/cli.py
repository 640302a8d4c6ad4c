"""`whylm explain`, `whylm signals` and `whylm fit-screen`: the command-line face of :mod:`explain`.

Examples:
    $ whylm explain "The capital of France is" --target " Paris" --json out.json
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

from explain.cli_io import read_text_file, write_html, write_output
from explain.errors import ExplainError
from explain.threads import check_threads

EXPLAIN_EXAMPLE = """examples:
  whylm explain "The capital of France is" --target " Paris"
  whylm explain "Question: who built it? Answer:" --context-file context.txt --target " Ada" --sources sentences --top-k 5
  whylm explain "Summarise: cats sleep a lot." --chat --method shapley --json out.json --html out.html
  whylm explain "The capital of France is" --model ./my-llama --method integrated_gradients
"""

SIGNALS_EXAMPLE = """examples:
  whylm signals "Who wrote Hamlet?"
  whylm signals "Who wrote Hamlet?" --response "Charles Dickens wrote Hamlet." --json report.json
  whylm signals "Who wrote Hamlet?" --response "Charles Dickens wrote Hamlet." --context-file passage.txt
  whylm signals "When was it built?" --context-file passage.txt --n-samples 5 --html report.html
  whylm signals calibrate labelled.jsonl --out cal.json --model ./my-model
  whylm signals "Who wrote Hamlet?" --response "Marlowe." --model ./my-model --calibration cal.json

The verdict reads the calibrated risk (probability the answer is not supported): below 0.3
"supported", from 0.7 "likely hallucinated", between "uncertain". Without a calibration for the
model no risk is shown. With --context-file each answer sentence is printed with its verdict, risk
and the context sentence that supports it best, or "nothing in the context supports this";
--json holds every sentence's evidence. `signals calibrate` fits one from a JSON-lines file of labelled answers
(prompt, response, context, label: 1 = hallucinated / not supported, 0 = supported).
"""

FIT_SCREEN_EXAMPLE = """examples:
  whylm fit-screen --out heads.json --cases 24
  whylm fit-screen --model ./my-llama --out my-llama.heads.json --tokens 256 512
  whylm fit-screen --out long.heads.json --tokens 1024 2048 --exact-top 24
  whylm fit-screen --model ./my-llama --out my-llama.heads.json --cases-file my_cases.jsonl
  whylm explain "Question: who built it? Answer:" --context-file ctx.txt --target " Ada" \\
      --sources sentences --top-k 5 --screen fitted_attention --head-weights heads.json

Fits one weight per attention head (two profiles: attention from the answer's positions and from
the question's) so that the fitted_attention screen ranks context sentences as exact leave-one-out
does (AT2-style). The cases are generated haystacks of invented facts, or yours (--cases-file:
JSON lines with question, context, answer); each needs one exact
leave-one-out run (or, with --exact-top, one over its best-screened sentences), so the cost is
stated first. A quarter of the cases are held out and the recall
of their exact top 3 in the screen's top 5 is printed beside plain attention's.
"""


def add_parsers(subparsers: Any) -> None:
    """Register ``explain`` and ``signals`` on an argparse subparsers object."""
    from explain.attribution import DEFAULT_SCREEN, METHODS, SCREENS

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
    p.add_argument("--context-file", type=Path, metavar="FILE",
                   help="a text file with the context; the prompt is then the question, kept apart: "
                        "only the context is split into sources")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="a screen ranks every source, exact leave-one-out for the K best only "
                        "(method ablation; the rest are marked as estimates)")
    p.add_argument("--screen", default=None, choices=sorted(SCREENS),
                   help=f"the screen for --top-k (default: fitted_attention where head weights ship for the "
                        f"model, else {DEFAULT_SCREEN})")
    p.add_argument("--head-weights", type=Path, default=None, metavar="FILE",
                   help="head weights for --screen fitted_attention (default: the file shipped for the model; "
                        "`whylm fit-screen` makes one)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="refuse a run estimated to take longer (default 600)")
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
    s.add_argument("prompt", help="the question or instruction; or `calibrate` followed by a labelled .jsonl file")
    s.add_argument("labelled", nargs="?", type=Path, help=argparse.SUPPRESS)
    s.add_argument("--response", help="an answer to score as is (default: generate one)")
    s.add_argument("--context-file", type=Path, help="a text file with the context/passage the answer should rest on")
    s.add_argument("--n-samples", dest="n_samples", type=int, default=0,
                   help="sampled answers for consistency scores (default 0)")
    s.add_argument("--calibration", help="a calibration JSON file (default: the one shipped for the model, if any)")
    s.add_argument("--max-seconds", type=float, default=None, help="refuse runs estimated above this (default 600)")
    s.add_argument("--out", help="`signals calibrate`: where to write the calibration JSON")
    s.add_argument("--model", help="local model folder or cached hub id (default: embedded model)")
    s.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    _add_output_flags(s)
    s.set_defaults(func=run_signals)

    f = subparsers.add_parser(
        "fit-screen",
        help="fit the fitted_attention screen's head weights for a model",
        description="Fit per-head weights so that attention ranks context sentences as leave-one-out does.",
        epilog=FIT_SCREEN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("--out", required=True, help="where to write the head-weights JSON")
    f.add_argument("--model", help="local model folder or cached hub id (default: embedded model)")
    f.add_argument("--cases", type=int, default=24, help="generated haystacks to fit on (default 24)")
    f.add_argument("--cases-file", type=Path, default=None, metavar="FILE",
                   help="fit on your own cases instead: JSON lines with question, context and answer")
    f.add_argument("--tokens", type=int, nargs="+", default=[256, 512], metavar="N",
                   help="context lengths of the haystacks, in turn (default: 256 512)")
    f.add_argument("--seed", type=int, default=0, help="first haystack seed (default 0)")
    f.add_argument("--exact-top", type=int, default=None, metavar="N",
                   help="leave-one-out only for the N sources the default screen ranks highest per case, "
                        "the rest counted as 0: long cases cost a few passes instead of one per sentence "
                        "(default: every source)")
    f.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="folder keeping each case's leave-one-out, so a stopped fit resumes "
                        "(default: whylm's cache folder)")
    f.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="refuse a fit estimated to take longer (default 600)")
    f.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    f.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    f.set_defaults(func=run_fit_screen)


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    """``--json``, ``--html`` (checked before the run by :func:`explain.cli_io.check_outputs`) and
    ``--no-progress``."""
    p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT ('-' for stdout)")
    p.add_argument("--html", metavar="OUT", help="write an HTML view to OUT")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads for the run (default: torch's; 1 is faster on a busy machine)")


def _load(model: str | None):
    from explain.model import LanguageModel

    print(f"loading {model or 'embedded model'} ...", file=sys.stderr)
    return LanguageModel.load(model)


def _write(args: argparse.Namespace, payload: str, page: str) -> None:
    if args.json:
        write_output(args.json, payload, "--json")
    write_html(args.html, page)


def run_explain(args: argparse.Namespace) -> int:
    """Handler of ``whylm explain``: prints the cost estimate, then runs. Returns: the exit code."""
    from explain.attribution import attribute
    from explain.attribution.cost import estimate_cost
    from explain.budget import check_budget

    check_threads(args.threads)
    context = read_text_file(args.context_file, "context file") if args.context_file else None
    if args.top_k is not None and args.top_k < 1:
        raise ExplainError(f"--top-k must be 1 or more, got {args.top_k}")
    if args.screen is not None and args.top_k is None:
        raise ExplainError("--screen needs --top-k (how many sources to compute exactly)")
    if args.head_weights is not None and args.screen != "fitted_attention":
        raise ExplainError("--head-weights is for --screen fitted_attention")
    lm = _load(args.model)
    cost = estimate_cost(lm, args.prompt, args.target, method=args.method, sources=args.sources,
                         chat=args.chat, max_new_tokens=args.max_new_tokens, context=context,
                         top_k=args.top_k, screen=args.screen, threads=args.threads)
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
        threads=args.threads,
        context=context,
        top_k=args.top_k,
        screen=args.screen,
        **({"head_weights": args.head_weights} if args.head_weights else {}),
    )
    if args.json != "-":
        unit = {"tokens": "input tokens", "words": "words", "sentences": "sentences",
                "paragraphs": "paragraphs"}.get(res.info.get("sources", "tokens"), "sources")
        print(f"{res.method} on {res.model}: {len(res.output_tokens)} output x {len(res.input_tokens)} {unit}, "
              f"{res.info.get('seconds', 0):.2f}s")
        exact = res.exact
        if exact is not None:
            print(f"  exact leave-one-out for {int(exact.sum())} of {len(exact)} {unit} "
                  f"({res.info.get('screen')} screen); '~' marks the screen's estimates")
        mark = (lambda name: "" if exact is None or exact[res.input_tokens.index(name)] else "~")  # noqa: E731
        for j, tok in enumerate(res.output_tokens):
            tops = ", ".join(f"{mark(t)}{t!r} {v:+.3f}" for t, v in res.top_features(args.top, row=j))
            print(f"  {tok!r:>16} (logp {res.target_logprobs[j]:+.2f}) <- {tops}")
        if res.info.get("question"):
            print(f"  question (kept apart from the ranking): {res.info['question']['value']:+.3f}")
    rows = "".join(res.html(row=j) for j in range(len(res.output_tokens)))
    _write(args, res.to_json(indent=2), res.html() + rows)
    return 0


def run_signals(args: argparse.Namespace) -> int:
    """Handler of ``whylm signals`` (and ``whylm signals calibrate``). Returns: the exit code."""
    from explain.signals import signals

    if args.prompt == "calibrate" and args.labelled is not None:
        return run_calibrate(args)
    if args.labelled is not None:
        raise ExplainError(f"unexpected argument '{args.labelled}': quote the prompt, or use `whylm signals calibrate FILE`")
    context = read_text_file(args.context_file, "context file") if args.context_file else None
    if args.n_samples < 0:
        raise ExplainError("--n-samples must be 0 or more")
    check_threads(args.threads)
    lm = _load(args.model)
    if args.n_samples > 0:  # the long part: say what it costs before it starts
        from explain.signals.api import sampling_cost
        from explain.threads import threads

        with threads(args.threads):
            ids = lm.prompt_ids(args.prompt, chat=not args.no_chat and lm.has_chat_template, context=context)[0]
            new_tokens = inspect.signature(signals).parameters["max_new_tokens"].default
            cost = sampling_cost(lm, len(ids), args.n_samples, new_tokens, args.max_seconds)
        print(f"estimate: {cost.summary()}", file=sys.stderr, flush=True)
    rep = signals(
        lm, args.prompt, response=args.response, context=context, n_samples=args.n_samples,
        calibration=args.calibration, chat=not args.no_chat, progress=False if args.no_progress else None,
        max_seconds=args.max_seconds, threads=args.threads,
    )
    if args.json != "-":
        print("\n".join(signals_lines(rep)))
    _write(args, rep.to_json(indent=2), rep.html())
    return 0


def signals_lines(rep: Any) -> list[str]:
    """What ``whylm signals`` prints: the verdict, each answer sentence with its verdict, risk and
    best evidence (or "nothing in the context supports this"), then the scores by plain name.

    Returns:
        the lines.
    """
    from explain.evidence_view import sentence_lines, shown_scores

    lines = ["response: " + rep.response.strip()]
    if rep.risk is None:
        lines.append(f"  verdict: none ({rep.risk_note})")
    else:
        lines.append(f"  verdict: {rep.verdict} (risk {rep.risk:.2f} that the answer is not supported; "
                     "supported < 0.3, likely hallucinated >= 0.7)")
    if rep.sentences:
        lines.append("  sentences:")
        lines += ["    " + line for line in sentence_lines(rep)]
    scores = shown_scores(rep.scores)
    if scores:
        lines.append("  scores (higher = more suspicious):")
        lines += [f"    {sc['name']}: {sc['value']:.3f}" + (f" (range {sc['range']})" if sc["range"] else "")
                  + f" [{sc['key']}]" for sc in scores]
    return lines


def run_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``whylm signals calibrate FILE --out cal.json``. Returns: the exit code."""
    from explain.signals import calibrate_signals, read_examples

    if not args.out:
        raise ExplainError("signals calibrate needs --out cal.json (where to write the calibration)")
    out = Path(args.out)  # checked before any work (explain.cli_io.check_outputs)
    examples = read_examples(args.labelled)
    lm = _load(args.model)
    cal = calibrate_signals(lm, examples, chat=not args.no_chat, progress=False if args.no_progress else None,
                            description=f"{len(examples)} labelled answers from {args.labelled.name}")
    cal.save(out)
    print(cal.summary())
    print(f"wrote {out}", file=sys.stderr)
    return 0


def run_fit_screen(args: argparse.Namespace) -> int:
    """Handler of ``whylm fit-screen``: states the cost, fits, writes the JSON. Returns: the exit code."""
    from explain.attribution.head_weights import fit_cost, fit_head_weights, haystack_cases, read_cases
    from explain.budget import check_budget
    from explain.model import cache_dir
    from explain.threads import threads

    check_threads(args.threads)
    if args.cases < 2:
        raise ExplainError(f"--cases must be 2 or more, got {args.cases}")
    if args.exact_top is not None and args.exact_top < 3:
        raise ExplainError(f"--exact-top must be 3 or more, got {args.exact_top}")
    if any(t < 32 for t in args.tokens):
        raise ExplainError(f"--tokens must be 32 or more, got {min(args.tokens)}")
    own = read_cases(args.cases_file) if args.cases_file else None
    if own is not None and len(own) < 2:
        raise ExplainError(f"fitting head weights needs at least 2 cases, {args.cases_file} has {len(own)}")
    lm = _load(args.model)  # --out was checked before any work (explain.cli_io.check_outputs)
    with threads(args.threads):
        cases = own if own is not None else haystack_cases(lm, args.cases, tuple(args.tokens), args.seed)
        folder = args.cache or cache_dir() / "head-weights"
        cost = fit_cost(lm, cases, folder, args.exact_top)
        print(f"estimate: {cost.summary()}", file=sys.stderr, flush=True)
        check_budget(cost, args.max_seconds)
        hw = fit_head_weights(lm, cases, cache=folder, exact_top=args.exact_top,
                              progress=False if args.no_progress else None)
    how = (f"--cases-file {args.cases_file.name}" if args.cases_file
           else f"--cases {args.cases} --tokens {' '.join(map(str, args.tokens))}")
    how += f" --exact-top {args.exact_top}" if args.exact_top else ""
    hw.fitted_on = f"`whylm fit-screen {how}` ({hw.fitted_on})"
    hw.save(args.out)
    m = hw.metrics
    if "recall3_top5_fitted" in m:
        print(f"held-out recall of the exact top 3 in the screen's top 5 ({m['held_out']} cases): "
              f"fitted {m['recall3_top5_fitted']:.2f}, plain attention {m['recall3_top5_plain']:.2f}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
