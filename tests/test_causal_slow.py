"""The causal pipeline on the embedded SmolLM2-135M (slow: loads the model)."""

from __future__ import annotations

import networkx as nx
import pytest

from causal import orient_pair, propose_graph
from causal.llm import LocalBackend

pytestmark = pytest.mark.slow


def test_orient_pair_embedded_is_order_invariant(embedded_lm):
    llm = LocalBackend(embedded_lm)
    a = orient_pair("altitude", "temperature", llm=llm)
    b = orient_pair("temperature", "altitude", llm=llm)
    assert a == b
    assert {a[0], a[1]} == {"altitude", "temperature"} and 0.5 <= a[2] <= 1
    assert llm.uncached_calls == 2  # the second call was answered from the cache


def test_propose_graph_embedded(embedded_lm):
    res = propose_graph(["smoking", "tar deposits", "lung cancer"], llm=embedded_lm, progress=False)
    assert nx.is_directed_acyclic_graph(res.graph) and res.queries == 6
    assert res.llm.startswith("local:")
    for _, _, d in res.graph.edges(data=True):
        assert 0 <= d["confidence"] <= 1
