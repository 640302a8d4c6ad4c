"""``whylm causal ...`` subcommands: propose, edit, check, effect, confounders, critique, judge.

The top-level ``whylm`` parser calls :func:`add_parser`; each handler takes the parsed namespace
and returns an exit code. Errors are :class:`causal.errors.CausalError` (a ``ValueError``), which
the top level prints as ``error: <message>``.

Examples:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="whylm"); sub = p.add_subparsers(dest="command")
    >>> add_parser(sub)
    >>> args = p.parse_args(["causal", "check", "g.gml", "d.csv", "--alpha", "0.01"])
    >>> args.alpha, args.func.__name__
    (0.01, 'run_check')
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from causal.errors import CausalError
from explain.cli_io import write_json

PROPOSE_EXAMPLE = """example:
  whylm causal propose smoking "tar deposits" "lung cancer" --out graph.gml
  whylm causal propose x y z --data data.csv --llm ollama:llama3.1 --json proposal.json
  whylm causal propose x y z --llm-url http://127.0.0.1:8000/v1 --llm-model qwen2.5-7b
  (--llm: openai:gpt-4o-mini (key from $OPENAI_API_KEY) | ollama:MODEL | replay:answers.json;
   default: the embedded SmolLM2-135M. Any other server: --llm-url URL --llm-model NAME, with
   --api-key-env NAME if it needs a key: only that variable's key is sent to it)
  Arrows are drawn only where the model's measured accuracy ('whylm causal judge') makes its answer
  confident; the other pairs are listed as undecided. --no-judge: the model's own, uncalibrated answers."""

CHECK_EXAMPLE = """example:
  whylm causal check graph.gml data.csv --alpha 0.05 --json check.json
  (graph: GML, JSON from 'propose', or lines like 'a -> b'; node names = CSV columns)
  (--test auto: fisher_z when every column is continuous, chi2 when every column is
   categorical, mixed (regression tests) for a mix; chi2 never runs on continuous columns)"""

CHECK_EXIT = """exit status:
  0  not rejected: the data do not contradict the graph
  1  rejected: the data contradict the graph (the first line says which test decided)
  2  error: bad input (one line on stderr: missing file, unknown column, ...)"""

JUDGE_EXAMPLE = """example:
  whylm causal judge                      (the embedded model: its shipped figure, instantly)
  whylm causal judge --llm ollama:llama3.1 --json judge.json
  (asks each of the 106 Tübingen pairs in both orders; the figure is cached per backend and model)"""

EFFECT_EXAMPLE = """example:
  whylm causal effect graph.gml data.csv --treatment smoking --outcome "lung cancer" --json effect.json
  (prints the effect, the adjustment set, instruments and front-door set DoWhy finds, and how strong an
   unobserved confounder would have to be to move the estimate to zero)"""

EDIT_EXAMPLE = """example:
  whylm causal edit graph.gml --add "smoking -> tar" --reverse "c -> d" --remove "x -> y" --out new.gml
  whylm causal edit proposal.json --add "tar -> lung cancer" --out edited.json
  (one edge per option, repeat the option for more; a proposal JSON keeps each edge's origin:
   judge, data or user; an edit that closes a cycle is refused with the cycle named)"""

CONFOUNDERS_EXAMPLE = """example:
  whylm causal confounders smoking "lung cancer" --candidates genes age "air pollution"
  whylm causal confounders smoking "lung cancer" --candidates genes --llm ollama:llama3.1 --json c.json
  (asks the judge whether each candidate causes both; a judge at chance, like the embedded model,
   suggests nothing and says why)"""

CRITIQUE_EXAMPLE = """example:
  whylm causal critique graph.gml --nodes genes --llm ollama:llama3.1 --json critique.json
  (edges the judge confidently reverses, and variables it says cause both ends of an edge)"""


def _add_judge_flags(p: argparse.ArgumentParser, needs: str, run: str) -> None:
    """Add --threshold, --no-judge and --max-seconds, read back by :func:`_judged_options`."""
    p.add_argument("--threshold", type=float, default=0.75,
                   help=f"calibrated probability {needs} (default 0.75)")
    p.add_argument("--no-judge", action="store_true",
                   help="use the model's own, uncalibrated probabilities (the output says so)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help=f"refuse {run} predicted to take longer (default 600)")


def add_parser(subparsers: Any) -> None:
    """Register ``causal`` with its ``propose``, ``check``, ``effect`` and ``judge`` subcommands.

    Returns:
        None.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    causal = subparsers.add_parser(
        "causal", help="LLM-proposed causal graphs checked with DoWhy", formatter_class=fmt,
        epilog="\n\n".join([PROPOSE_EXAMPLE, EDIT_EXAMPLE, CHECK_EXAMPLE, EFFECT_EXAMPLE, CONFOUNDERS_EXAMPLE,
                              CRITIQUE_EXAMPLE, JUDGE_EXAMPLE]),
        description="Propose a causal graph with an LLM, edit it, check it against data, estimate effects.",
    )
    sub = causal.add_subparsers(dest="causal_command",
                                metavar="{propose,edit,check,effect,confounders,critique,judge}")
    sub.required = True

    p = sub.add_parser("propose", help="propose a causal DAG over named variables",
                       formatter_class=fmt, epilog=PROPOSE_EXAMPLE)
    p.add_argument("variables", nargs="+", metavar="VAR", help="variable names (with --data: column names)")
    add_llm_arguments(p)
    p.add_argument("--descriptions", default=None, metavar="F",
                   help="JSON file {variable: description}")
    p.add_argument("--data", default=None, metavar="CSV", help="data for the hybrid proposal")
    p.add_argument("--strategy", default="auto", choices=["auto", "pairwise", "ordering", "hybrid"])
    p.add_argument("--out", default=None, metavar="graph.gml|json", help="write the graph")
    p.add_argument("--json", default=None, metavar="OUT", help="write the full result as JSON")
    _add_judge_flags(p, "an arrow needs; other pairs stay undecided", "a proposal")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_propose)

    j = sub.add_parser("judge", help="measure how well an LLM orients cause and effect (Tübingen pairs)",
                       formatter_class=fmt, epilog=JUDGE_EXAMPLE)
    add_llm_arguments(j)
    j.add_argument("--n-pairs", type=int, default=None, metavar="N", help="a seeded subset of N pairs")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--no-cache", action="store_true", help="measure again instead of reading the stored figure")
    j.add_argument("--max-seconds", type=float, default=None, help="refuse a longer run (default 600)")
    j.add_argument("--json", default=None, metavar="OUT", help="write the result (with every pair's answer)")
    j.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    j.set_defaults(func=run_judge)

    c = sub.add_parser("check", help="check a causal graph against data (DoWhy falsification)",
                       formatter_class=fmt, epilog=CHECK_EXAMPLE + "\n\n" + CHECK_EXIT)
    c.add_argument("graph", metavar="GRAPH", help="GML, JSON or edge-list file")
    c.add_argument("data", metavar="DATA.csv")
    c.add_argument("--test", default="auto", choices=["auto", "fisher_z", "chi2", "mixed", "kernel"],
                   help="independence test (default: auto, chosen from the column types)")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    c.add_argument("--no-permutation", action="store_true",
                   help="skip DoWhy's permutation test (only the local independence tests)")
    c.add_argument("--json", default=None, metavar="OUT")
    c.set_defaults(func=run_check)

    e = sub.add_parser("effect", help="estimate and refute a causal effect (DoWhy)",
                       formatter_class=fmt, epilog=EFFECT_EXAMPLE)
    e.add_argument("graph", metavar="GRAPH")
    e.add_argument("data", metavar="DATA.csv")
    e.add_argument("--treatment", required=True)
    e.add_argument("--outcome", required=True)
    e.add_argument("--method", default="backdoor.linear_regression")
    e.add_argument("--json", default=None, metavar="OUT")
    e.set_defaults(func=run_effect)

    ed = sub.add_parser("edit", help="add, remove or reverse edges of a graph (a cycle is refused)",
                        formatter_class=fmt, epilog=EDIT_EXAMPLE)
    ed.add_argument("graph", metavar="GRAPH", help="GML, proposal JSON or edge-list file")
    ed.add_argument("--add", action="append", default=[], metavar='"a -> b"', help="draw an arrow")
    ed.add_argument("--remove", action="append", default=[], metavar='"a -> b"',
                    help="delete an arrow (or an undecided pair: no direct edge)")
    ed.add_argument("--reverse", action="append", default=[], metavar='"a -> b"', help="turn a -> b into b -> a")
    ed.add_argument("--out", required=True, metavar="new.gml|json", help="write the edited graph")
    ed.add_argument("--json", default=None, metavar="OUT", help="write the full result as JSON")
    ed.set_defaults(func=run_edit)

    for name, helptext, epilog in (
        ("confounders", "ask the judge which candidates confound a treatment and an outcome", CONFOUNDERS_EXAMPLE),
        ("critique", "ask the judge for doubtful edges and missing confounders of a graph", CRITIQUE_EXAMPLE),
    ):
        q = sub.add_parser(name, help=helptext, formatter_class=fmt, epilog=epilog)
        if name == "confounders":
            q.add_argument("treatment")
            q.add_argument("outcome")
            q.add_argument("--candidates", nargs="+", default=None, metavar="VAR",
                           help="the variables to ask about (default: those of --descriptions)")
            q.set_defaults(func=run_confounders)
        else:
            q.add_argument("graph", metavar="GRAPH", help="GML, JSON or edge-list file")
            q.add_argument("--nodes", nargs="+", default=[], metavar="VAR",
                           help="variables outside the graph to consider as missing confounders")
            q.set_defaults(func=run_critique)
        add_llm_arguments(q)
        q.add_argument("--descriptions", default=None, metavar="F", help="JSON file {variable: description}")
        _add_judge_flags(q, "a finding needs", "a run")
        q.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON")
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--llm``, ``--llm-url``, ``--llm-model`` and ``--api-key-env`` to a subcommand.

    Returns:
        None.

    Examples:
        >>> p = argparse.ArgumentParser(); add_llm_arguments(p)
        >>> a = p.parse_args(["--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"])
        >>> a.llm_url, a.llm_model, a.llm
        ('http://127.0.0.1:9/v1', 'm', None)
    """
    g = parser.add_argument_group("LLM backend")
    g.add_argument("--llm", default=None, metavar="SPEC",
                   help="openai:MODEL | ollama:MODEL | replay:FILE.json (default: the embedded model)")
    g.add_argument("--llm-url", default=None, metavar="URL",
                   help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (with --llm-model)")
    g.add_argument("--llm-model", default=None, metavar="NAME", help="the model served at --llm-url")
    g.add_argument("--api-key-env", default=None, metavar="NAME",
                   help="environment variable holding the key for this server (https, or a server on "
                        "this machine); no other key is ever sent to it")


def llm_from_args(args: argparse.Namespace) -> Any:
    """The LLM backend the ``--llm*`` options select (``None``: the embedded model).

    Returns:
        a backend, or None.

    Examples:
        >>> ns = argparse.Namespace(llm=None, llm_url="http://127.0.0.1:9/v1", llm_model="m:7b",
        ...                         api_key_env=None)
        >>> llm_from_args(ns).model
        'm:7b'
    """
    from causal.llm import OpenAIBackend, get_backend

    url, model, key_env = args.llm_url, args.llm_model, args.api_key_env
    if url:
        if args.llm:
            raise CausalError("give either --llm or --llm-url, not both")
        if not model:
            raise CausalError("--llm-url needs --llm-model NAME (the model the server serves)")
        return OpenAIBackend(url, model, api_key_env=key_env)
    if model:
        raise CausalError("--llm-model goes with --llm-url (for OpenAI or Ollama write --llm openai:MODEL)")
    if args.llm is None:
        if key_env:
            raise CausalError("--api-key-env goes with --llm-url or --llm openai:MODEL")
        return None
    return get_backend(args.llm, api_key_env=key_env) if key_env else get_backend(args.llm)


def _write_json(path: str | None, payload: dict) -> None:
    write_json(path, payload)  # the one JSON writer of every whylm subcommand


def read_descriptions(path: str | None) -> dict | None:
    """The ``--descriptions`` file: a JSON object ``{variable: description}`` (None without one).

    Returns:
        the dict, or None.
    """
    if not path:
        return None
    try:
        descriptions = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CausalError(f"descriptions file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CausalError(f"descriptions file is not JSON: {exc}") from None
    if not isinstance(descriptions, dict):
        raise CausalError("descriptions file must hold a JSON object {variable: description}")
    return descriptions


def _announce(cost: Any) -> None:
    print(cost.summary(), file=sys.stderr, flush=True)


def _write_graph(path: str, res: Any) -> None:
    text = res.to_json() if path.lower().endswith(".json") else res.to_gml()
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CausalError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_proposal(path: str) -> Any:
    """A graph file as a :class:`causal.graph.ProposedGraph`: a proposal JSON as saved (undecided
    pairs and each edge's origin kept), any other graph with its edges' ``origin`` attributes or,
    without them, as the user's.

    Returns:
        a ProposedGraph.
    """
    from causal.graph import ProposedGraph, edge_origin, load_graph

    p = Path(path).expanduser()
    if p.suffix.lower() == ".json" and p.is_file():
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise CausalError(f"graph JSON is invalid: {exc}") from None
        if isinstance(d, dict) and "nodes" in d and "edges" in d and all(isinstance(n, str) for n in d["nodes"]):
            return ProposedGraph.from_dict(d)
    g = load_graph(path)
    for _, _, attrs in g.edges(data=True):
        attrs["origin"] = edge_origin(attrs)
    return ProposedGraph(g, strategy="file", llm="")


def _report(args: argparse.Namespace, res: Any, payload: dict | None = None) -> None:
    """Write ``payload`` (default ``res.to_dict()``) to ``--json`` and print the summary unless the
    JSON goes to stdout."""
    _write_json(args.json, res.to_dict() if payload is None else payload)
    if args.json != "-":
        print(res.summary())


def _judged_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every judged-question command passes from its flags (descriptions,
    judge, threshold, time limit, cost announcement, progress). Returns: a dict."""
    return dict(descriptions=read_descriptions(args.descriptions), judge=False if args.no_judge else None,
                threshold=args.threshold, max_seconds=args.max_seconds, on_estimate=_announce,
                progress=False if args.no_progress else None)


def run_propose(args: argparse.Namespace) -> int:
    """Handle ``whylm causal propose``. Returns: exit code 0."""
    from causal.data import load_csv
    from causal.propose import propose_graph

    descriptions = read_descriptions(args.descriptions)
    data = load_csv(args.data) if args.data else None
    res = propose_graph(args.variables, llm=llm_from_args(args), descriptions=descriptions, data=data,
                        strategy=args.strategy, progress=False if args.no_progress else None,
                        judge=False if args.no_judge else None, threshold=args.threshold,
                        max_seconds=args.max_seconds,
                        on_estimate=_announce)
    if args.out:
        _write_graph(args.out, res)
    if args.json:
        _write_json(args.json, res.to_dict())
    if args.json != "-":
        print(res.summary())
    return 0


def run_judge(args: argparse.Namespace) -> int:
    """Handle ``whylm causal judge``. Returns: exit code 0."""
    from causal.judge import evaluate_judge

    res = evaluate_judge(llm_from_args(args), n_pairs=args.n_pairs, seed=args.seed,
                         progress=False if args.no_progress else None, max_seconds=args.max_seconds,
                         use_cache=not args.no_cache)
    _report(args, res)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Handle ``whylm causal check``.

    Returns:
        0 when the graph is not rejected, 1 when it is (errors raise :class:`CausalError`: exit 2).
    """
    from causal.check import check_graph
    from causal.data import load_csv
    from causal.graph import load_graph

    res = check_graph(load_graph(args.graph), load_csv(args.data), test=args.test, alpha=args.alpha,
                      permutation_test=not getattr(args, "no_permutation", False))
    _report(args, res, json.loads(res.to_json()))
    return 1 if res.falsified else 0


def run_effect(args: argparse.Namespace) -> int:
    """Handle ``whylm causal effect``. Returns: exit code 0."""
    from causal.data import load_csv
    from causal.effect import estimate_effect
    from causal.graph import load_graph

    res = estimate_effect(load_graph(args.graph), load_csv(args.data), args.treatment, args.outcome,
                          method=args.method)
    _report(args, res, json.loads(res.to_json()))
    return 0


def run_edit(args: argparse.Namespace) -> int:
    """Handle ``whylm causal edit``. Returns: exit code 0 (a bad edit raises: exit 2)."""
    if not (args.add or args.remove or args.reverse):
        raise CausalError("nothing to edit: give --add, --remove or --reverse \"a -> b\"")
    res = read_proposal(args.graph).with_edges(add=args.add, remove=args.remove, reverse=args.reverse)
    _write_graph(args.out, res)
    _report(args, res)
    return 0


def run_confounders(args: argparse.Namespace) -> int:
    """Handle ``whylm causal confounders``. Returns: exit code 0."""
    from causal.confounders import suggest_confounders

    res = suggest_confounders(args.treatment, args.outcome, candidates=args.candidates, llm=llm_from_args(args),
                              **_judged_options(args))
    _report(args, res)
    return 0


def run_critique(args: argparse.Namespace) -> int:
    """Handle ``whylm causal critique``. Returns: exit code 0."""
    from causal.critique import critique_graph
    from causal.graph import load_graph

    res = critique_graph(load_graph(args.graph), llm=llm_from_args(args), nodes=args.nodes,
                         **_judged_options(args))
    _report(args, res)
    return 0
