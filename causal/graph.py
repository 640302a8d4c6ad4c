"""Causal graphs as whylm holds them: :class:`ProposedGraph`, DAG enforcement, reading graph files,
and the edges whose direction the data can see (compelled edges of the Markov equivalence class).

Example:
    >>> g = parse_graph("smoking -> tar\\ntar -> cancer")
    >>> sorted(g.edges)
    [('smoking', 'tar'), ('tar', 'cancer')]
    >>> sorted(compelled_edges(nx.DiGraph([("a", "c"), ("b", "c")])))
    [('a', 'c'), ('b', 'c')]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import networkx as nx
import numpy as np

from causal.errors import CausalError
from causal.plot import graph_figure


# --------------------------------------------------------------------------- result
@dataclass
class ProposedGraph:
    """A proposed causal graph and how it was obtained.

    Attributes:
        graph: ``networkx.DiGraph``, always acyclic; edge attributes ``confidence`` (in [0, 1])
            and ``evidence`` (where the edge came from).
        dropped: edges removed to break cycles, as ``(cause, effect, attrs)``.
        flagged: LLM edges removed because the data say the two variables are (conditionally)
            independent, as ``(cause, effect, attrs)`` with the p-value and separating set.
        queries: questions asked to the LLM (cached answers included).
        strategy: the strategy used.
        llm: the backend's ``name:model`` label.
        seconds: wall time.
    """

    graph: nx.DiGraph
    dropped: list[tuple[str, str, dict]] = field(default_factory=list)
    flagged: list[tuple[str, str, dict]] = field(default_factory=list)
    queries: int = 0
    strategy: str = ""
    llm: str = ""
    seconds: float = 0.0

    def to_json(self) -> str:
        """Serialise graph, dropped and flagged edges and metadata.

        Returns:
            a JSON string readable by :meth:`from_json`.
        """
        return json.dumps(
            {
                "nodes": list(self.graph.nodes),
                "edges": [
                    {"source": u, "target": v, **_jsonable(d)} for u, v, d in self.graph.edges(data=True)
                ],
                "dropped": [{"source": u, "target": v, **_jsonable(d)} for u, v, d in self.dropped],
                "flagged": [{"source": u, "target": v, **_jsonable(d)} for u, v, d in self.flagged],
                "queries": self.queries,
                "strategy": self.strategy,
                "llm": self.llm,
                "seconds": self.seconds,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "ProposedGraph":
        """Read what :meth:`to_json` wrote.

        Returns:
            a :class:`ProposedGraph`.
        """
        try:
            d = json.loads(text)
            g = nx.DiGraph()
            g.add_nodes_from(d["nodes"])
            for e in d["edges"]:
                e = dict(e)
                g.add_edge(e.pop("source"), e.pop("target"), **e)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CausalError(f"not a proposed-graph JSON: {exc}") from None

        def triples(key: str) -> list[tuple[str, str, dict]]:
            out = []
            for e in d.get(key, []):
                e = dict(e)
                out.append((e.pop("source"), e.pop("target"), e))
            return out

        return cls(
            graph=g,
            dropped=triples("dropped"),
            flagged=triples("flagged"),
            queries=int(d.get("queries", 0)),
            strategy=str(d.get("strategy", "")),
            llm=str(d.get("llm", "")),
            seconds=float(d.get("seconds", 0.0)),
        )

    def to_gml(self) -> str:
        """The graph in GML (edge attributes kept).

        Returns:
            GML text.
        """
        g = nx.DiGraph()
        g.add_nodes_from(self.graph.nodes)
        for u, v, d in self.graph.edges(data=True):
            g.add_edge(u, v, **{k: (x if isinstance(x, (int, float, str)) else str(x)) for k, x in d.items()})
        return "\n".join(nx.generate_gml(g))

    def figure(self, check: Any = None, title: str | None = None):
        """A plotly drawing: edges coloured by confidence, or by a :class:`GraphCheck`'s result.

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        return graph_figure(self.graph, check=check, title=title or f"proposed graph ({self.llm})")

    def summary(self) -> str:
        """A few lines: edges with confidence, dropped and flagged edges.

        Returns:
            text.
        """
        lines = [f"{self.graph.number_of_edges()} edges over {self.graph.number_of_nodes()} variables "
                 f"({self.strategy}, {self.queries} LLM questions, {self.llm})"]
        for u, v, d in sorted(self.graph.edges(data=True), key=lambda e: -e[2].get("confidence", 0)):
            lines.append(f"  {u} -> {v}  confidence {d.get('confidence', 0):.2f}  [{d.get('evidence', '')}]")
        for u, v, d in self.dropped:
            lines.append(f"  dropped (cycle) {u} -> {v}  confidence {d.get('confidence', 0):.2f}")
        for u, v, d in self.flagged:
            lines.append(f"  removed (independent in data, p={d.get('p_value', float('nan')):.3g}) {u} -> {v}")
        return "\n".join(lines)


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        elif isinstance(v, (list, tuple)):
            v = [str(x) for x in v]
        elif not isinstance(v, (int, float, str, bool)) and v is not None:
            v = str(v)
        out[k] = v
    return out


