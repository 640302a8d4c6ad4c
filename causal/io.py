"""Read and write causal graphs: GML, our JSON (``ProposedGraph.to_json``), node-link JSON,
and a plain edge list (``a -> b`` per line).

Example:
    >>> g = parse_graph("smoking -> tar\\ntar -> cancer")
    >>> sorted(g.edges)
    [('smoking', 'tar'), ('tar', 'cancer')]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import networkx as nx

from causal.errors import CausalError


def parse_graph(text: str) -> nx.DiGraph:
    """Parse GML, JSON (ours or node-link) or an edge list (``a -> b`` lines, ``#`` comments).

    Returns:
        a ``networkx.DiGraph``.
    """
    s = text.strip()
    if not s:
        raise CausalError("graph file is empty")
    if s.startswith("{"):
        try:
            d = json.loads(s)
        except json.JSONDecodeError as exc:
            raise CausalError(f"graph JSON is invalid: {exc}") from None
        if "edges" in d and "nodes" in d and all(isinstance(n, str) for n in d["nodes"]):
            from causal.propose import ProposedGraph

            return ProposedGraph.from_json(s).graph
        try:
            return nx.node_link_graph(d, directed=True, edges="links" if "links" in d else "edges")
        except Exception as exc:  # noqa: BLE001 - networkx raises several types
            raise CausalError(f"graph JSON is not a node-link graph: {exc}") from None
    if s.startswith("graph") or "\ngraph" in s[:200] or s.startswith("creator"):
        try:
            g = nx.parse_gml(s, label="label")
        except Exception as exc:  # noqa: BLE001
            raise CausalError(f"graph GML is invalid: {str(exc)[:160]}") from None
        if not g.is_directed():
            raise CausalError("graph GML is undirected: add 'directed 1'")
        return nx.DiGraph(g)
    g = nx.DiGraph()
    for num, line in enumerate(s.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "->" not in line:
            if line:
                g.add_node(line)
            continue
        parts = [p.strip() for p in line.split("->")]
        if any(not p for p in parts):
            raise CausalError(f"graph line {num} is not 'a -> b': {line!r}")
        for a, b in zip(parts, parts[1:]):
            g.add_edge(a, b)
    if g.number_of_nodes() == 0:
        raise CausalError("graph file has no nodes")
    return g


def load_graph(path: str | os.PathLike | Any) -> nx.DiGraph:
    """Read a graph file (GML, JSON or edge list).

    Returns:
        a ``networkx.DiGraph``.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CausalError(f"graph file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CausalError(f"cannot read graph file {p}: {exc}") from None
    return parse_graph(text)


def load_csv(path: str | os.PathLike) -> Any:
    """Read a CSV data file.

    Returns:
        a pandas DataFrame.
    """
    import pandas as pd

    p = Path(path).expanduser()
    if not p.exists():
        raise CausalError(f"data file not found: {p}")
    try:
        return pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - pandas raises several types
        raise CausalError(f"cannot read CSV {p}: {str(exc).splitlines()[0][:160]}") from None
