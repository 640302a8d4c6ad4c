"""LLM-proposed causal graphs, always acyclic, checked against data with DoWhy.

Examples:
    >>> from causal import propose_graph, check_graph          # doctest: +SKIP
    >>> g = propose_graph(["smoking", "tar deposits", "lung cancer"])   # doctest: +SKIP
    >>> print(check_graph(g.graph, df).summary())                       # doctest: +SKIP
"""

from causal.check import GraphCheck, check_graph
from causal.confounders import ConfounderSuggestions, suggest_confounders
from causal.critique import GraphCritique, critique_graph
from causal.effect import EffectEstimate, estimate_effect
from causal.graph import ProposedGraph
from causal.judge import JudgeResult, evaluate_judge
from causal.errors import CausalError
from causal.llm import LLMBackend, LocalBackend, OpenAIBackend, ReplayBackend, get_backend
from causal.metrics import compare_graphs, edge_scores, orientation_accuracy, shd
from causal.propose import orient_pair, propose_graph

__all__ = [
    "propose_graph", "orient_pair", "evaluate_judge", "JudgeResult", "check_graph", "estimate_effect", "ProposedGraph",
    "GraphCheck", "EffectEstimate", "CausalError", "LLMBackend", "LocalBackend", "OpenAIBackend",
    "ReplayBackend", "get_backend", "shd", "edge_scores", "orientation_accuracy", "compare_graphs",
    "suggest_confounders", "ConfounderSuggestions", "critique_graph", "GraphCritique",
]