def to_dag(edges: Sequence[tuple[str, str, dict]], nodes: Sequence[str]) -> tuple[nx.DiGraph, list]:
    """Build a DAG adding edges most-confident first; an edge closing a cycle is dropped.

    Returns:
        (DAG, dropped edges as ``(u, v, attrs)``).

    Example:
        >>> g, dropped = to_dag([("a", "b", {"confidence": .9}), ("b", "a", {"confidence": .6})], ["a", "b"])
        >>> list(g.edges), [(u, v) for u, v, _ in dropped]
        ([('a', 'b')], [('b', 'a')])
    """
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    dropped = []
    for u, v, d in sorted(edges, key=lambda e: (-float(e[2].get("confidence", 0.0)), e[0], e[1])):
        if u == v or g.has_edge(u, v):
            continue
        if g.has_node(v) and g.has_node(u) and nx.has_path(g, v, u):
            dropped.append((u, v, dict(d, reason="would close a cycle")))
            continue
        g.add_edge(u, v, **d)
    return g, dropped


# --------------------------------------------------------------------------- strategies
# --------------------------------------------------------------------------- files
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


def as_digraph(graph: Any) -> nx.DiGraph:
    """Accept a DiGraph, a :class:`ProposedGraph`, or a path to a GML / JSON graph file.

    Returns:
        a ``networkx.DiGraph`` with string node names.

    Raises:
        CausalError: not a directed graph, or a cycle (named).
    """
    if hasattr(graph, "graph") and isinstance(getattr(graph, "graph"), nx.DiGraph):
        graph = graph.graph
    elif isinstance(graph, (str, bytes)) or hasattr(graph, "__fspath__"):
        graph = load_graph(graph)
    if not isinstance(graph, nx.DiGraph):
        raise CausalError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    g = nx.relabel_nodes(graph, {n: str(n) for n in graph.nodes}, copy=True)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        path = " -> ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])
        raise CausalError(f"graph has a cycle: {path}")
    return g


# --------------------------------------------------------------------------- equivalence
def compelled_edges(graph: nx.DiGraph) -> set[tuple[str, str]]:
    """Edges whose direction is fixed by the graph's independences (v-structures + Meek rules 1-2).

    Returns:
        the set of compelled ``(u, v)`` edges; the others are reversible within the Markov
        equivalence class, so data alone cannot tell their direction.

    Example:
        >>> sorted(compelled_edges(nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d")])))
        [('a', 'c'), ('b', 'c'), ('c', 'd')]
    """
    und = graph.to_undirected()
    directed: set[tuple[str, str]] = set()
    for v in graph.nodes:
        parents = list(graph.predecessors(v))
        for i, a in enumerate(parents):
            for b in parents[i + 1:]:
                if not und.has_edge(a, b):
                    directed.update({(a, v), (b, v)})
    changed = True
    while changed:
        changed = False
        for u, v in graph.edges:
            if (u, v) in directed:
                continue
            # R1: a -> u - v with a, v not adjacent  =>  u -> v
            if any((a, u) in directed and not und.has_edge(a, v) for a in graph.predecessors(u)):
                directed.add((u, v))
                changed = True
                continue
            # R2: u -> w -> v  =>  u -> v
            if any((u, w) in directed and (w, v) in directed for w in graph.successors(u)):
                directed.add((u, v))
                changed = True
    return directed
