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
from causal.judge import JudgeResult
from causal.plot import graph_figure
from explain.serialize import Result, jsonable


# --------------------------------------------------------------------------- result
_FLOAT_KEYS = ("confidence", "p", "p_raw", "p_value", "p_no_edge")  # None read back as NaN


def _triples(rows: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    return [{"source": u, "target": v, **jsonable(dict(d))} for u, v, d in rows]


def _read_triples(rows: Any) -> list[tuple[str, str, dict]]:
    out = []
    for e in rows or []:
        e = dict(e)
        u, v = e.pop("source"), e.pop("target")
        for k in _FLOAT_KEYS:
            if k in e and e[k] is None:
                e[k] = float("nan")
        out.append((u, v, e))
    return out


@dataclass
class ProposedGraph(Result):
    """A proposed causal graph and how it was obtained.

    Attributes:
        graph: ``networkx.DiGraph`` of the *committed* edges, always acyclic; edge attributes
            ``confidence`` (calibrated against the judge's measured accuracy, in [0, 1]) and
            ``evidence`` (where the edge came from).
        undecided: pairs the judge could not orient confidently, as ``(a, b, attrs)`` with
            ``attrs["p"]`` the calibrated P(a -> b) and ``attrs["p_raw"]`` the model's own; drawn
            as dashed lines, never as arrows.
        dropped: edges removed to break cycles, as ``(cause, effect, attrs)``.
        flagged: LLM edges removed because the data say the two variables are (conditionally)
            independent, as ``(cause, effect, attrs)`` with the p-value and separating set.
        queries: questions asked to the LLM (cached answers included).
        strategy: the strategy used.
        llm: the backend's ``name:model`` label.
        seconds: wall time.
        judge: the judge's measured orientation accuracy (:class:`causal.judge.JudgeResult`
            without its per-pair answers), or None when the proposal was not calibrated.
        threshold: calibrated confidence an LLM orientation needs to be committed.

    Example:
        >>> g = ProposedGraph(nx.DiGraph([("a", "b")]), undecided=[("b", "c", {"p": 0.5})])
        >>> ProposedGraph.from_json(g.to_json()).to_dict() == g.to_dict()
        True
    """

    graph: nx.DiGraph
    undecided: list[tuple[str, str, dict]] = field(default_factory=list)
    dropped: list[tuple[str, str, dict]] = field(default_factory=list)
    flagged: list[tuple[str, str, dict]] = field(default_factory=list)
    queries: int = 0
    strategy: str = ""
    llm: str = ""
    seconds: float = 0.0
    judge: Any = None
    threshold: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Nodes, committed edges, undecided, dropped and flagged pairs, judge and metadata.

        Returns:
            a dict of plain JSON values (NaN and infinities as ``None``) for :meth:`from_dict`.
        """
        return jsonable({
            "nodes": list(self.graph.nodes),
            "edges": _triples(self.graph.edges(data=True)),
            "undecided": _triples(self.undecided),
            "dropped": _triples(self.dropped),
            "flagged": _triples(self.flagged),
            "queries": self.queries, "strategy": self.strategy, "llm": self.llm,
            "seconds": self.seconds, "threshold": self.threshold,
            "judge": self.judge.to_dict() if self.judge is not None else None,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProposedGraph":
        """Rebuild a proposal from :meth:`to_dict` output (older files without ``undecided`` too).

        Returns:
            a :class:`ProposedGraph`.
        """
        try:
            g = nx.DiGraph()
            g.add_nodes_from(d["nodes"])
            for u, v, attrs in _read_triples(d["edges"]):
                g.add_edge(u, v, **attrs)
            judge = JudgeResult.from_dict(d["judge"]) if d.get("judge") else None
            threshold = d.get("threshold")
            return cls(
                graph=g,
                undecided=_read_triples(d.get("undecided")),
                dropped=_read_triples(d.get("dropped")),
                flagged=_read_triples(d.get("flagged")),
                queries=int(d.get("queries", 0)),
                strategy=str(d.get("strategy", "")),
                llm=str(d.get("llm", "")),
                seconds=float("nan") if d.get("seconds", 0.0) is None else float(d.get("seconds", 0.0)),
                judge=judge,
                threshold=float("nan") if threshold is None else float(threshold),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CausalError(f"not a proposed-graph JSON: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> "ProposedGraph":
        """Read what :meth:`to_json` wrote.

        Returns:
            a :class:`ProposedGraph`.
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CausalError(f"not a proposed-graph JSON: {exc}") from None
        if not isinstance(d, dict):
            raise CausalError("not a proposed-graph JSON: expected an object")
        return cls.from_dict(d)

    def to_json(self, indent: int | None = 1) -> str:
        """The proposal as JSON text (NaN and infinities as ``null``). Returns: the text."""
        return super().to_json(indent=indent)

    def to_gml(self) -> str:
        """The committed graph in GML (edge attributes kept; undecided pairs are not edges).

        Returns:
            GML text.
        """
        g = nx.DiGraph()
        g.add_nodes_from(self.graph.nodes)
        for u, v, d in self.graph.edges(data=True):
            g.add_edge(u, v, **{k: (x if isinstance(x, (int, float, str)) else str(x)) for k, x in d.items()})
        return "\n".join(nx.generate_gml(g))

    def judge_in_words(self) -> str:
        """The judge's measured accuracy as one sentence, or a warning that the proposal is uncalibrated.

        Returns:
            text.
        """
        if self.judge is None:
            return ("this model's orientation accuracy was not measured: the confidences are the "
                    "model's own and are not calibrated")
        return self.judge.in_words()

    def figure(self, check: Any = None, title: str | None = None):
        """A plotly drawing: committed edges as arrows coloured by confidence (or by a
        :class:`GraphCheck`'s result), undecided pairs as dashed lines, with a legend and the
        judge's accuracy in words under the title.

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        return graph_figure(self.graph, check=check, title=title or f"proposed graph ({self.llm})",
                            undecided=self.undecided, note=self.judge_in_words())

    def summary(self) -> str:
        """A few plain lines: the judge's figure, committed edges, undecided, dropped, flagged.

        Returns:
            text.
        """
        n_pairs = self.graph.number_of_edges() + len(self.undecided)
        lines = [f"{self.graph.number_of_edges()} committed edges and {len(self.undecided)} undecided pairs "
                 f"over {self.graph.number_of_nodes()} variables ({self.strategy}, {self.queries} LLM "
                 f"questions, {self.llm})." if n_pairs or self.graph.number_of_nodes() else "empty proposal.",
                 self.judge_in_words()[0].upper() + self.judge_in_words()[1:] + "."]
        for u, v, d in sorted(self.graph.edges(data=True), key=lambda e: -_num(e[2].get("confidence"))):
            lines.append(f"  {u} -> {v}  confidence {_num(d.get('confidence')):.2f}  [{d.get('evidence', '')}]")
        for a, b, d in self.undecided:
            lines.append(f"  undecided {a} - {b}  P({a} -> {b}) {_num(d.get('p')):.2f} after calibration "
                         f"(model's own {_num(d.get('p_raw')):.2f})")
        for u, v, d in self.dropped:
            lines.append(f"  dropped (cycle) {u} -> {v}  confidence {_num(d.get('confidence')):.2f}")
        for u, v, d in self.flagged:
            lines.append(f"  removed (independent in data, p={_num(d.get('p_value')):.3g}) {u} -> {v}")
        return "\n".join(lines)


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) else float("nan")


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
            return ProposedGraph.from_dict(d).graph
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
