"""Propose a causal graph with an LLM, check it against data with DoWhy, estimate an effect.

Runs offline on the embedded SmolLM2-135M (a weak judge of causality: treat its graph as a
draft). Point it at a stronger model with e.g. ``--llm ollama:llama3.1`` or
``--llm http://127.0.0.1:8000/v1:Qwen2.5-7B-Instruct`` (``OPENAI_API_KEY`` for ``openai:...``).

Example:
    python examples/causal_pipeline.py --llm ollama:llama3.1
"""

from __future__ import annotations

import argparse

import networkx as nx
import numpy as np
import pandas as pd

from causal import check_graph, estimate_effect, propose_graph


def simulated_data(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Smoking -> tar -> cancer, with genotype confounding smoking and cancer."""
    rng = np.random.default_rng(seed)
    genotype = rng.normal(size=n)
    smoking = 0.8 * genotype + rng.normal(size=n)
    tar = 1.2 * smoking + rng.normal(size=n)
    cancer = 0.9 * tar + 0.7 * genotype + rng.normal(size=n)
    return pd.DataFrame({"genotype": genotype, "smoking": smoking, "tar": tar, "cancer": cancer})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llm", default=None, help="backend spec (default: embedded model)")
    args = p.parse_args()
    data = simulated_data()
    descriptions = {"genotype": "a genetic variant", "smoking": "cigarettes smoked per day",
                    "tar": "tar deposits in the lungs", "cancer": "lung cancer severity"}
    proposal = propose_graph(list(data.columns), llm=args.llm, descriptions=descriptions, data=data)
    print(proposal.summary(), end="\n\n")
    check = check_graph(proposal.graph, data, test="fisher_z")
    print(check.summary(), end="\n\n")
    if nx.has_path(proposal.graph, "smoking", "cancer"):
        effect = estimate_effect(proposal.graph, data, treatment="smoking", outcome="cancer")
        print(effect.summary())
    else:
        print("the proposed graph has no directed path from smoking to cancer: no effect to estimate")


if __name__ == "__main__":
    main()
