"""Propose a causal graph with an LLM, check it against data with DoWhy, estimate an effect.

The data are simulated from a known graph (genotype -> smoking -> tar -> cancer, genotype ->
cancer), so every step can be compared with the truth. The pipeline runs to the end whatever the
LLM proposes and ends with what the check found, in words: whether the data reject the proposed
graph, which implied independence fails most clearly, and what to change. A graph with no directed
path from smoking to cancer is reported as implying no effect (the effect is then estimated on the
true graph only, for reference). The script exits 0 when the pipeline ran, whatever the verdict
(the verdict is a finding, not a failure), and 2 on an error.

Runs offline on the embedded SmolLM2-135M (a weak judge of causality: treat its graph as a
draft). Point it at a stronger model with e.g. ``--llm ollama:llama3.1`` or
``--llm-url http://127.0.0.1:8000/v1 --llm-model qwen2.5-7b`` (the same options as
``whylm causal propose``), or at a local model folder with ``--model DIR``.

Example:
    python examples/causal_pipeline.py
    python examples/causal_pipeline.py --llm ollama:llama3.1 --rows 5000
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

import networkx as nx
import numpy as np
import pandas as pd

from causal import CausalError, check_graph, compare_graphs, estimate_effect, propose_graph
from causal.cli import add_llm_arguments, llm_from_args
from explain.errors import WhylmError, one_line

TRUE_GRAPH = nx.DiGraph([("genotype", "smoking"), ("smoking", "tar"), ("tar", "cancer"),
                         ("genotype", "cancer")])
TRUE_EFFECT = 1.2 * 0.9  # smoking -> tar -> cancer, the only directed path
DESCRIPTIONS = {"genotype": "a genetic variant", "smoking": "cigarettes smoked per day",
                "tar": "tar deposits in the lungs", "cancer": "lung cancer severity"}


def simulated_data(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Rows drawn from :data:`TRUE_GRAPH` with linear Gaussian mechanisms.

    Returns:
        a DataFrame with columns genotype, smoking, tar, cancer.

    Example:
        >>> simulated_data(5).columns.tolist()
        ['genotype', 'smoking', 'tar', 'cancer']
    """
    rng = np.random.default_rng(seed)
    genotype = rng.normal(size=n)
    smoking = 0.8 * genotype + rng.normal(size=n)
    tar = 1.2 * smoking + rng.normal(size=n)
    cancer = 0.9 * tar + 0.7 * genotype + rng.normal(size=n)
    return pd.DataFrame({"genotype": genotype, "smoking": smoking, "tar": tar, "cancer": cancer})


def findings(check: Any) -> str:
    """What a graph check found, in plain words: the verdict, the clearest failure, what to change.

    Returns:
        a short paragraph.

    Example:
        >>> from causal.check import GraphCheck
        >>> chk = GraphCheck(falsified=False, dowhy_falsified=None, falsifiable=None, violation_rate=0.0,
        ...                  n_tests=3, n_violations=0, alpha=0.05, excess_p_value=1.0,
        ...                  permutation_p_value=None, strong_violations=0, nodes=["a", "b"], edges=[("a", "b")])
        >>> findings(chk).split(":")[0]
        'What the check found'
    """
    tested = f"{check.n_violations} of the {check.n_tests} independences the graph implies"
    if check.falsified:
        why = (f"{tested} do not hold in the data, more than the {check.alpha:.0%} that chance explains."
               if check.local_rejects else "it fits them no better than random relabelings of its variables "
               "(DoWhy's permutation test).")
        words = [f"What the check found: the data REJECT the proposed graph: {why}"]
        if check.violations:
            v = check.violations[0]
            p = f"p = {v['p_value']:.2g}" if v["p_value"] > 0 else "p < 1e-300"
            words.append(f"The clearest failure: the graph implies {v['statement']} (_||_: independent), but "
                         f"the data show a dependence ({p}): an edge is missing or points the wrong way.")
        if check.suggestions:
            words.append(f"A change the data support: {check.suggestions[0]}.")
        words.append("Treat the proposal as a draft: edit it (whylm causal edit) and check it again.")
    elif check.n_tests == 0:
        words = ["What the check found: the data do not reject the proposed graph, but could not: it links "
                 "every pair of variables, so it implies no independence to test."]
    else:
        words = [f"What the check found: the data do not reject the proposed graph: {tested} fail, "
                 f"about what chance explains at alpha {check.alpha}."]
        if check.untestable_edges:
            words.append(f"{len(check.untestable_edges)} edge direction(s) cannot be tested with these data; "
                         "not rejected is not proven.")
    return " ".join(words)


def report(graph: nx.DiGraph, data: pd.DataFrame, treatment: str = "smoking", outcome: str = "cancer",
           simulations: int = 20, out: Callable[[str], Any] = print) -> Any:
    """Check ``graph`` against ``data``, compare it with the true graph, and estimate the effect of
    ``treatment`` on ``outcome`` when the graph implies one (always on the true graph too); the
    findings in words come last.

    Returns:
        the :class:`causal.check.GraphCheck` of ``graph``.
    """
    check = check_graph(graph, data)
    out("Check against the data:\n" + check.summary() + "\n")
    scores = compare_graphs(TRUE_GRAPH, graph)
    out(f"Against the true graph: SHD {scores['shd']:.0f}, oriented-edge F1 {scores['f1']:.2f} "
        f"({int(scores['n_pred'])} proposed edges, {int(scores['n_true'])} true)\n")
    if graph.has_node(treatment) and graph.has_node(outcome) and nx.has_path(graph, treatment, outcome):
        effect = estimate_effect(graph, data, treatment, outcome, simulations=simulations)
        out("Effect along the proposed graph:\n" + effect.summary() + "\n")
    else:
        out(f"The proposed graph has no directed path from {treatment} to {outcome}: it implies no effect "
            "to estimate, so none is estimated from it.\n")
    reference = estimate_effect(TRUE_GRAPH, data, treatment, outcome, simulations=simulations)
    out(f"For reference, along the true graph: {reference.value:.3f} (simulated truth {TRUE_EFFECT:.3f}).\n")
    out(findings(check))
    return check


def main(argv: Sequence[str] | None = None, llm: Any = None) -> int:
    """Run the pipeline; ``llm`` (a backend object) overrides the ``--llm*`` options and ``--model``.

    Returns:
        the exit status: 0 the pipeline ran (whatever the check found), 2 an error (one line).
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_llm_arguments(p)
    p.add_argument("--model", default=None, metavar="DIR", help="a local Hugging Face model folder")
    p.add_argument("--rows", type=int, default=2000, help="simulated rows (default 2000)")
    p.add_argument("--simulations", type=int, default=20, help="refuter simulations (default 20)")
    args = p.parse_args(argv)
    try:
        if llm is None and args.model:
            from explain import LanguageModel

            llm = LanguageModel.load(args.model)
        if llm is None:
            llm = llm_from_args(args)
        data = simulated_data(args.rows)
        proposal = propose_graph(list(data.columns), llm=llm,
                                 descriptions=DESCRIPTIONS, data=data, progress=False)
        print(proposal.summary(), end="\n\n")
        report(proposal.graph, data, simulations=args.simulations)
        return 0
    except (WhylmError, CausalError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
