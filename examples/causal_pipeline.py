"""Propose a causal graph with an LLM, check it against data with DoWhy, estimate an effect.

The data are simulated from a known graph (genotype -> smoking -> tar -> cancer, genotype ->
cancer), so every step can be compared with the truth. The pipeline runs to the end whatever the
LLM proposes: a graph the data reject is reported as rejected, and a graph with no directed path
from smoking to cancer is reported as implying no effect (the effect is then estimated on the
true graph only, for reference).

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


def report(graph: nx.DiGraph, data: pd.DataFrame, treatment: str = "smoking", outcome: str = "cancer",
           simulations: int = 20, out: Callable[[str], Any] = print) -> int:
    """Check ``graph`` against ``data``, compare it with the true graph, and estimate the effect of
    ``treatment`` on ``outcome`` when the graph implies one (always on the true graph too).

    Returns:
        1 when the data reject the graph, else 0.
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
    out(f"For reference, along the true graph: {reference.value:.3f} (simulated truth {TRUE_EFFECT:.3f}).")
    return 1 if check.falsified else 0


def main(argv: Sequence[str] | None = None, llm: Any = None) -> int:
    """Run the pipeline; ``llm`` (a backend object) overrides the ``--llm*`` options and ``--model``.

    Returns:
        the exit status: 0 the proposal is not rejected, 1 rejected, 2 an error (one line).
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
        return report(proposal.graph, data, simulations=args.simulations)
    except (WhylmError, CausalError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
